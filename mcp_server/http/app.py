"""The streamable HTTP transport: the SDK's app at /mcp, /healthz, safe defaults, graceful shutdown.

Safe by default: it binds 127.0.0.1, checks Host and Origin against DNS rebinding, and refuses
to listen on any other address without inbound auth unless told so explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server import __version__
from mcp_server.config import Settings
from mcp_server.errors import ConfigurationError
from mcp_server.tools.server import ImageServer, InboundAuth, build_server

logger = logging.getLogger(__name__)

MCP_PATH: Final = "/mcp"
DEFAULT_MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
"""Edit inputs travel inside the request as data URLs; the SDK's default of 4 MiB fits one small photo."""
SHUTDOWN_SECONDS: Final = 60
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    stateless: bool = False
    allow_unauthenticated: bool = False
    allowed_hosts: Sequence[str] = ()
    allowed_origins: Sequence[str] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    public_url: str | None = None
    json_response: bool = False


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(options: HttpOptions) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(options.host) and options.host not in ("0.0.0.0", "::"):
        hosts.append(f"{options.host}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *options.allowed_hosts],
        allowed_origins=[*origins, *options.allowed_origins],
    )


def inbound_verifier(options: HttpOptions) -> TokenVerifier | None:
    """The verifier configured in the environment, or None; refuses an open non-loopback server."""
    from mcp_server.http.inbound_auth import build_verifier

    verifier = build_verifier(os.environ)
    if verifier is None and not is_loopback(options.host) and not options.allow_unauthenticated:
        raise ConfigurationError(
            f"Refusing to serve on {options.host} without inbound authentication.",
            hint="Set FOUNDRY_IMAGE_MCP_AUTH_TOKENS (or the FOUNDRY_IMAGE_MCP_ENTRA_* settings), bind "
            "127.0.0.1, or pass --allow-unauthenticated if something in front of the server authenticates.",
        )
    return verifier


def inbound_auth(verifier: TokenVerifier, options: HttpOptions, base_url: str) -> InboundAuth:
    from mcp_server.http.inbound_auth import ENTRA_TENANT_VAR

    tenant = os.environ.get(ENTRA_TENANT_VAR)
    issuer = f"https://login.microsoftonline.com/{tenant}/v2.0" if tenant else base_url
    resource = (options.public_url or base_url).rstrip("/") + MCP_PATH
    settings = AuthSettings.model_validate(
        {"issuer_url": issuer, "resource_server_url": resource, "validate_token_resource": False}
    )
    return InboundAuth(verifier=verifier, settings=settings)


def build_http_server(
    settings: Settings, options: HttpOptions, base_url: str, verifier: TokenVerifier | None
) -> ImageServer:
    server = build_server(settings, inbound_auth(verifier, options, base_url) if verifier else None)
    server.custom_route("/healthz", methods=["GET"])(_healthz)
    return server


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


def serve_http(settings: Settings, options: HttpOptions) -> None:
    """Serve until SIGINT/SIGTERM; in-flight calls then get up to a minute to finish."""
    import uvicorn

    verifier = inbound_verifier(options)
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((options.host, options.port))
    # Listening now: clients that connect before uvicorn has started wait in the backlog instead of being refused.
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{port}"
    server = build_http_server(settings, options, base_url, verifier)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=options.stateless,
        json_response=options.json_response,
        max_request_body_size=options.max_request_bytes,
        transport_security=transport_security(options),
        host=options.host,
    )
    logger.warning("Serving MCP over streamable HTTP at %s%s", base_url, MCP_PATH)
    drain = Drain(app)
    config = uvicorn.Config(
        drain, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_SECONDS, lifespan="on", access_log=False
    )
    _DrainingServer(config, drain).run(sockets=[sock])


class Drain:
    """ASGI wrapper that counts MCP requests in flight and, once draining, turns new work away with 503.

    uvicorn's own graceful shutdown tears the SDK's response streams down at once; draining first
    lets every tool call in flight deliver its result before uvicorn starts shutting down.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.draining = False
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != MCP_PATH:
            await self.app(scope, receive, send)
            return
        if self.draining:
            body, receive = await _buffered(receive)
            if _starts_work(body):
                refusal = JSONResponse({"error": "shutting down"}, status_code=503, headers={"retry-after": "5"})
                await refusal(scope, receive, send)
                return
        self.in_flight += 1
        self.idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read a request body, and a `receive` that hands the same body to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _starts_work(body: bytes) -> bool:
    """A new session or a new tool call; responses and notifications of existing calls still get through."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    items = message if isinstance(message, list) else [message]
    return any(isinstance(m, dict) and m.get("method") in ("initialize", "tools/call") for m in items)


class _DrainingServer:
    """uvicorn.Server whose first SIGINT/SIGTERM drains MCP requests before the usual shutdown."""

    def __new__(cls, config: Any, drain: Drain) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                if drain.draining or self.should_exit:
                    super().handle_exit(sig, frame)  # a second signal: stop now
                    return
                drain.draining = True
                logger.warning("Shutting down: waiting for %d call(s) in flight", drain.in_flight)
                asyncio.get_running_loop().create_task(self._drain_then_exit())

            async def _drain_then_exit(self) -> None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drain.idle.wait(), SHUTDOWN_SECONDS)
                self.should_exit = True

        return Server(config)
