"""Figure 5: throughput under load over streamable HTTP.

8 clients (each its own principal and MCP session) x 25 concurrent `generate_image` calls against
the emulator with 1 s latency per generation and a cap of 16 generations in flight. The ideal
schedule is ceil(200 / 16) waves of 1 s = 13 s; the target is at most 1.3x that, with zero
failures and every image read back with the exact bytes the emulator returned. The server's peak
RSS is reported.
"""

from __future__ import annotations

import base64
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

from .common import Figure, Row, Stats, proc_status_kib, server_env

TARGET_RATIO = 1.3
MIB = 1024 * 1024


class _HttpServer:
    """The server as a subprocess on streamable HTTP; its URL is read from its log."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_server",
                "serve",
                "--transport",
                "http",
                "--port",
                "0",
                "--log-level",
                "WARNING",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60) or not self.url:
            self.stop()
            raise RuntimeError("the HTTP server did not start")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if "Serving MCP over streamable HTTP at " in line and not self.url:
                self.url = line.rsplit(" at ", 1)[1].strip()
                self._ready.set()
        self._ready.set()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=90)
        if self.process.stderr is not None:
            self.process.stderr.close()


@asynccontextmanager
async def _session(url: str, token: str) -> Any:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def _load(
    server: _HttpServer, emulator: RunningEmulator, tokens: list[str], calls: int
) -> tuple[float, int, int]:
    """(wall seconds, failures, byte mismatches) for every client firing `calls` calls at once."""
    failures = mismatches = 0
    metas: list[tuple[str, dict[str, Any]]] = []

    async def one(client: Client, token: str, index: int) -> None:
        nonlocal failures
        result = await client.call_tool("generate_image", {"prompt": f"load {token[:6]} {index}", "quality": "low"})
        if result.is_error or result.structured_content is None:
            failures += 1
        else:
            metas.append((token, result.structured_content))

    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(_session(server.url, token)) for token in tokens]
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for client, token in zip(clients, tokens, strict=True):
                for index in range(calls):
                    tg.start_soon(one, client, token, index)
        wall = time.monotonic() - started
        by_token = dict(zip(tokens, clients, strict=True))
        for token, meta in metas:
            read = await by_token[token].read_resource(meta["uri"])
            blob = base64.b64decode(getattr(read.contents[0], "blob", ""))
            if blob != emulator.state.image_bytes(meta["response_id"]):
                mismatches += 1
    return wall, failures, mismatches


async def run(clients: int = 8, calls: int = 25, latency: float = 1.0, cap: int = 16) -> Figure:
    tokens = [f"bench-client-{n:02d}-{'x' * 16}" for n in range(clients)]
    with start_emulator(EmulatorConfig(latency=latency)) as emulator, tempfile.TemporaryDirectory() as out:
        env = {
            **server_env(emulator.endpoint, Path(out)),
            "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT": str(cap),
            "FOUNDRY_IMAGE_MCP_AUTH_TOKENS": ",".join(f"c{n}:{t}" for n, t in enumerate(tokens)),
        }
        server = await anyio.to_thread.run_sync(_HttpServer, env)
        try:
            async with _session(server.url, tokens[0]) as warm:  # creates the agent version
                await warm.call_tool("generate_image", {"prompt": "warm-up", "quality": "low"})
            wall, failures, mismatches = await _load(server, emulator, tokens, calls)
            peak = proc_status_kib(server.process.pid, "VmHWM") * 1024.0
        finally:
            await anyio.to_thread.run_sync(server.stop)
    total = clients * calls
    ideal = math.ceil(total / cap) * latency
    ratio = wall / ideal
    ok = failures == 0 and mismatches == 0 and ratio <= TARGET_RATIO
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
    figure.notes.append(f"failures: {failures}; images whose bytes differ from the emulator's: {mismatches}")
    figure.notes.append(f"server peak RSS: {peak / MIB:.1f} MiB; {total / wall:.1f} images/s")
    return figure
