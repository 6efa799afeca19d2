"""`foundry-image-mcp demo`: the whole product end to end, with no Azure account.

It starts the Foundry emulator on a free loopback port, launches this server over stdio
through a real MCP client (exactly as an IDE would), calls `generate_image`, reads the
image back as a resource and checks it against the saved file.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from mcp.types import CallToolResult

from mcp_server.cli.demo_page import demo_page
from mcp_server.config import API_KEY_VAR, ENDPOINT_VARS, IMAGE_VAR, MODEL_VAR, OUTPUT_DIR_VAR, Settings

DEFAULT_PROMPT = "A lighthouse on a rocky coast at sunset, watercolor style"
EDIT_PROMPT = "Make the sky a deep orange and add a flock of birds"


def run_demo(prompt: str | None, overrides: dict[str, Any]) -> int:
    """Run the demo; `overrides` are the server's `Settings.load` overrides but for the emulator's endpoint."""
    from mcp_server.emulator import EmulatorConfig, start_emulator

    with start_emulator(EmulatorConfig()) as emulator:
        print(f"Foundry emulator running at {emulator.endpoint}")
        # Loaded as the server will load them, so the output directory is found the same way.
        settings = Settings.load(**overrides, endpoint=emulator.endpoint)
        return anyio.run(_demo, prompt or DEFAULT_PROMPT, settings)


def _server_env(settings: Settings, output_dir: Path) -> dict[str, str]:
    """This process's environment, handed on to the server process with the demo's settings on top.

    Only the endpoint is set: the server finds the emulator project's deployments (gpt-4.1, gpt-image-2) as it
    would on Azure, so deployment names meant for a real project are not handed on."""
    env = {name: value for name, value in os.environ.items() if name not in (MODEL_VAR, IMAGE_VAR)}
    env.update({ENDPOINT_VARS[0]: settings.endpoint, OUTPUT_DIR_VAR: str(output_dir)})
    if settings.api_key is not None:
        env[API_KEY_VAR] = settings.api_key.get_secret_value()
    return env


async def _demo(prompt: str, settings: Settings) -> int:
    from mcp import Client, StdioServerParameters

    output_dir, endpoint = settings.output_dir.resolve(), settings.endpoint
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "serve", "--log-level", "WARNING"],
        env=_server_env(settings, output_dir),
    )

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        print(f"  [{progress:.0f}/{total or 0:.0f}] {message or ''}")

    async with Client(params) as client:
        print(f"Connected to {client.server_info.name if client.server_info else 'the server'} over stdio.")
        print(f"Calling generate_image: {prompt!r}")
        started = time.monotonic()
        generate_args: dict[str, Any] = {
            "prompt": prompt,
            "size": "2048x1152",  # a gpt-image-2 size: the emulator's image deployment serves gpt-image-2
            "quality": "medium",
            "partial_images": 2,
        }
        generated = await client.call_tool("generate_image", generate_args, progress_callback=on_progress)
        generate_seconds = time.monotonic() - started
        if generated.is_error or not generated.structured_content:
            return _failed("generate_image", generated)
        meta: dict[str, Any] = generated.structured_content
        read = await client.read_resource(meta["uri"])
        blob = base64.b64decode(getattr(read.contents[0], "blob", ""))
        same = blob == Path(meta["path"]).read_bytes()
        print(f"Calling edit_image on {meta['uri']}: {EDIT_PROMPT!r}")
        started = time.monotonic()
        edit_args: dict[str, Any] = {"prompt": EDIT_PROMPT, "images": [meta["uri"]], "size": "1536x1024"}
        edited = await client.call_tool("edit_image", edit_args, progress_callback=on_progress)
        edit_seconds = time.monotonic() - started
        if edited.is_error or not edited.structured_content:
            return _failed("edit_image", edited)
        edit: dict[str, Any] = edited.structured_content
    _describe("Generated image", meta)
    print(f"  resource {meta['uri']} read back: {'identical to the file' if same else 'DIFFERS from the file'}")
    _describe("Edited image", edit)
    print(f"  continued from {edit['parent']['uri']} (response {edit['parent']['response_id']})")
    page = output_dir / "demo.html"
    steps = [
        ("generate_image", generate_args, meta, generate_seconds),
        ("edit_image", edit_args, edit, edit_seconds),
    ]
    page.write_text(demo_page(steps, endpoint), encoding="utf-8")
    print(f"All images and their .json metadata are in {output_dir}")
    print(f"See both side by side: {page.as_uri()}")
    return 0 if same else 1


def _describe(title: str, meta: dict[str, Any]) -> None:
    print(f"{title}: {meta['path']}")
    print(f"  {meta['width']}x{meta['height']} {meta['mime_type']}, {meta['bytes']:,} bytes")


def _failed(tool: str, result: CallToolResult) -> int:
    print(f"{tool} failed: " + " ".join(getattr(c, "text", "") for c in result.content))
    return 1
