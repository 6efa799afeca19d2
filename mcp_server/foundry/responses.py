"""Responses API calls on the project endpoint, and reading the image out of a response."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from pydantic import ValidationError

from mcp_server.errors import (
    ContentFilteredError,
    FoundryImageError,
    ServiceRefusedError,
    UnexpectedResponseError,
)
from mcp_server.foundry.http import AmbiguousRequestError, FoundryHttp, parse_json_object, validate_body
from mcp_server.foundry.upstream_errors import FILTER_CODES, REPHRASE, filtered_error, is_content_filter
from mcp_server.protocol import (
    IMAGE_DEPLOYMENT_HEADER,
    TERMINAL_STATUSES,
    CreateResponseRequest,
    ErrorDetail,
    ImageGenerationCall,
    Response,
)

logger = logging.getLogger(__name__)

RESPONSES_PATH: Final = "openai/v1/responses"
MAX_STREAM_EVENT_BYTES: Final = 64 * 1024 * 1024
"""A final image event carries several MB of base64; httpx2's default SSE limit is 1 MiB."""

FIND_PAGE_SIZE: Final = 50
FIND_PAGES: Final = 4
"""How far back a lost create is looked for: the newest 200 responses (of its agent, when it named one)."""
REQUEST_TAG_KEY: Final = "foundry_image_mcp_request"
"""Metadata key carrying a per-create tag, so a create whose answer was lost can be found again."""


class StreamDropped(Exception):
    """The event stream ended or broke before its terminal event; it can be resumed."""


class ImageDataMissingError(UnexpectedResponseError):
    """The service reports the image as made but holds no data for it (`result: null`, protocol §4)."""


@dataclass(frozen=True)
class ExtractedImage:
    """The decoded final image of a response, with what the service said about it."""

    data: bytes
    response_id: str
    call: ImageGenerationCall


class ResponsesClient:
    def __init__(self, http: FoundryHttp) -> None:
        self._http = http

    @property
    def _headers(self) -> dict[str, str]:
        return {IMAGE_DEPLOYMENT_HEADER: self._http.image_deployment}

    async def create(self, request: CreateResponseRequest) -> Response:
        """Create a response; an answer that cannot be read (not JSON, not a response) raises
        `AmbiguousRequestError`: the service took the create, and may be running it."""
        try:
            body = await self._http.request_json(
                "POST",
                RESPONSES_PATH,
                json_body=request.to_wire(),
                headers=self._headers,
                idempotent=False,
                what="generate the image",
            )
            return validate_body(Response, body, "response")
        except UnexpectedResponseError as exc:
            raise unreadable_answer(exc.message) from None

    async def retrieve(self, response_id: str) -> Response:
        body = await self._http.request_json(
            "GET", f"{RESPONSES_PATH}/{response_id}", headers=self._headers, what="check on the image generation"
        )
        return validate_body(Response, body, "response")

    async def cancel(self, response_id: str) -> Response:
        body = await self._http.request_json(
            "POST", f"{RESPONSES_PATH}/{response_id}/cancel", headers=self._headers, what="cancel the generation"
        )
        return validate_body(Response, body, "response")

    async def find_by_tag(self, tag: str, agent_name: str | None) -> Response | None:
        """The response this client created with metadata `REQUEST_TAG_KEY: tag`, if the service has one.

        Used after a create whose answer was lost, before deciding to create again, and to recover a create
        recorded in flight whose response id was never learnt. Looks through the newest `FIND_PAGES` pages.
        """
        params = {"limit": str(FIND_PAGE_SIZE), "order": "desc", **({"agent_name": agent_name} if agent_name else {})}
        for _ in range(FIND_PAGES):
            body = await self._http.request_json(
                "GET", RESPONSES_PATH, params=params, headers=self._headers, what="look for the image generation"
            )
            items = [item for item in body.get("data") or [] if isinstance(item, dict)]
            for item in items:
                if (item.get("metadata") or {}).get(REQUEST_TAG_KEY) == tag:
                    return validate_body(Response, item, "response")
            last = body.get("last_id") or (items[-1].get("id") if items else None)
            if not body.get("has_more") or not isinstance(last, str):
                return None
            params = {**params, "after": last}
        return None

    @asynccontextmanager
    async def stream(self, request: CreateResponseRequest) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Create a response with `stream: true` and iterate over its events."""
        body = request.model_copy(update={"stream": True}).to_wire()
        async with self._events("POST", RESPONSES_PATH, json_body=body, idempotent=False) as events:
            yield events

    @asynccontextmanager
    async def resume(self, response_id: str, starting_after: int) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Replay a background response's events after `starting_after`, then follow it live."""
        params = {"stream": "true", "starting_after": str(starting_after)}
        async with self._events("GET", f"{RESPONSES_PATH}/{response_id}", params=params, idempotent=True) as events:
            yield events

    @asynccontextmanager
    async def _events(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        headers = {**self._headers, "Accept": "text/event-stream"}
        request = self._http.client.build_request(method, path, json=json_body, params=params, headers=headers)
        response = await self._http.send(request, idempotent=idempotent, what="stream the image", stream=True)
        try:
            if "text/event-stream" in response.headers.get("content-type", ""):
                yield _decode(response)
            else:
                # A service (or proxy) that ignored `stream: true` and answered with the JSON object.
                yield _as_events(await _read_response(response))
        finally:
            await response.aclose()


async def _read_response(response: httpx2.Response) -> Response:
    """The Response object a success answer carries; one that breaks off or cannot be read is a dropped stream
    (the caller finds the response by its tag, or resumes it), never a failure of the generation."""
    try:
        body = parse_json_object(await response.aread(), "stream the image")
        return validate_body(Response, body, "response")
    except httpx2.HTTPError as exc:
        raise StreamDropped(f"the answer broke off ({type(exc).__name__})") from None
    except UnexpectedResponseError as exc:
        raise StreamDropped(exc.message) from None


def unreadable_answer(detail: str) -> AmbiguousRequestError:
    return AmbiguousRequestError(
        f"Foundry accepted the image request but its answer could not be read ({detail}).",
        hint="This is usually temporary; try again.",
    )


async def _as_events(response: Response) -> AsyncIterator[dict[str, Any]]:
    kind = "response.completed" if response.status in TERMINAL_STATUSES else "response.created"
    yield {"type": kind, "response": response.to_wire()}


async def _decode(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of an event stream; a broken connection surfaces as `StreamDropped`."""
    try:
        async for sse in httpx2.EventSource(response, max_event_size=MAX_STREAM_EVENT_BYTES):
            if sse.data in ("", "[DONE]"):
                continue
            try:
                event = sse.json()
            except ValueError:
                # A mangled stream (a proxy, a cut): resuming from the last good event replays what was lost.
                raise StreamDropped("the stream carried an event that is not JSON") from None
            if isinstance(event, dict):
                event.setdefault("type", sse.event)
                yield event
    except httpx2.HTTPError as exc:  # a broken connection, a cut chunk, an oversized event
        raise StreamDropped(type(exc).__name__) from None


def stream_error(error: dict[str, Any]) -> FoundryImageError:
    """The error an `error` event (or a nested `error` object) of a stream reports, classified by its code."""
    try:
        detail = ErrorDetail.model_validate(error)
    except ValidationError:
        detail = ErrorDetail()
    if is_content_filter(detail, detail.content_filters):
        return filtered_error(detail, detail.content_filters)
    message = detail.message or str(error.get("message") or "") or "the stream reported an error"
    return ServiceRefusedError(
        f"Foundry reported an error while streaming the image: {message}",
        upstream_code=detail.code or None,
        upstream_param=detail.param or None,
    )


def extract_image(response: Response) -> ExtractedImage:
    """The final image of a response, or an error that says why there is none."""
    calls = response.image_calls()
    for call in calls:
        if call.result:
            try:
                data = base64.b64decode(call.result, validate=True)
            except (binascii.Error, ValueError):
                raise UnexpectedResponseError("Foundry returned an image that is not valid base64.") from None
            return ExtractedImage(data=data, response_id=response.id, call=call)
    raise no_image_error(response, calls)


def no_image_error(response: Response, calls: list[ImageGenerationCall]) -> FoundryImageError:
    status = response.status or "unknown"
    if response.error is not None:
        code = response.error.code or ""
        if code.lower() in FILTER_CODES:
            return ContentFilteredError(
                f"The image was blocked by content filtering: {response.error.message}",
                hint=REPHRASE,
                upstream_code=code,
            )
        return ServiceRefusedError(
            f"The image generation failed ({code or 'no code'}): {response.error.message}", upstream_code=code or None
        )
    reason = response.incomplete_details.reason if response.incomplete_details else None
    if reason == "content_filter":
        return ContentFilteredError(
            "The image was blocked by content filtering (the response is incomplete).",
            hint=REPHRASE,
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
    return ImageDataMissingError(
        f"Foundry answered (status {status}) that it generated the image, but sent no image data (result: null).",
        hint="The service sometimes drops the image from a retrieved response; generate it again.",
    )
