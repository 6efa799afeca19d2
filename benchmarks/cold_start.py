"""Figure 1: process spawn to the `initialize` response over stdio, ours against a bare `MCPServer`.

Both are launched the same way (`python -m <module>` with pipes), the `initialize` request is
written at once (it waits in the pipe while the interpreter starts), and the clock stops when
the response line arrives. Runs alternate, and the order within each pair flips, so drift on
the machine hits both sides alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import PROJECT_ROOT, Figure, Row, Stats, ms, server_env

TARGET_RATIO = 1.15
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "foundry-image-mcp-benchmarks", "version": "0"},
    },
}
EXIT_TIMEOUT = 30.0


def spawn_to_initialize(args: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning `python <args>` to reading its `initialize` response line."""
    payload = (json.dumps(INITIALIZE) + "\n").encode()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(payload)
        process.stdin.flush()
        line = process.stdout.readline()
        elapsed = time.perf_counter() - started
        answer = json.loads(line) if line else {}
        if answer.get("id") != 1 or "result" not in answer:
            raise RuntimeError(f"{args}: no initialize result, got {line[:200]!r}")
    finally:
        process.stdin.close()
        try:
            process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
    return elapsed


def run(endpoint: str, repeat: int, *, warm_up: bool = True) -> Figure:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as out:
        ours_cmd = (["-m", "mcp_server", "serve", "--log-level", "WARNING"], server_env(endpoint, Path(out)))
        bare_cmd: tuple[list[str], dict[str, str]] = (["-m", "benchmarks.bare_server"], {})
        if warm_up:  # one untimed launch each: byte-compiles and warms the page cache for both alike
            spawn_to_initialize(*bare_cmd)
            spawn_to_initialize(*ours_cmd)
        ours: list[float] = []
        bare: list[float] = []
        for i in range(repeat):
            if i % 2:
                ours.append(spawn_to_initialize(*ours_cmd))
                bare.append(spawn_to_initialize(*bare_cmd))
            else:
                bare.append(spawn_to_initialize(*bare_cmd))
                ours.append(spawn_to_initialize(*ours_cmd))
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    ratio = Stats.of(ratios)
    figure = Figure("cold_start", "1. Cold start: spawn → initialize response over stdio")
    figure.rows.append(
        Row(
            label="foundry-image-mcp vs bare MCPServer",
            measured=Stats.of([ms(v) for v in ours]),
            baseline=Stats.of([ms(v) for v in bare]),
            comparison=ratio,
            unit="ms",
            comparison_unit="x",
            target=f"≤ {TARGET_RATIO:.2f}x",
            status="PASS" if ratio.median <= TARGET_RATIO else "FAIL",
            digits=0,
        )
    )
    figure.notes.append("comparison: per-pair ratio ours/bare (runs alternate, order flips each pair)")
    return figure
