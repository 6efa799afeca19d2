"""The load of the HTTP figures (5, throughput; 8, two replicas): the server as a `serve --transport http`
subprocess, MCP sessions over streamable HTTP (one per principal), every client firing its calls at once, and
every image read back and compared with the bytes the emulator returned.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.emulator import RunningEmulator

from .common import cpu_seconds

TIMEOUT = httpx2.Timeout(30, read=300)
"""The MCP SDK's client timeouts (`create_mcp_http_client`): responses may stream for minutes."""
CALLS_FINISHED = "Shutting down: no call in flight"
"""The server's log line once a drain has no call left; a second SIGTERM then ends it without the read grace."""

Connect = Callable[[str], AbstractAsyncContextManager[Client]]
"""An MCP session for a bearer token."""


class HttpServer:
    """The server as a subprocess on streamable HTTP (`extra_args`: e.g. `--stateless`); its URL is read from its
    log."""

    def __init__(self, env: dict[str, str], extra_args: Sequence[str] = ()) -> None:
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
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
        self.url = ""
        self.log: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60) or not self.url:
            self.stop()
            raise RuntimeError("the HTTP server did not start: " + "".join(self.log)[-2000:])

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "Serving MCP over streamable HTTP at " in line and not self.url:
                self.url = line.rsplit(" at ", 1)[1].strip()
                self._ready.set()
        self._ready.set()

    def stop(self) -> None:
        """SIGTERM (the server drains), and a second one once no call is in flight (no read grace to wait out)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 90
            while self.process.poll() is None and time.monotonic() < deadline:
                if any(CALLS_FINISHED in line for line in self.log):
                    self.process.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.01)
        self.process.wait(timeout=90)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn, as a load balancer without affinity would."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent_to: list[int] = []
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent_to) % len(self.ports)]
        self.sent_to.append(port)
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def session(url: str, token: str, transport: httpx2.AsyncBaseTransport | None = None) -> AsyncIterator[Client]:
    """An MCP session over streamable HTTP as `token`'s principal (through `transport` when given)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=TIMEOUT, transport=transport) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def warm_up(url: str, token: str) -> None:
    """One generation (creates the agent version the load then reuses)."""
    async with session(url, token) as client:
        await client.call_tool("generate_image", {"prompt": "warm-up", "quality": "low"})


@dataclass(frozen=True)
class Load:
    wall: float
    """Seconds from the first call sent to the last result (the read-backs come after)."""
    failures: int
    mismatches: int
    """Images read back whose bytes differ from the emulator's."""
    cpu: tuple[float, ...] = ()
    """CPU seconds between the first call and the last result: this process (the clients and the emulator),
    then each of the `pids` given."""

    @property
    def verdict(self) -> str:
        return f"failures: {self.failures}; images whose bytes differ from the emulator's: {self.mismatches}"


async def run_load(
    connect: Connect, emulator: RunningEmulator, tokens: list[str], calls: int, pids: Sequence[int] = ()
) -> Load:
    """Every client (one per token, each its own session) firing `calls` `generate_image` calls at once; then
    every image read back through the same client and compared with the bytes the emulator returned. The CPU
    time of this process and of `pids` (Linux) is taken over the calls when `pids` are given."""
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
        clients = [await stack.enter_async_context(connect(token)) for token in tokens]
        measured = [os.getpid(), *pids] if pids else []
        cpu_before = [cpu_seconds(pid) for pid in measured]
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for client, token in zip(clients, tokens, strict=True):
                for index in range(calls):
                    tg.start_soon(one, client, token, index)
        wall = time.monotonic() - started
        cpu = tuple(cpu_seconds(pid) - before for pid, before in zip(measured, cpu_before, strict=True))
        by_token = dict(zip(tokens, clients, strict=True))
        for token, meta in metas:
            read = await by_token[token].read_resource(meta["uri"])
            blob = base64.b64decode(getattr(read.contents[0], "blob", ""))
            if blob != emulator.state.image_bytes(meta["response_id"]):
                mismatches += 1
    return Load(wall, failures, mismatches, cpu)


def tokens_for(clients: int) -> list[str]:
    return [f"bench-client-{n:02d}-{'x' * 16}" for n in range(clients)]


def auth_tokens(tokens: list[str]) -> str:
    """`FOUNDRY_IMAGE_MCP_AUTH_TOKENS`: one principal per token."""
    return ",".join(f"c{n}:{t}" for n, t in enumerate(tokens))
