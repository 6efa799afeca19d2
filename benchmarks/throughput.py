"""Figure 5: throughput under load over streamable HTTP.

8 clients (each its own principal and MCP session) x 25 concurrent `generate_image` calls against
the emulator with 1 s latency per generation and a cap of 16 generations in flight. The ideal
schedule is ceil(200 / 16) waves of 1 s = 13 s; the target is at most 1.3x that, with zero
failures and every image read back with the exact bytes the emulator returned. The server's peak
RSS is reported.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import anyio

from mcp_server.emulator import EmulatorConfig, start_emulator

from .common import Figure, Row, Stats, proc_status_kib, server_env
from .http_load import HttpServer, auth_tokens, run_load, session, tokens_for, warm_up

TARGET_RATIO = 1.3
MIB = 1024 * 1024


async def run(clients: int = 8, calls: int = 25, latency: float = 1.0, cap: int = 16) -> Figure:
    tokens = tokens_for(clients)
    with start_emulator(EmulatorConfig(latency=latency)) as emulator, tempfile.TemporaryDirectory() as out:
        env = {
            **server_env(emulator.endpoint, Path(out)),
            "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT": str(cap),
            "FOUNDRY_IMAGE_MCP_AUTH_TOKENS": auth_tokens(tokens),
        }
        server = await anyio.to_thread.run_sync(HttpServer, env)
        try:
            await warm_up(server.url, tokens[0])
            load = await run_load(lambda token: session(server.url, token), emulator, tokens, calls)
            peak = proc_status_kib(server.process.pid, "VmHWM") * 1024.0
        finally:
            await anyio.to_thread.run_sync(server.stop)
    wall = load.wall
    total = clients * calls
    ideal = math.ceil(total / cap) * latency
    ratio = wall / ideal
    ok = load.failures == 0 and load.mismatches == 0 and ratio <= TARGET_RATIO
    figure = Figure("throughput", f"5. Throughput under load: {clients} clients x {calls} calls over HTTP")
    figure.rows.append(
        Row(
            label=f"cap {cap}, latency {latency:g} s",
            measured=Stats.of([wall]),
            baseline=Stats.of([ideal]),
            comparison=Stats.of([ratio]),
            unit="s",
            comparison_unit="x ideal",
            target=f"≤ {TARGET_RATIO}x ideal, 0 failures",
            status="PASS" if ok else "FAIL",
            digits=2,
        )
    )
    figure.notes.append(f"ideal schedule: ceil({total} / {cap}) x {latency:g} s = {ideal:g} s")
    figure.notes.append(load.verdict)
    figure.notes.append(f"server peak RSS: {peak / MIB:.1f} MiB; {total / wall:.1f} images/s")
    return figure
