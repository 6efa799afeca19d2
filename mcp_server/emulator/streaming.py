"""Server-sent events: the live stream and the `starting_after` replay read the same event log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from .state import StoredResponse


def format_event(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def _follow(stored: StoredResponse, starting_after: int) -> AsyncIterator[str]:
    # Sequence numbers equal log positions, so the replay starts right after `starting_after`.
    position = max(0, starting_after + 1)
    while True:
        while position < len(stored.events):
            yield format_event(stored.events[position])
            position += 1
        if stored.closed:
            return
        # Read the waker before yielding control: emit() swaps it on the same loop, so no event is missed.
        await stored.waker.wait()


def event_stream(stored: StoredResponse, starting_after: int = -1) -> StreamingResponse:
    return StreamingResponse(
        _follow(stored, starting_after),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
