"""Server-sent events: the live stream and the `starting_after` replay read the same event log."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from .state import StoredResponse


def format_event(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


class StreamDropped(ConnectionError):
    """Raised inside a streaming body: uvicorn then aborts the connection mid-stream, as a network fault would."""


def garbled_event(event: dict[str, Any]) -> str:
    """The event with a `data:` line that is not JSON: the first half of its JSON, as a broken proxy passes it."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data[: len(data) // 2]}\n\n"


async def _follow(
    stored: StoredResponse, starting_after: int, drop_after: int | None, end_after: str | None, garble_next: bool
) -> AsyncIterator[str]:
    # Sequence numbers equal log positions, so the replay starts right after `starting_after`.
    position = max(0, starting_after + 1)
    sent = 0
    ending = False
    while True:
        while position < len(stored.events):
            if drop_after is not None and sent >= drop_after:
                raise StreamDropped(f"emulator dropped the stream after {sent} events")
            event = stored.events[position]
            stored.sent_at.setdefault(position, time.monotonic())
            yield garbled_event(event) if ending else format_event(event)
            if ending or (event["type"] == end_after and not garble_next):
                return
            ending = event["type"] == end_after
            position += 1
            sent += 1
        if stored.closed:
            return
        # Read the waker before yielding control: emit() swaps it on the same loop, so no event is missed.
        await stored.waker.wait()


def event_stream(
    stored: StoredResponse,
    starting_after: int = -1,
    drop_after: int | None = None,
    end_after: str | None = None,
    *,
    garble_next: bool = False,
) -> StreamingResponse:
    """The response's events after `starting_after`, live until the terminal one.

    `drop_after` aborts the connection after that many events; `end_after` ends the stream cleanly right after
    the first event of that type, or, with `garble_next`, after the event that follows it, sent garbled."""
    return StreamingResponse(
        _follow(stored, starting_after, drop_after, end_after, garble_next),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
