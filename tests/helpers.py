"""Shared test plumbing: launching the real server over stdio, and a local managed-identity endpoint."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mcp import StdioServerParameters
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent

MODES = ["auto", "legacy"]


def server_params(
    endpoint: str,
    output_dir: Path,
    *,
    api_key: str | None = "test-key",
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> StdioServerParameters:
    """The real server as a subprocess, configured only by the environment we give it."""
    env = {
        "AZURE_AI_PROJECT_ENDPOINT": endpoint,
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
        "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(output_dir),
        "PYTHONUNBUFFERED": "1",
    }
    if api_key is not None:
        env["AZURE_AI_API_KEY"] = api_key
    env.update(extra_env or {})
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
    """An App Service style managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)."""

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

    def __init__(self, params: StdioServerParameters) -> None:
        import os
        import subprocess

        self.process = subprocess.Popen(
            [params.command, *params.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
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

    def leave(self, timeout: float = 60) -> int:
        """Close stdin, as a client that exits does, and wait for the server to finish."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
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
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code
