"""What must be checked before a request body is read: the bearer token and the declared size; and a reader
that stops at the size limit.

The SDK's own app checks the token and the declared size before it reads a body; the drain (drain.py)
reads bodies in front of it, so it makes the same checks first, answering as the SDK would.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.tools.server import InboundAuth


def too_large() -> Response:
    """The SDK's answer to a body over `max_request_body_size`."""
    return Response("Request body too large", status_code=413)


class Gate:
    """The token and size checks the SDK makes before it reads a body, and a body reader bounded the same way."""

    def __init__(self, max_bytes: int, auth: InboundAuth | None = None) -> None:
        self.max_bytes = max_bytes
        self._backend = BearerAuthBackend(auth.verifier) if auth else None
        resource = auth.settings.resource_server_url if auth else None
        metadata_url = build_resource_metadata_url(resource) if resource else None
        # Reached only with no authenticated user in the scope, so it always answers the SDK's 401.
        self._unauthorized = RequireAuthMiddleware(_never_reached, [], metadata_url)

    async def refusal(self, scope: Scope) -> ASGIApp | None:
        """The answer to a request refused on its headers alone, or None."""
        if self._backend is not None and await self._backend.authenticate(HTTPConnection(scope)) is None:
            return self._unauthenticated
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return too_large()
        return None

    async def _unauthenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._unauthorized({**scope, "user": None}, receive, send)

    async def read(self, receive: Receive) -> tuple[bytes | None, Receive]:
        """The body (None as soon as it passes the limit, the rest unread), and a `receive` that replays it."""
        chunks: list[bytes] = []
        size = 0
        complete = False
        cached: deque[Message] = deque()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                cached.append(message)  # the client left before the end of the body
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None, receive
            chunks.append(chunk)
            if not message.get("more_body", False):
                complete = True
                break
        body = b"".join(chunks)
        if chunks or complete:
            cached.appendleft({"type": "http.request", "body": body, "more_body": not complete})
        del chunks

        async def replay() -> Message:
            return cached.popleft() if cached else await receive()

        return body, replay


async def _never_reached(scope: Scope, receive: Receive, send: Send) -> Any:
    raise AssertionError("the gate's 401 answer let a request through")
