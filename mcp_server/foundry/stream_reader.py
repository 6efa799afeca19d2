"""Reading one response's event stream, across its original connection and any resumed ones.

Azure's image streams (protocol §5.2, §9.5) differ from OpenAI's, and the reader relies on neither:
the image item's `status` may stay `"generating"` in `response.output_item.done` and in the final
Response; `response.image_generation_call.completed` may never come; a partial image may arrive
when none was asked for; text deltas carry `obfuscation`; the Response may carry `content_filters`.
The final image is the `result` of the `response.output_item.done` that has one, and it is kept:
a final Response (or a later retrieve) that holds `result: null` does not lose it (§4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_server.errors import UnexpectedResponseError
from mcp_server.foundry.http import validate_body
from mcp_server.foundry.responses import StreamDropped, stream_error
from mcp_server.protocol import (
    STREAM_ERROR,
    STREAM_OUTPUT_ITEM_DONE,
    STREAM_PARTIAL_IMAGE,
    STREAM_TERMINAL_EVENTS,
    PartialImageEvent,
    Response,
    is_image_call,
)


async def _nothing(*_: Any) -> None:
    return None


@dataclass
class RunHooks:
    """What the caller wants to hear while a response runs."""

    on_started: Callable[[str], Awaitable[None]] = _nothing
    on_partial: Callable[[PartialImageEvent], Awaitable[None]] = _nothing
    on_heartbeat: Callable[[str], Awaitable[None]] = _nothing


@dataclass
class Status:
    """The last status seen of one response, for the heartbeat's message, and its id once the service named it."""

    value: str = "queued"
    response_id: str = ""


def with_image(final: Response, item: dict[str, Any] | None) -> Response:
    """`final`, holding the streamed image `item` where none of its image calls has a result (unless it failed:
    an image withdrawn by the service is not handed out)."""
    if item is None or final.status in ("failed", "incomplete") or any(call.result for call in final.image_calls()):
        return final
    same = [index for index, out in enumerate(final.output) if is_image_call(out) and out.get("id") == item.get("id")]
    output = list(final.output)
    if same:
        output[same[0]] = item
    else:
        output.insert(0, item)
    return final.model_copy(update={"output": output})


class StreamReader:
    """Follows one response across its original stream and any resumed ones."""

    def __init__(self, hooks: RunHooks, status: Status) -> None:
        self.hooks = hooks
        self.status = status
        self.response_id = ""
        self.last_sequence = -1
        self.image_item: dict[str, Any] | None = None
        """The final image item, from the `response.output_item.done` that carried a non-null `result`."""

    async def adopt(self, response_id: str) -> None:
        """Follow a response found after its create's answer was lost, from its first event."""
        self.response_id = self.status.response_id = response_id
        await self.hooks.on_started(response_id)

    async def consume(self, events: AsyncIterator[dict[str, Any]]) -> Response:
        async for event in events:
            sequence = event.get("sequence_number")
            if isinstance(sequence, int):
                if sequence <= self.last_sequence:
                    continue  # already seen before a resume
                self.last_sequence = sequence
            final = await self._handle(event)
            if final is not None:
                return final
        raise StreamDropped("the stream ended before its terminal event")

    async def _handle(self, event: dict[str, Any]) -> Response | None:
        kind = event.get("type")
        response = event.get("response")
        if isinstance(response, dict):
            self.status.value = str(response.get("status") or self.status.value)
            if not self.response_id and response.get("id"):
                await self.adopt(str(response["id"]))
        item = event.get("item")
        if kind == STREAM_PARTIAL_IMAGE:
            await self.hooks.on_partial(validate_body(PartialImageEvent, event, "partial image event"))
        elif kind == STREAM_OUTPUT_ITEM_DONE and is_image_call(item) and isinstance(item, dict) and item.get("result"):
            self.image_item = item  # whatever its status says ("generating" on Azure)
        elif kind in STREAM_TERMINAL_EVENTS and isinstance(response, dict):
            return with_image(validate_body(Response, response, "response"), self.image_item)
        elif kind == STREAM_ERROR or isinstance(event.get("error"), dict):
            nested = event.get("error")
            raise stream_error(nested if isinstance(nested, dict) else event)
        elif kind in STREAM_TERMINAL_EVENTS:
            raise UnexpectedResponseError("Foundry's image stream ended without the final response.")
        return None
