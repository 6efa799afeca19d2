"""The built wheel installs into a fresh virtualenv and runs from there, with no help from this checkout.

Offline: the wheel is built with the hatchling of this environment (the test extra has it), and the new
virtualenv borrows this environment's site-packages for the dependencies only, through a `.pth` file. The
project itself is installed here in editable mode (a `.pth` pointing at the checkout); that `.pth` is not
processed when its directory is merely listed in another `.pth`, and the test checks that `mcp_server` cannot
be imported in the new virtualenv before the wheel is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.extension import advertise

import mcp_server
from mcp_server.tools.studio import APP_MIME_TYPE, EXTENSION_ID, STUDIO_URI

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"generate_image", "edit_image"}
PROJECT_ENTRIES = ("mcp_server", "foundry_image_mcp")  # the package, its dist-info and editable hooks


def run(command: list[str | Path], *, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def venv_paths(venv: Path) -> tuple[Path, Path]:
    """(bin directory, site-packages) of a virtualenv, asked of its own interpreter."""
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv).strip()
    return bin_dir, Path(purelib)


def dependency_dirs(outside: Path) -> list[Path]:
    """This environment's site-packages directories, or, if one holds a real copy of the project, a view of it
    without the project (a directory of links to everything else)."""
    dirs = []
    for name in dict.fromkeys((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])):
        site = Path(name)
        if not (site / "mcp_server").exists():
            dirs.append(site)
            continue
        view = outside / f"deps-{len(dirs)}"
        view.mkdir()
        for item in site.iterdir():
            if not item.name.startswith(PROJECT_ENTRIES) and not item.name.startswith(
                ("_editable_impl_foundry_image_mcp", "__editable__")
            ):
                (view / item.name).symlink_to(item, target_is_directory=item.is_dir())
        dirs.append(view)
    return dirs


def build_wheel(out: Path) -> Path:
    out.mkdir()
    try:
        import hatchling  # noqa: F401
    except ImportError:
        pytest.fail("hatchling is missing: install the test extra, pip install -e '.[test]'")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, ROOT],
        cwd=out,
        timeout=180,
    )
    (wheel,) = out.glob("foundry_image_mcp-*.whl")
    return wheel


@pytest.mark.anyio
async def test_the_wheel_installs_into_a_fresh_virtualenv_and_serves(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    wheel = build_wheel(tmp_path / "dist")
    assert wheel.name == f"foundry_image_mcp-{mcp_server.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "mcp_server/__init__.py" in names and "mcp_server/emulator/__init__.py" in names
    studio = {f"mcp_server/tools/assets/studio/studio.{kind}" for kind in ("html", "css", "js")}
    studio |= {f"mcp_server/http/assets/studio-host.{kind}" for kind in ("html", "css", "js")}
    assert studio <= set(names), "the studio's view and host page ship in the wheel"
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names), names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=outside)
    bin_dir, site = venv_paths(venv)
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    (site / "_borrowed_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in dependency_dirs(outside)), encoding="utf-8"
    )
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}
    probe = "import importlib.util as u; s = u.find_spec('mcp_server'); print(s.origin if s else None)"
    assert run([python, "-c", probe], cwd=outside, env=env).strip() == "None", "the checkout leaks into the venv"
    assert run([python, "-c", "import mcp, httpx2, azure.identity, PIL; print('ok')"], cwd=outside, env=env) == "ok\n"

    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",
            wheel,
        ],
        cwd=outside,
    )
    script = bin_dir / ("foundry-image-mcp.exe" if os.name == "nt" else "foundry-image-mcp")
    assert run([script, "--version"], cwd=outside, env=env).strip() == f"foundry-image-mcp {mcp_server.__version__}"
    where = Path(run([python, "-c", "import mcp_server; print(mcp_server.__file__)"], cwd=outside, env=env).strip())
    assert where == site / "mcp_server" / "__init__.py"

    params = StdioServerParameters(
        command=str(script),
        args=["--emulator", "--log-level", "WARNING"],
        env={"HOME": str(tmp_path), "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(tmp_path / "out")},
        cwd=outside,
    )
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    with anyio.fail_after(60):
        async with Client(params, extensions=[apps]) as client:
            tools = await client.list_tools()
            view = await client.read_resource(STUDIO_URI)
    assert {tool.name for tool in tools.tools} >= TOOLS
    assert "ui/initialize" in getattr(view.contents[0], "text", ""), "the view, read from the installed wheel"
