"""The HTTP transport's hardening: exact Host/Origin matching, no body read before the token and size checks
(while draining too), and reads still answered for a moment after the drain.

Unit tests drive the ASGI pieces in this process with hand-made requests (and count what they read of the
body); the subprocess tests measure the real server: its peak memory, its answers, when it exits.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import HttpServer, emulator_running, parts, server_params, wait_until
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from mcp_server.config import AUTH_TOKENS_VAR, InboundAuthSettings
from mcp_server.emulator import EmulatorConfig, RunningEmulator
from mcp_server.errors import ConfigurationError
from mcp_server.http.app import HttpOptions, allow_list, inbound_auth, inbound_verifier
from mcp_server.http.drain import CALLS_FINISHED, Drain
from mcp_server.http.gate import Gate
from mcp_server.http.rebinding import RebindingGuard

pytestmark = pytest.mark.anyio

MiB = 1 << 20
ALICE = "alice-token-0123456789abcdef"
TOKENS = {AUTH_TOKENS_VAR: f"alice:{ALICE}"}
BEARER = {"Authorization": f"Bearer {ALICE}"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

HOSTILE_HOSTS = [
    "127.0.0.1:8000.evil.example",
    "localhost:80@evil",
    "127.0.0.1:8000 ",
    " 127.0.0.1:8000",
    "127.0.0.1:99999",
    "127.0.0.1:0",
    "127.0.0.1:",
    "127.0.0.1:80a",
    "127.0.0.1",
    "localhost.evil.example:8000",
    "evil.example:8000",
    "127.0.0.1:8000/x",
    "[::1]:8000.evil.example",
    "::1:8000",
    "",
]
GOOD_HOSTS = ["127.0.0.1:8000", "localhost:1", "LOCALHOST:65535", "LocalHost:8000", "[::1]:8000", "127.0.0.1:00080"]
HOSTILE_ORIGINS = [
    "http://127.0.0.1:8000.evil.example",
    "http://localhost.evil.example:8000",
    "http://127.0.0.1:8000@evil.example",
    "http://127.0.0.1:8000/",
    "https://127.0.0.1:8000",
    "http://127.0.0.1",
    "http://evil.example",
    "null",
]
GOOD_ORIGINS = ["http://127.0.0.1:8000", "HTTP://LOCALHOST:3000", "http://[::1]:6274"]


# --- Host and Origin, matched exactly ------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_host_is_not_allowed(host: str) -> None:
    assert not allow_list(HttpOptions()).host_allowed(host)


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_loopback_on_any_port_is_allowed_whatever_its_case(host: str) -> None:
    assert allow_list(HttpOptions()).host_allowed(host)


@pytest.mark.parametrize(
    ("origin", "allowed"), [(o, False) for o in HOSTILE_ORIGINS] + [(o, True) for o in GOOD_ORIGINS]
)
def test_origins_match_scheme_host_and_port_exactly(origin: str, allowed: bool) -> None:
    assert allow_list(HttpOptions()).origin_allowed(origin) is allowed


def test_user_supplied_hosts_and_origins_keep_their_exact_meaning() -> None:
    options = HttpOptions(
        host="2001:db8::5",
        allowed_hosts=("images.example.com", "api.example.com:*", "10.0.0.7:8443"),
        allowed_origins=("https://images.example.com", "http://tools.example.com:*"),
    )
    allowed = allow_list(options)
    for host in ("images.example.com", "Images.Example.Com", "api.example.com:443", "10.0.0.7:8443", "[2001:db8::5]:1"):
        assert allowed.host_allowed(host), host
    for host in ("images.example.com:443", "images.example.com.evil", "api.example.com", "10.0.0.7:8444"):
        assert not allowed.host_allowed(host), host
    for origin in ("https://images.example.com", "http://tools.example.com:8080"):
        assert allowed.origin_allowed(origin), origin
    for origin in ("http://images.example.com", "https://images.example.com:443", "http://tools.example.com"):
        assert not allowed.origin_allowed(origin), origin
    assert "0.0.0.0:*" not in allow_list(HttpOptions(host="0.0.0.0")).hosts


@pytest.mark.parametrize(
    ("hosts", "origins"),
    [(("*.example.com",), ()), (("http://images.example.com",), ()), (("::1",), ()), ((), ("images.example.com",))],
)
def test_a_malformed_allowed_value_is_refused_at_start(hosts: tuple[str, ...], origins: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="--allowed-"):
        allow_list(HttpOptions(allowed_hosts=hosts, allowed_origins=origins))


# --- In-process ASGI: what is answered and how much of the body was read -------------------------------------


class Body:
    """A request body as uvicorn hands it over: `chunks` messages of `size` bytes; counts what was read."""

    def __init__(self, chunks: int = 1, size: int = MiB, content: bytes | None = None) -> None:
        self.chunks, self.content = chunks, content if content is not None else b"0" * size
        self.reads = 0

    async def __call__(self) -> Message:
        self.reads += 1
        if self.reads > self.chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": self.content, "more_body": self.reads < self.chunks}

    @classmethod
    def json(cls, message: Any) -> Body:
        return cls(content=json.dumps(message).encode())


class Inner:
    """The app behind the wrapper under test: reads the whole body and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        self.bodies.append(body)
        await Response("ok")(scope, receive, send)


async def asgi(
    app: Any, headers: dict[str, str], body: Body, path: str = "/mcp", method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "query_string": b"",
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, body, send)
    answer = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], answer, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("host", [*HOSTILE_HOSTS, "127.0.0.1:8000\t"])
async def test_the_guard_answers_a_hostile_host_before_reading_the_body(host: str) -> None:
    inner, body = Inner(), Body(chunks=1000)
    guard = RebindingGuard(inner, allow_list(HttpOptions()), "/mcp")
    status, _, text = await asgi(guard, {"Host": host, **MCP_HEADERS}, body)
    assert (status, text, body.reads, inner.bodies) == (421, b"Invalid Host header", 0, [])


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
async def test_the_guard_answers_a_hostile_origin_before_reading_the_body(origin: str) -> None:
    inner, body = Inner(), Body(chunks=1000)
    guard = RebindingGuard(inner, allow_list(HttpOptions()), "/mcp")
    status, _, text = await asgi(guard, {"Host": "127.0.0.1:8000", "Origin": origin}, body)
    assert (status, text, body.reads, inner.bodies) == (403, b"Invalid Origin header", 0, [])


async def test_the_guard_lets_good_hosts_and_other_paths_through() -> None:
    inner = Inner()
    guard = RebindingGuard(inner, allow_list(HttpOptions()), "/mcp")
    for host in GOOD_HOSTS:
        assert (await asgi(guard, {"Host": host, "Origin": "http://localhost:6274"}, Body()))[0] == 200
    assert (await asgi(guard, {"Host": "evil.example"}, Body(), path="/healthz"))[0] == 200
    assert (await asgi(guard, {"Host": "localhost:1", "Origin": ""}, Body()))[0] == 200
    assert len(inner.bodies) == len(GOOD_HOSTS) + 2


def draining(limit: int = 4 * MiB) -> tuple[Drain, Inner]:
    verifier = inbound_verifier(InboundAuthSettings.load(TOKENS), HttpOptions())
    assert verifier is not None
    auth = inbound_auth(verifier, HttpOptions(), "http://127.0.0.1:8000")
    inner = Inner()
    drain = Drain(inner, Gate(limit, auth), "/mcp")
    drain.draining = True
    return drain, inner


async def test_while_draining_no_token_is_answered_401_before_the_body_is_read() -> None:
    drain, inner = draining()
    for headers in ({}, {"Authorization": "Bearer not-a-valid-token-at-all"}, {"Authorization": ALICE}):
        body = Body(chunks=1000)
        status, answer, _ = await asgi(drain, {**MCP_HEADERS, **headers}, body)
        assert (status, body.reads, inner.bodies, drain.last_request) == (401, 0, [], -math.inf)
        assert answer["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert (
            'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'
            in answer["www-authenticate"]
        )


async def test_while_draining_a_body_over_the_limit_is_answered_413_reading_no_more_than_the_limit() -> None:
    drain, inner = draining(limit=4 * MiB)
    declared = Body(chunks=100)
    status, _, text = await asgi(drain, {**MCP_HEADERS, **BEARER, "Content-Length": str(100 * MiB)}, declared)
    assert (status, text, declared.reads) == (413, b"Request body too large", 0)
    chunked = Body(chunks=100)
    status, _, text = await asgi(drain, {**MCP_HEADERS, **BEARER}, chunked)
    assert (status, text, chunked.reads, inner.bodies) == (413, b"Request body too large", 5, [])


async def test_while_draining_new_work_gets_503_and_everything_else_its_body() -> None:
    drain, inner = draining()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "generate_image"}}
    read = {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "foundry-image://images/a"}}
    for message in (INITIALIZE, call, [read, call]):
        status, answer, _ = await asgi(drain, {**MCP_HEADERS, **BEARER}, Body.json(message))
        assert (status, answer.get("retry-after")) == (503, "5")
    assert (await asgi(drain, {**MCP_HEADERS, **BEARER}, Body.json(read)))[0] == 200
    assert inner.bodies == [json.dumps(read).encode()]


async def test_while_draining_only_the_requests_let_through_hold_the_exit_back() -> None:
    drain, inner = draining()
    drain.clock = lambda: 7.0
    assert (await asgi(drain, MCP_HEADERS, Body(), method="GET"))[0] == 401
    assert (await asgi(drain, {**MCP_HEADERS, **BEARER}, Body.json(INITIALIZE)))[0] == 503
    assert drain.last_request == -math.inf
    assert (await asgi(drain, BEARER, Body(content=b""), method="DELETE"))[0] == 200
    assert drain.last_request == 7.0 and inner.bodies == [b""]


async def test_before_draining_the_body_is_left_to_the_sdk_unread() -> None:
    drain, inner = draining()
    drain.draining = False
    body = Body(chunks=3)
    assert (await asgi(drain, MCP_HEADERS, body))[0] == 200  # the SDK's own app checks the token before reading
    assert inner.bodies == [b"0" * 3 * MiB]


def test_the_drain_waits_for_calls_then_for_a_quiet_grace_never_past_the_deadline() -> None:
    now = [100.0]
    drain = Drain(Inner(), Gate(MiB), "/mcp", clock=lambda: now[0])
    assert drain.seconds_to_wait(grace=2, deadline=160) == 0  # nothing has come: exit at once
    drain.in_flight = 1
    assert drain.seconds_to_wait(grace=2, deadline=160) == 60
    drain.in_flight, drain.last_request = 0, 130.0
    now[0] = 130.5
    assert drain.seconds_to_wait(grace=2, deadline=160) == 1.5
    now[0] = 132.0
    assert drain.seconds_to_wait(grace=2, deadline=160) == 0
    drain.last_request = now[0] = 159.0
    assert drain.seconds_to_wait(grace=2, deadline=160) == 1  # the deadline comes first
    now[0] = 161.0
    drain.in_flight = 1
    assert drain.seconds_to_wait(grace=2, deadline=160) == 0


# --- The real server in a subprocess ---------------------------------------------------------------------------


class GraceServer(HttpServer):
    """`HttpServer` whose drain keeps answering reads for `grace` seconds (READ_GRACE, set before it starts)."""

    def __init__(self, endpoint: str, output_dir: Path, *, grace: float, args: Sequence[str] = ()) -> None:
        env = server_params(endpoint, output_dir, extra_env=TOKENS).env or {}
        code = (
            f"import mcp_server.http.drain as drain; drain.READ_GRACE = {grace!r}; "
            "from mcp_server.cli.main import main; raise SystemExit(main())"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--transport", "http", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
        self.log: list[str] = []
        self._ready = threading.Event()
        self.base_url = ""
        threading.Thread(target=self._read_log, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def peak_memory(self) -> int:
        """VmHWM: the most resident memory the process has had, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """`total` bytes, made one chunk at a time as the socket takes them (never held whole)."""
    block = b"0" * chunk
    for start in range(0, total, chunk):
        yield block[: min(chunk, total - start)]


def post(port: int, headers: dict[str, str], total: int, *, declared: bool = False) -> tuple[int, int]:
    """POST /mcp over a raw socket with a body of `total` bytes (chunked unless `declared` in Content-Length),
    sent until the server answers; that answer's status, and how many bytes were sent."""
    length = {"Content-Length": str(total)} if declared else {"Transfer-Encoding": "chunked"}
    head = {"Host": f"127.0.0.1:{port}", **MCP_HEADERS, **length, **headers}
    sent, answered = 0, False
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("POST /mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode())
        for frame in _frames(zeros(total), chunked=not declared):
            while frame and not answered:
                readable, writable, _ = select.select([sock], [sock], [], 30)
                if not readable and not writable:
                    raise TimeoutError("the server neither answered nor took the body")
                answered = bool(readable)
                if not answered:
                    try:
                        written = sock.send(frame)
                    except (BrokenPipeError, ConnectionResetError):
                        answered = True
                        break
                    sent, frame = sent + written, frame[written:]
            if answered:
                break
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split(b" ", 2)[1]), sent


def _frames(body: Iterator[bytes], *, chunked: bool) -> Iterator[bytes]:
    for chunk in body:
        yield b"%x\r\n" % len(chunk) + chunk + b"\r\n" if chunked else chunk
    if chunked:
        yield b"0\r\n\r\n"


During = Callable[[Client, list[CallToolResult]], Awaitable[None]]


async def with_a_call_in_flight(server: HttpServer, emulator: RunningEmulator, during: During) -> list[CallToolResult]:
    """Start a slow generate_image call, run `during` once the emulator has it, and wait for its result."""
    results: list[CallToolResult] = []
    with anyio.fail_after(30):
        try:
            async with (
                create_mcp_http_client(headers=BEARER) as http,
                Client(streamable_http_client(server.url, http_client=http)) as session,
                anyio.create_task_group() as tg,
            ):
                # Listed first: the client checks results against the output schema, and would otherwise
                # fetch it after the result.
                await session.list_tools()

                async def call() -> None:
                    results.append(await session.call_tool("generate_image", {"prompt": "finish me"}))

                tg.start_soon(call)
                while not emulator.state.responses:
                    await anyio.sleep(0.01)
                await during(session, results)
        except BaseExceptionGroup as group:
            # Closing the client may still try to reach the server that is gone by then; nothing else may fail.
            _, unexpected = group.split(httpx2.ConnectError)
            if unexpected is not None:
                raise
    return results


def logged(server: HttpServer, text: str) -> bool:
    return any(text in line for line in server.log)


BIG = 96 * MiB


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc")
async def test_a_refused_body_is_never_read_not_even_while_draining(tmp_path: Path) -> None:
    answers: dict[str, tuple[int, int]] = {}
    grown: list[int] = []
    with emulator_running(EmulatorConfig(latency=1.5)) as emulator:
        server = GraceServer(emulator.endpoint, tmp_path, grace=0.2, args=["--max-request-mb", "4"])
        try:
            server.wait_ready()
            before = server.peak_memory()
            answers["no token"] = await anyio.to_thread.run_sync(lambda: post(server.port, {}, BIG))

            async def during(session: Client, results: list[CallToolResult]) -> None:
                server.process.send_signal(signal.SIGTERM)
                await anyio.to_thread.run_sync(lambda: wait_until(lambda: logged(server, "Shutting down")))
                cases = {
                    "draining, no token": ({}, False),
                    "draining, bad token": ({"Authorization": "Bearer not-a-valid-token-at-all"}, False),
                    "draining, bad Host": ({**BEARER, "Host": f"127.0.0.1:{server.port}.evil.example"}, False),
                    "draining, declared too large": (BEARER, True),
                    "draining, too large": (BEARER, False),
                }
                for name, (headers, declared) in cases.items():
                    answers[name] = await anyio.to_thread.run_sync(
                        lambda: post(server.port, headers, BIG, declared=declared)  # noqa: B023
                    )
                grown.append(server.peak_memory() - before)

            results = await with_a_call_in_flight(server, emulator, during)
            assert server.process.wait(timeout=30) == 0
        finally:
            server.stop()
    assert {name: status for name, (status, _) in answers.items()} == {
        "no token": 401,
        "draining, no token": 401,
        "draining, bad token": 401,
        "draining, bad Host": 421,
        "draining, declared too large": 413,
        "draining, too large": 413,
    }
    assert all(sent < BIG // 2 for _, sent in answers.values()), answers  # answered long before the end
    assert grown[0] < 32 * MiB, f"peak memory grew {grown[0] / MiB:.0f} MiB"
    assert len(results) == 1 and not results[0].is_error


async def test_the_image_just_made_can_still_be_read_after_the_drain(tmp_path: Path) -> None:
    with emulator_running(EmulatorConfig(latency=1)) as emulator:
        server = GraceServer(emulator.endpoint, tmp_path, grace=1.0)
        read: list[Any] = []
        refused: list[int] = []
        try:
            server.wait_ready()

            async def during(session: Client, results: list[CallToolResult]) -> None:
                server.process.send_signal(signal.SIGTERM)
                while not results:
                    await anyio.sleep(0.01)
                # The last call in flight has delivered its result: the old server exited now.
                finished = CALLS_FINISHED.split(";")[0]
                exited = server.process.poll
                await anyio.to_thread.run_sync(lambda: wait_until(lambda: logged(server, finished) or exited()))
                assert exited() is None, "the server exited right after the last result"
                read.append(await session.read_resource(parts(results[0])[1].uri))
                async with httpx2.AsyncClient(base_url=server.base_url, timeout=10) as http:
                    new = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **BEARER})
                refused.append(new.status_code)

            results = await with_a_call_in_flight(server, emulator, during)
            code = await anyio.to_thread.run_sync(lambda: server.process.wait(timeout=15))
        finally:
            server.stop()
    assert len(results) == 1 and not results[0].is_error
    (content,) = read[0].contents
    assert base64.b64decode(content.blob) == Path(results[0].structured_content["path"]).read_bytes()
    assert refused == [503]
    assert code == 0


async def test_the_real_server_matches_host_and_origin_exactly(tmp_path: Path) -> None:
    with emulator_running() as emulator:
        server = GraceServer(emulator.endpoint, tmp_path, grace=0.1)
        try:
            port = int(server.wait_ready().rsplit(":", 1)[1])
            hosts = {
                f"127.0.0.1:{port}.evil.example": 421,
                f"localhost:{port}@evil": 421,
                f"localhost.evil.example:{port}": 421,
                "127.0.0.1:99999": 421,
                f"LOCALHOST:{port}": 200,
                f"[::1]:{port}": 200,
            }
            origins = {f"http://127.0.0.1:{port}.evil.example": 403, f"http://LocalHost:{port}": 200}
            answers: dict[str, int] = {}
            async with httpx2.AsyncClient(base_url=server.base_url, timeout=10) as http:
                for name, value in [*(("Host", host) for host in hosts), *(("Origin", origin) for origin in origins)]:
                    headers = {**MCP_HEADERS, **BEARER, name: value}
                    answers[value] = (await http.post("/mcp", json=INITIALIZE, headers=headers)).status_code
        finally:
            server.stop()
    assert answers == {**hosts, **origins}
