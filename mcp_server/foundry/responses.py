"""Responses API calls on the project endpoint, and reading the image out of a response."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx2

from mcp_server.errors import (
    ContentFilteredError,
    FoundryImageError,
    ServiceRefusedError,
    ServiceUnreachableError,
    UnexpectedResponseError,
)
from mcp_server.foundry.http import FoundryHttp, error_from_response, unreachable, validate_body
from mcp_server.protocol import (
    IMAGE_DEPLOYMENT_HEADER,
    STREAM_ERROR,
    STREAM_OUTPUT_ITEM_DONE,
    STREAM_PARTIAL_IMAGE,
    STREAM_TERMINAL_EVENTS,
    CreateResponseRequest,
    ImageGenerationCall,
    PartialImageEvent,
    Response,
    is_image_call,
)

logger = logging.getLogger(__name__)

RESPONSES_PATH: Final = "openai/v1/responses"
MAX_STREAM_EVENT_BYTES: Final = 64 * 1024 * 1024
"""A final image event carries several MB of base64; httpx2's default SSE limit is 1 MiB."""

POLICY_ERROR_CODES: Final = frozenset({"image_content_policy_violation", "content_filter", "content_policy_violation"})

PartialHandler = Callable[[PartialImageEvent], Awaitable[None]]


@dataclass(frozen=True)
class ImageResult:
    """The decoded final image of a response, with what the service said about it."""

    data: bytes
    response_id: str
    call: ImageGenerationCall


class ResponsesClient:
    def __init__(self, http: FoundryHttp) -> None:
        self._http = http
        self._stream_refused = False

    @property
    def _headers(self) -> dict[str, str]:
        return {IMAGE_DEPLOYMENT_HEADER: self._http.image_deployment}

    async def create(self, request: CreateResponseRequest) -> Response:
        body = await self._http.request_json(
            "POST", RESPONSES_PATH, json_body=request.to_wire(), headers=self._headers, what="generate the image"
        )
        return validate_body(Response, body, "response")

    async def create_streamed(self, request: CreateResponseRequest, on_partial: PartialHandler) -> Response:
        """Stream the response, handing each partial image to `on_partial`.

        Falls back to a plain request when the service refuses streaming for the image tool
        (Azure did in 2025), and says so once in the log.
        """
        if self._stream_refused:
            return await self.create(request)
        streamed = request.model_copy(update={"stream": True})
        try:
            return await self._stream(streamed, on_partial)
        except ServiceRefusedError as exc:
            if exc.status != 400 or "stream" not in exc.message.lower():
                raise
            self._stream_refused = True
            logger.warning("Foundry refused streaming for the image tool; using non-streamed requests from now on.")
            return await self.create(request)

    async def _stream(self, request: CreateResponseRequest, on_partial: PartialHandler) -> Response:
        what = "generate the image"
        client = self._http.client
        try:
            async with client.stream(
                "POST", RESPONSES_PATH, json=request.to_wire(), headers={**self._headers, "Accept": "text/event-stream"}
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response, what)
                return await read_stream(response, on_partial)
        except httpx2.TimeoutException:
            raise ServiceUnreachableError(
                "Timed out waiting for Foundry's image stream.", hint="Try again in a minute.", code="timeout"
            ) from None
        except httpx2.TransportError as exc:
            raise unreachable(what, exc) from None


async def read_stream(response: httpx2.Response, on_partial: PartialHandler) -> Response:
    """Consume a Responses event stream and return the final response.

    There is no `[DONE]` sentinel, `image_generation_call.completed` may be missing, and the
    item status in `output_item.done` may still say "generating": the image is the first
    image call with a non-null `result`.
    """
    final: Response | None = None
    image_item: dict[str, object] | None = None
    response_id = ""
    async for sse in httpx2.EventSource(response, max_event_size=MAX_STREAM_EVENT_BYTES):
        if sse.data in ("", "[DONE]"):
            continue
        try:
            event = sse.json()
        except ValueError:
            raise UnexpectedResponseError("Foundry's image stream carried an event that is not JSON.") from None
        if not isinstance(event, dict):
            continue
        kind = event.get("type") or sse.event
        if isinstance(event.get("response"), dict) and not response_id:
            response_id = str(event["response"].get("id", ""))
        if kind == STREAM_PARTIAL_IMAGE:
            await on_partial(validate_body(PartialImageEvent, event, "partial image event"))
        elif kind == STREAM_OUTPUT_ITEM_DONE and is_image_call(event.get("item")) and event["item"].get("result"):
            image_item = event["item"]
        elif kind in STREAM_TERMINAL_EVENTS:
            final = validate_body(Response, event["response"], "response")
            break
        elif kind == STREAM_ERROR or isinstance(event.get("error"), dict):
            nested = event.get("error")
            raise stream_error(nested if isinstance(nested, dict) else event)
    if final is None:
        if image_item is None:
            raise UnexpectedResponseError(
                "Foundry's image stream ended before the image arrived.", hint="Try again; the stream was cut short."
            )
        final = Response(id=response_id or "unknown", status="completed", output=[])
    if image_item is not None and not any(call.result for call in final.image_calls()):
        final.output.append(image_item)
    return final


def stream_error(error: dict[str, object]) -> FoundryImageError:
    code = str(error.get("code") or "")
    message = str(error.get("message") or "the stream reported an error")
    if code in POLICY_ERROR_CODES:
        return ContentFilteredError(
            f"The request was blocked by content filtering: {message}", hint="Rephrase the prompt and try again."
        )
    return ServiceRefusedError(f"Foundry reported an error while streaming the image: {message}", upstream_code=code)


def extract_image(response: Response) -> ImageResult:
    """The final image of a response, or an error that says why there is none."""
    calls = response.image_calls()
    for call in calls:
        if call.result:
            try:
                data = base64.b64decode(call.result, validate=True)
            except (binascii.Error, ValueError):
                raise UnexpectedResponseError("Foundry returned an image that is not valid base64.") from None
            return ImageResult(data=data, response_id=response.id, call=call)
    raise no_image_error(response, calls)


def no_image_error(response: Response, calls: list[ImageGenerationCall]) -> FoundryImageError:
    status = response.status or "unknown"
    if response.error is not None:
        code = response.error.code or ""
        if code in POLICY_ERROR_CODES:
            return ContentFilteredError(
                f"The image was blocked by content filtering: {response.error.message}",
                hint="Rephrase the prompt without the flagged content and try again.",
                upstream_code=code,
            )
        return ServiceRefusedError(
            f"The image generation failed ({code or 'no code'}): {response.error.message}", upstream_code=code or None
        )
    reason = response.incomplete_details.reason if response.incomplete_details else None
    if reason == "content_filter":
        return ContentFilteredError(
            "The image was blocked by content filtering (the response is incomplete).",
            hint="Rephrase the prompt without the flagged content and try again.",
            upstream_code=reason,
        )
    failed = [call for call in calls if call.status == "failed"]
    if failed:
        detail = failed[0].error.message if failed[0].error else "no reason given"
        return ContentFilteredError(
            f"The image generation call failed: {detail}",
            hint="This usually means the image was blocked by content filtering; rephrase the prompt and try again.",
            upstream_code="image_generation_call_failed",
        )
    if status == "cancelled":
        return ServiceRefusedError("The image generation was cancelled before it finished.", upstream_code=status)
    if reason:
        return ServiceRefusedError(f"The response is incomplete ({reason}) and holds no image.", upstream_code=reason)
    if not calls:
        return UnexpectedResponseError(
            f"Foundry answered (status {status}) without calling the image tool.",
            hint="Rephrase the prompt as a request for an image, or check that the agent's model deployment "
            "(AZURE_AI_MODEL_DEPLOYMENT_NAME) supports the image_generation tool.",
        )
    return UnexpectedResponseError(f"Foundry answered (status {status}) but the image call holds no image.")
