"""Shared test plumbing: the real server in this process or as a subprocess, and local HTTP endpoints.

Most tests drive the server in-process (`connect`: an `mcp.Client` on `build_server(...)`, configured by
the same environment variables a client would set, with short retry delays). A subprocess (`server_params`,
`RawStdioClient`, `HttpServer`) is only for tests whose subject is the process: the stdio and HTTP
transports, the command line, leaving or crashing and restarting.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent

from mcp_server.config import Settings
from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.service.pending import Sleep
from mcp_server.tools.server import build_server

MODES = ["auto", "legacy"]
FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.01)
"""The default policy (same attempts and deadline) without its back-off waits; a delay the service asks
for (`retry-after`) is still honoured, as in production."""
SERVER_VARIABLES = ("AZURE_AI_", "FOUNDRY_IMAGE_MCP_")


_stopping: list[threading.Thread] = []


def stop_later(running: RunningEmulator) -> None:
    """Stop an emulator without waiting for it: uvicorn needs 0.1-0.2 s to notice, and nothing of this emulator
    (its port, its state) is shared, so the next test need not wait. `finish_stopping` joins them all."""
    thread = threading.Thread(target=running.stop, name=f"stop-emulator-{running.port}", daemon=True)
    thread.start()
    _stopping.append(thread)


def finish_stopping(timeout: float = 30) -> None:
    while _stopping:
        _stopping.pop().join(timeout)


@contextmanager
def emulator_running(config: EmulatorConfig | None = None, *, port: int = 0) -> Iterator[RunningEmulator]:
    """`start_emulator` as a context manager that does not wait for the emulator to stop."""
    running = start_emulator(config or EmulatorConfig(), port=port)
    try:
        yield running
    finally:
        stop_later(running)


def server_env(
    endpoint: str, output_dir: Path, *, api_key: str | None = "test-key", extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a client configures the server with."""
    env = {
        "AZURE_AI_PROJECT_ENDPOINT": endpoint,
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
        "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(output_dir),
    }
    if api_key is not None:
        env["AZURE_AI_API_KEY"] = api_key
    env.update(extra_env or {})
    return env


def image_server(
    endpoint: str,
    output_dir: Path,
    *,
    api_key: str | None = "test-key",
    extra_env: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = FAST_RETRY,
    rescan_sleep: Sleep = anyio.sleep,
) -> MCPServer[Any]:
    """The real server, built in this process from the settings `server_env` describes."""
    unread = sorted(name for name in extra_env or {} if not name.startswith(SERVER_VARIABLES))
    if unread:
        # Settings.load reads only the server's own variables; anything else (IDENTITY_ENDPOINT, ...) is read
        # from os.environ by a library, so a test must set it there (monkeypatch; see the managed_identity fixture).
        raise ValueError(f"{unread} are not server settings; set them with monkeypatch.setenv")
    settings = Settings.load(environ=server_env(endpoint, output_dir, api_key=api_key, extra_env=extra_env))
    return build_server(settings, retry=retry, rescan_sleep=rescan_sleep)


def connect(
    endpoint: str,
    output_dir: Path,
    *,
    mode: str = "auto",
    api_key: str | None = "test-key",
    extra_env: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = FAST_RETRY,
    rescan_sleep: Sleep = anyio.sleep,
    **client_options: Any,
) -> Client:
    """An in-process `mcp.Client` (not yet entered) on a server configured by this environment."""
    server = image_server(
        endpoint, output_dir, api_key=api_key, extra_env=extra_env, retry=retry, rescan_sleep=rescan_sleep
    )
    return Client(server, mode=mode, **client_options)


def server_params(
    endpoint: str,
    output_dir: Path,
    *,
    api_key: str | None = "test-key",
    extra_env: Mapping[str, str] | None = None,
    args: list[str] | None = None,
) -> StdioServerParameters:
    """The real server as a subprocess over stdio, configured only by the environment we give it."""
    env = {**server_env(endpoint, output_dir, api_key=api_key, extra_env=extra_env), "PYTHONUNBUFFERED": "1"}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", *(args or ["serve", "--log-level", "WARNING"])], env=env
    )


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def parts(result: CallToolResult) -> tuple[ImageContent, ResourceLink, TextContent]:
    images = [b for b in result.content if isinstance(b, ImageContent)]
    links = [b for b in result.content if isinstance(b, ResourceLink)]
    texts = [b for b in result.content if isinstance(b, TextContent)]
    assert len(images) == 1 and len(links) == 1 and len(texts) == 1, result.content
    return images[0], links[0], texts[0]


def preview_bytes(result: CallToolResult) -> bytes:
    return base64.b64decode(parts(result)[0].data)


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that writes no access log and finishes a reply whose status line is already sent."""

    def reply(self, body: bytes, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def serving(server: ThreadingHTTPServer, handler: type[BaseHTTPRequestHandler]) -> Iterator[None]:
    """Serve `handler` on a loopback server in a thread until the block ends."""
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class TokenEndpoint:
    """An App Service style managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER).

    A failing answer (`status` other than 200) carries `Retry-After: 0.01`: azure-identity retries 5xx
    answers (azure-core's policy: seconds of exponential back-off), and honours the endpoint's own delay
    instead, so the retries still happen, without the wait.
    """

    url: str
    secret: str
    token: str
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    status: int = 200

    @property
    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}


@contextmanager
def token_endpoint(token: str = "token-from-managed-identity", status: int = 200) -> Iterator[TokenEndpoint]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    endpoint = TokenEndpoint(
        url=f"http://127.0.0.1:{server.server_address[1]}/msi/token",
        secret="local-identity-header",
        token=token,
        status=status,
    )

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            endpoint.calls.append({"query": query, "header": self.headers.get("X-IDENTITY-HEADER")})
            if self.headers.get("X-IDENTITY-HEADER") != endpoint.secret or endpoint.status != 200:
                body = json.dumps({"error": {"code": "Unauthorized", "message": "identity refused"}}).encode()
                self.send_response(400 if endpoint.status == 200 else endpoint.status)
                self.send_header("Retry-After", "0.01")
            else:
                body = json.dumps(
                    {
                        "access_token": endpoint.token,
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": query.get("resource", ""),
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
            self.reply(body, {"Content-Type": "application/json"})

    with serving(server, Handler):
        yield endpoint


@dataclass
class StaticServer:
    """A loopback HTTP server answering fixed routes: path -> (status, headers, body)."""

    base_url: str
    routes: dict[str, tuple[int, dict[str, str], bytes]]
    hits: list[str] = field(default_factory=list[str])


@contextmanager
def static_server(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[StaticServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    static = StaticServer(base_url=f"http://127.0.0.1:{server.server_address[1]}", routes=routes)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            static.hits.append(self.path)
            status, headers, body = static.routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            self.reply(body, headers)

    with serving(server, Handler):
        yield static


def encode_image(image: Any, fmt: str = "PNG") -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header
    return base64.b64decode(payload)


class RawStdioClient:
    """A bare-bones stdio client: lets a test leave abruptly (close stdin, or kill) as no SDK client would."""

    def __init__(self, params: StdioServerParameters, stderr: Any = None) -> None:
        """`stderr`: where the server's log goes (a file, say); by default nowhere."""
        import os
        import subprocess

        self.process = subprocess.Popen(
            [params.command, *params.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            env={**os.environ, **(params.env or {})},
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
        self.process.stdin.flush()

    def initialize(self) -> dict[str, Any]:
        self.send(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        )
        assert self.process.stdout is not None
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        self.send({"method": "notifications/initialized"})
        return answer

    def call_tool(self, name: str, arguments: dict[str, Any], request_id: int = 2) -> None:
        self.send({"id": request_id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})

    def close_stdin(self) -> None:
        """Close stdin, as a client that exits does."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()

    def leave(self, timeout: float = 60) -> int:
        """Close stdin, as a client that exits does, and wait for the server to finish."""
        assert self.process.stdout is not None
        self.close_stdin()
        code = self.process.wait(timeout=timeout)
        self.process.stdout.close()
        return code

    def kill(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdin.close()
        self.process.stdout.close()


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll a condition set by another thread or process, with a bounded wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class HttpServer:
    """The real server as a subprocess on streamable HTTP (port chosen by the OS, read from its log)."""

    def __init__(
        self, endpoint: str, output_dir: Path, *, extra_env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        import os
        import subprocess

        params = server_params(endpoint, output_dir, extra_env=extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", "0", *(args or [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(params.env or {})},
            text=True,
        )
        self.log: list[str] = []
        self._ready = threading.Event()
        self.base_url = ""
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "Serving MCP over streamable HTTP at " in line and not self.base_url:
                self.base_url = line.rsplit(" at ", 1)[1].strip().removesuffix("/mcp")
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 30) -> str:
        assert self._ready.wait(timeout), "server did not start"
        assert self.base_url, "".join(self.log)
        return self.base_url

    @property
    def url(self) -> str:
        return self.base_url + "/mcp"

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM (drain), then, once no call is in flight, a second one: no test waits out the read grace
        (tests/test_http_hardening.py covers it)."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                if any("no call in flight" in line for line in self.log):
                    self.process.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.01)
        code = self.process.wait(timeout=timeout)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code
