"""The command line as a user meets it: demo, serve --emulator, emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from helpers import text_of
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


def test_demo_generates_a_real_image_with_no_azure_settings(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "demo", "a small red kite", "--output-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    images = sorted(out.glob("img-*.png"))
    assert len(images) == 2 and all(image.with_suffix(".json").is_file() for image in images)
    assert all(str(image) in done.stdout for image in images)
    assert "identical to the file" in done.stdout
    edited = [json.loads(image.with_suffix(".json").read_text()) for image in images]
    assert sorted(meta["kind"] for meta in edited) == ["edit", "generate"]
    assert "continued from foundry-image://images/" in done.stdout
    page = (out / "demo.html").read_text()
    assert all(f'src="{image.name}"' in page for image in images)
    assert "a small red kite" in page and "Make the sky" in page and "Revised prompt" in page
    assert "previous_response_id" in page and "demo.html" in done.stdout
    assert "Traceback" not in done.stderr


async def test_serve_with_the_emulator_flag_needs_no_configuration(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--emulator", "--output-dir", str(tmp_path), "--log-level", "WARNING"],
        env={"HOME": str(tmp_path)},
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            result = await client.call_tool("generate_image", {"prompt": "a teapot", "quality": "low"})
    assert not result.is_error, text_of(result)
    assert "emulator" in text_of(result).lower()
    assert result.structured_content is not None
    assert Path(result.structured_content["path"]).parent == tmp_path


def test_serve_with_the_emulator_flag_says_so_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "serve", "--emulator", "--output-dir", str(tmp_path)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "built-in Foundry emulator" in done.stderr and "not by Azure" in done.stderr


def test_help_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "mcp_server", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("serve", "emulator", "demo"):
        assert command in done.stdout
