"""The streamable HTTP transport: the SDK's app at /mcp, /healthz, safe defaults, graceful shutdown.

Safe by default: it binds 127.0.0.1, checks Host and Origin exactly against DNS rebinding (rebinding.py),
and refuses to listen on any other address without inbound auth unless told so explicitly. On the first
SIGINT/SIGTERM it drains (drain.py) before it stops.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server import __version__
from mcp_server.config import AUTH_TOKENS_VAR, LOOPBACK_HOSTS, InboundAuthSettings, Settings, is_loopback
from mcp_server.errors import ConfigurationError
from mcp_server.http.drain import SHUTDOWN_SECONDS, Drain, draining_server
from mcp_server.http.gate import Gate
from mcp_server.http.rebinding import AllowList, RebindingGuard
from mcp_server.http.studio import STUDIO_PATHS, add_studio, studio_url
from mcp_server.http.verifiers import advertised_issuer, build_verifier
from mcp_server.tools.server import ImageServer, InboundAuth, build_server

logger = logging.getLogger(__name__)

MCP_PATH: Final = "/mcp"
DEFAULT_MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
"""Edit inputs travel inside the request as data URLs; the SDK's default of 4 MiB fits one small photo."""
SDK_REBINDING_CHECK_OFF: Final = TransportSecuritySettings(enable_dns_rebinding_protection=False)
"""The SDK matches `host:*` by prefix, after reading the body; RebindingGuard checks exactly, before it."""


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


def allow_list(options: HttpOptions) -> AllowList:
    """Loopback on any port, the bound address if it is a specific one, and what the options add."""
    hosts = [_bracketed(host) + ":*" for host in sorted(LOOPBACK_HOSTS)]
    origins = [f"http://{host}" for host in hosts]
    if not is_loopback(options.host) and options.host not in ("0.0.0.0", "::"):
        hosts.append(_bracketed(options.host) + ":*")
    return AllowList([*hosts, *options.allowed_hosts], [*origins, *options.allowed_origins])


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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


def build_http_server(settings: Settings, auth: InboundAuth | None) -> ImageServer:
    server = build_server(settings, auth)
    server.custom_route("/healthz", methods=["GET"])(_healthz)
    add_studio(server)
    return server


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening now: clients that connect before uvicorn has started wait
    in the backlog instead of being refused.

    Created with protocol IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose protocol
    says TCP, and without it Nagle's algorithm meets delayed ACKs, costing ~40 ms on every request whose answer
    is written in more than one piece (each request of the 2026-07-28 protocol over streamable HTTP)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve_http(settings: Settings, options: HttpOptions, on_listening: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; calls in flight then get up to a minute to finish, and the reads that
    follow them a moment more (drain.py). `on_listening` is called with the base URL once the port is bound."""
    import uvicorn

    verifier = inbound_verifier(settings.inbound, options)
    allowed = allow_list(options)
    sock = listening_socket(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{port}"
    auth = inbound_auth(verifier, options, base_url) if verifier else None
    server = build_http_server(settings, auth)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=options.stateless,
        max_request_body_size=options.max_request_bytes,
        transport_security=SDK_REBINDING_CHECK_OFF,
        host=options.host,
    )
    logger.warning("Serving MCP over streamable HTTP at %s%s", base_url, MCP_PATH)
    logger.warning("Image studio in a browser: %s", studio_url(base_url))
    # Outermost first: Host/Origin, then (while draining) token, size and "does it start work?", then the SDK.
    drain = Drain(app, Gate(options.max_request_bytes, auth), MCP_PATH)
    config = uvicorn.Config(
        RebindingGuard(drain, allowed, {MCP_PATH, *STUDIO_PATHS}),
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        lifespan="on",
        access_log=False,
    )
    if on_listening is not None:
        on_listening(base_url)
    draining_server(config, drain).run(sockets=[sock])
