"""`/studio`: the image studio in a plain browser, with a minimal MCP Apps host of our own.

The page (`assets/studio-host.*`) is an MCP client over streamable HTTP (`fetch` to `/mcp`, same origin, so
the exact Host/Origin checks of rebinding.py apply as to any client) that reads the tools' `ui://` view with
`resources/read`, renders it in a sandboxed iframe, and implements the host side of the Apps bridge.

The page holds no data, only code, so it is served without a token: a browser cannot add an `Authorization`
header to a navigation. Every MCP request it makes is authenticated like any other client's: when `/mcp`
answers 401, the page asks for the bearer token, keeps it in the tab's memory, and sends it as
`Authorization` on each request. No cookie is used, so no other site can make the browser call `/mcp` with
the person's credentials (no CSRF).

Content Security Policy: the page may load only its own script and style and talk only to its own origin. The
view runs in an `about:srcdoc` frame, which inherits the page's policy, so the policy also allows the view's
inline script and style by their SHA-256 hashes (nothing else inline) and `data:` images; the host adds the
spec's restrictive policy (no network at all) inside the view.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_server.tools.server import ImageServer
from mcp_server.tools.studio import studio_html

STUDIO_PATH: Final = "/studio"
ASSETS: Final = {
    STUDIO_PATH: ("studio-host.html", "text/html; charset=utf-8"),
    STUDIO_PATH + "/host.js": ("studio-host.js", "text/javascript; charset=utf-8"),
    STUDIO_PATH + "/host.css": ("studio-host.css", "text/css; charset=utf-8"),
}
STUDIO_PATHS: Final = frozenset(ASSETS)


def _asset(name: str) -> bytes:
    return files("mcp_server.http").joinpath("assets", name).read_bytes()


def _hashes(tag: str, html: str) -> list[str]:
    """The CSP source of each inline `<tag>` element of `html`, by the SHA-256 of its text."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'" for text in found]


@cache
def page_policy() -> str:
    """The host page's Content-Security-Policy (see the module's docstring)."""
    view = studio_html()
    scripts = " ".join(_hashes("script", view))
    styles = " ".join(_hashes("style", view))
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {scripts}",
            f"style-src 'self' {styles}",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def _serve(request: Request) -> Response:
    name, media_type = ASSETS[request.url.path]
    headers = {
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": page_policy(),
    }
    return Response(_asset(name), media_type=media_type, headers=headers)


def add_studio(server: ImageServer) -> None:
    """Serve the studio's host page and its script and style on `server`'s HTTP app."""
    for path in ASSETS:
        server.custom_route(path, methods=["GET"])(_serve)


def studio_url(base_url: str) -> str:
    return base_url.rstrip("/") + STUDIO_PATH
