"""Graceful shutdown: on the first SIGINT/SIGTERM, finish the calls in flight and the reads that follow them.

uvicorn's own graceful shutdown tears the SDK's response streams down at once. Draining first turns new
sessions and tool calls away with 503, lets every call in flight deliver its result, and then keeps
answering everything else (resources/read of the image just made, resources/list, notifications, the
session's GET and DELETE) until no request has come for READ_GRACE seconds; never longer than
SHUTDOWN_SECONDS in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.http.gate import Gate, too_large

logger = logging.getLogger(__name__)

SHUTDOWN_SECONDS: Final = 60
READ_GRACE: float = 2.0
"""Seconds without a request after which a draining server exits (read when the drain starts)."""
CALLS_FINISHED: Final = "Shutting down: no call in flight; still answering reads until none has come for %g s"


class Drain:
    """ASGI wrapper that counts requests to `path` and, once draining, turns new work away with 503.

    While draining it reads a POST body to see whether it starts work, but only after the checks the SDK
    makes before reading one (bearer token, declared size), and never past the size limit. Requests let
    through (and only those) count as activity: the drain ends READ_GRACE seconds after the last one.
    """

    def __init__(self, app: ASGIApp, gate: Gate, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.gate = gate
        self.path = path
        self.clock = clock
        self.draining = False
        self.in_flight = 0
        self.last_request = -math.inf
        self.changed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        if self.draining:
            refusal, receive = await self._screen(scope, receive)
            if refusal is not None:  # a refused request does not hold the exit back
                await refusal(scope, receive, send)
                return
        self.last_request = self.clock()
        if scope.get("method") != "POST":  # the session's GET stream and DELETE start no work
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.last_request = self.clock()
            self.changed.set()

    async def _screen(self, scope: Scope, receive: Receive) -> tuple[ASGIApp | None, Receive]:
        refusal = await self.gate.refusal(scope)
        if refusal is not None or scope.get("method") != "POST":
            return refusal, receive
        body, receive = await self.gate.read(receive)
        if body is None:
            return too_large(), receive
        if _starts_work(body):
            return JSONResponse({"error": "shutting down"}, status_code=503, headers={"retry-after": "5"}), receive
        return None, receive

    def seconds_to_wait(self, grace: float, deadline: float) -> float:
        """How long before the server may exit: until no request is in flight and none has come for `grace`
        seconds (the time left before `deadline` while one is in flight), never past `deadline`; 0 = now."""
        now = self.clock()
        if self.in_flight:
            return max(0.0, deadline - now)
        return max(0.0, min(self.last_request + grace, deadline) - now)

    async def settle(self, grace: float, deadline: float) -> None:
        """Return once `seconds_to_wait` says the server may exit."""
        while (wait := self.seconds_to_wait(grace, deadline)) > 0:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)


def _starts_work(body: bytes) -> bool:
    """A new session or a new tool call; responses and notifications of existing calls still get through."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    items = message if isinstance(message, list) else [message]
    return any(isinstance(m, dict) and m.get("method") in ("initialize", "tools/call") for m in items)


def draining_server(config: Any, drain: Drain) -> Any:
    """A uvicorn.Server whose first SIGINT/SIGTERM drains MCP requests before the usual shutdown."""
    import uvicorn

    class Server(uvicorn.Server):
        drainer: asyncio.Task[None] | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if drain.draining or self.should_exit:
                super().handle_exit(sig, frame)  # a second signal: stop now
                return
            drain.draining = True
            logger.warning("Shutting down: waiting for %d call(s) in flight", drain.in_flight)
            self.drainer = asyncio.get_running_loop().create_task(self._drain_then_exit())

        async def _drain_then_exit(self) -> None:
            deadline = drain.clock() + SHUTDOWN_SECONDS
            await drain.settle(0, deadline)
            if drain.in_flight:
                logger.warning("Shutting down: %d request(s) still in flight at the time limit", drain.in_flight)
            else:
                grace = READ_GRACE
                logger.warning(CALLS_FINISHED, grace)
                await drain.settle(grace, deadline)
            self.should_exit = True

    return Server(config)
