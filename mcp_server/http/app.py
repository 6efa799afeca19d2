"""The streamable HTTP transport: the SDK's app at /mcp, /healthz, safe defaults, graceful shutdown.

Safe by default: it binds 127.0.0.1, checks Host and Origin against DNS rebinding, and refuses
to listen on any other address without inbound auth unless told so explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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
from mcp_server.config import AUTH_TOKENS_VAR, LOOPBACK_HOSTS, InboundAuthSettings, Settings, is_loopback
from mcp_server.errors import ConfigurationError
from mcp_server.http.verifiers import advertised_issuer, build_verifier
from mcp_server.tools.server import ImageServer, InboundAuth, build_server

logger = logging.getLogger(__name__)

MCP_PATH: Final = "/mcp"
DEFAULT_MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
"""Edit inputs travel inside the request as data URLs; the SDK's default of 4 MiB fits one small photo."""
SHUTDOWN_SECONDS: Final = 60


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


def transport_security(options: HttpOptions) -> TransportSecuritySettings:
    hosts = [f"[{host}]:*" if ":" in host else f"{host}:*" for host in sorted(LOOPBACK_HOSTS)]
    origins = [f"http://{host}" for host in hosts]
    if not is_loopback(options.host) and options.host not in ("0.0.0.0", "::"):
        hosts.append(f"{options.host}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *options.allowed_hosts],
        allowed_origins=[*origins, *options.allowed_origins],
    )


def inbound_verifier(settings: InboundAuthSettings, options: HttpOptions) -> TokenVerifier | None:
    """The verifier `settings` configure, or None; refuses an open non-loopback server."""
    verifier = build_verifier(settings)
    if verifier is None and not is_loopback(options.host) and not options.allow_unauthenticated:
        raise ConfigurationError(
            f"Refusing to serve on {options.host} without inbound authentication.",
            hint=f"Set {AUTH_TOKENS_VAR} (or the FOUNDRY_IMAGE_MCP_ENTRA_* settings), bind "
            "127.0.0.1, or pass --allow-unauthenticated if something in front of the server authenticates.",
        )
    return verifier


def inbound_auth(verifier: TokenVerifier, options: HttpOptions, base_url: str) -> InboundAuth:
    issuer = advertised_issuer(verifier) or base_url
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

    verifier = inbound_verifier(settings.inbound, options)
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
