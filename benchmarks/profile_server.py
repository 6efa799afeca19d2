"""Where the server's time goes: run a figure's workload against the server launched under py-spy.

    pip install py-spy            # profiling only; not a project dependency
    python -m benchmarks.profile_server per_call --calls 60 --out /tmp/per_call.txt

It prints the functions holding the most CPU samples of the server process (all threads,
inclusive and self), and leaves py-spy's collapsed stacks in `--out` for a flame graph.
`cold_start` needs no py-spy: it times the phases of the server's start-up in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from mcp_server.emulator import EmulatorConfig, start_emulator

from .common import PROJECT_ROOT, server_env, server_params
from .harness import generate

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


SHIM = (
    "import os, runpy, sys; os.dup2(3, 1); os.close(3); sys.argv = sys.argv[1:]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def _profiled(params: StdioServerParameters, out: Path, rate: int) -> StdioServerParameters:
    """The same server under `py-spy record`, whose chatter goes to stderr while the server keeps stdout."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    record = [spy, "record", "--format", "raw", "--rate", str(rate), "--output", str(out), "--nonblocking", "--"]
    # py-spy prints to stdout, which is the protocol channel: it gets stderr, and the server gets the
    # original stdout back (passed down as fd 3) before it starts.
    inner = [params.command, "-c", SHIM, *params.args[1:]]
    script = 'exec 3>&1 1>&2; exec "$@"'
    return StdioServerParameters(
        command="/bin/sh", args=["-c", script, "sh", *record, *inner], env=params.env, cwd=PROJECT_ROOT
    )


async def _workload(client: Client, name: str, calls: int) -> None:
    if name == "per_call":
        for _ in range(calls):
            await generate(client, "a lighthouse on a cliff at dusk, oil painting", "1024x1024")
    elif name == "memory":
        for _ in range(max(1, calls // 16)):
            async with anyio.create_task_group() as tg:
                for i in range(16):
                    tg.start_soon(generate, client, f"picture {i}: a busy market street", "1536x1024")
    else:
        for _ in range(calls):
            await generate(client, "a paper boat on a pond", "1024x1024", None, partial_images=3)


COLD_PHASES = """
import json, time
t = [time.perf_counter()]
import mcp.server.mcpserver
t.append(time.perf_counter())
from mcp_server import config
from mcp_server.cli import main as cli
from mcp_server.tools import server
t.append(time.perf_counter())
settings = config.Settings.load()
t.append(time.perf_counter())
built = server.build_server(settings)
t.append(time.perf_counter())
from mcp_server.foundry.auth import ApiKeyAuth
from mcp_server.foundry.http import build_client
client = build_client(settings.endpoint, ApiKeyAuth("bench"))
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""
PHASES = (
    "import the MCP SDK (the bare server's cost too)",
    "import mcp_server's own modules",
    "Settings.load()",
    "build_server() (tool schemas)",
    "lifespan: httpx2.AsyncClient (SSL context)",
)


def cold_start_phases(runs: int) -> str:
    env = {**os.environ, **server_env("http://127.0.0.1:9/api/projects/emulator", Path(tempfile.gettempdir()))}
    samples = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", COLD_PHASES],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    lines = [f"start-up phases of the server, median of {runs} fresh processes:"]
    for index, phase in enumerate(PHASES):
        lines.append(f"  {1000 * statistics.median(s[index] for s in samples):7.1f} ms  {phase}")
    return "\n".join(lines)


def _label(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    where = match["file"].replace(str(PROJECT_ROOT) + "/", "")
    where = re.sub(r".*/site-packages/", "", where)
    return f"{match['func']} ({where})"


def summarize(raw: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = imports = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(f) for f in stack.split(";")]
        if any("importlib._bootstrap" in f for f in frames):
            imports += count  # start-up (and first-use) imports: figure 1's business, not the calls'
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [
        f"{total} samples of the server process (CPU only, all threads), "
        f"not counting {imports} samples spent importing modules",
        "",
        "inclusive:",
    ]
    total = max(total, 1)
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


async def _main(name: str, calls: int, out: Path, rate: int) -> None:
    config = EmulatorConfig(partial_interval=0.05 if name == "streaming" else 0.0)
    with start_emulator(config) as emulator, tempfile.TemporaryDirectory(prefix="bench-profile-") as images:
        params = _profiled(server_params(emulator.endpoint, Path(images)), out, rate)
        async with Client(params) as client:
            await generate(client, "warm-up", "1024x1024")
            await _workload(client, name, calls)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_server", description=__doc__)
    parser.add_argument("workload", choices=("cold_start", "per_call", "memory", "streaming"))
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "foundry-image-mcp-profile.txt")
    args = parser.parse_args()
    if args.workload == "cold_start":
        print(cold_start_phases(max(1, args.calls // 6)))
        return 0
    anyio.run(_main, args.workload, args.calls, args.out, args.rate)
    print(summarize(args.out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
