"""DNS-rebinding protection: the Host and Origin of each MCP request, matched exactly, before the body is read.

The SDK's own check matches a `host:*` pattern by prefix (so it lets `127.0.0.1:8000.evil.example`
through) and runs only after the whole request body has been read. This one compares the host exactly
(case-insensitive) and the port exactly, a `:*` pattern meaning any port of 1-5 digits up to 65535,
and answers as the SDK does (421 for a bad Host, 403 for a bad Origin) before the body is read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.errors import ConfigurationError

logger = logging.getLogger(__name__)

ANY_PORT: Final = "*"
_HOST: Final = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
_SCHEME: Final = r"([A-Za-z][A-Za-z0-9+.-]*)://"
_PORT: Final = r"[0-9]{1,5}"


def _shape(origin: bool, pattern: bool) -> re.Pattern[str]:
    port = _PORT + (r"|\*" if pattern else "")
    return re.compile((_SCHEME if origin else "()") + _HOST + f"(?::({port}))?")


_SHAPES: Final = {(origin, pattern): _shape(origin, pattern) for origin in (False, True) for pattern in (False, True)}


@dataclass(frozen=True)
class Authority:
    """`host[:port]` or `scheme://host[:port]`: scheme and host in lower case (IPv6 in brackets), and the
    port as written, `*` (any) or None (none given)."""

    scheme: str
    host: str
    port: str | None

    def admits(self, other: Authority) -> bool:
        """Whether `other`, as a request sent it, is what this allowed value (or `:*` pattern) names."""
        if (other.scheme, other.host) != (self.scheme, self.host):
            return False
        return other.port is not None if self.port == ANY_PORT else other.port == self.port


def parse(text: str, *, origin: bool = False, pattern: bool = False) -> Authority | None:
    """`text` as an Authority, or None unless it is exactly one (no path, user, space or stray character)."""
    found = _SHAPES[origin, pattern].fullmatch(text)
    if found is None:
        return None
    scheme, host, port = found.groups()
    if port not in (None, ANY_PORT) and not 0 < int(port) <= 65535:
        return None
    return Authority(scheme.lower(), host.lower(), port)


class AllowList:
    """The Host and Origin values a request to the MCP endpoint may carry; `:*` allows any port."""

    def __init__(self, hosts: Iterable[str], origins: Iterable[str]) -> None:
        self.hosts = tuple(hosts)
        self.origins = tuple(origins)
        self._hosts = [_allowed(value, origin=False) for value in self.hosts]
        self._origins = [_allowed(value, origin=True) for value in self.origins]

    def host_allowed(self, value: str) -> bool:
        given = parse(value)
        return given is not None and any(allowed.admits(given) for allowed in self._hosts)

    def origin_allowed(self, value: str) -> bool:
        given = parse(value, origin=True)
        return given is not None and any(allowed.admits(given) for allowed in self._origins)

    def refusal(self, headers: Headers) -> Response | None:
        """The SDK's answer to a request whose Host or Origin is not allowed, or None for an allowed one."""
        hosts = headers.getlist("host")
        if len(hosts) != 1 or not self.host_allowed(hosts[0]):
            logger.warning("Refused a request with Host %r (not an allowed host; see --allowed-host)", hosts)
            return Response("Invalid Host header", status_code=421)
        origins = headers.getlist("origin")
        # No Origin (or an empty one) is a same-origin or non-browser request, as the SDK treats it.
        if len(origins) > 1 or (origins and origins[0] and not self.origin_allowed(origins[0])):
            logger.warning("Refused a request with Origin %r (not an allowed origin; see --allowed-origin)", origins)
            return Response("Invalid Origin header", status_code=403)
        return None


def _allowed(value: str, *, origin: bool) -> Authority:
    parsed = parse(value, origin=origin, pattern=True)
    if parsed is None:
        shape = "scheme://host[:port]" if origin else "host[:port]"
        flag = "--allowed-origin" if origin else "--allowed-host"
        raise ConfigurationError(
            f"{flag} {value!r} is not of the form {shape}.",
            hint=f"Give {shape} exactly, the port as digits or * for any port, an IPv6 address in brackets.",
        )
    return parsed


class RebindingGuard:
    """ASGI wrapper that refuses a request to `path` (or any of `paths`) whose Host or Origin the allow-list
    does not name."""

    def __init__(self, app: ASGIApp, allowed: AllowList, path: str | Iterable[str]) -> None:
        self.app = app
        self.allowed = allowed
        self.paths = frozenset((path,) if isinstance(path, str) else path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in self.paths:
            refusal = self.allowed.refusal(Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
