"""Injected faults: rate limits, server errors, broken connections, stalls and content filters.

A fault is chosen for a request, in this order of precedence, by
- the `x-emulator-fault: <name>` request header;
- a `[[fault:<name>]]` marker in the input text of a responses create (stripped before rendering);
- the schedule: `EmulatorState.inject(name, method=..., path=..., times=...)`, which `EmulatorConfig.faults`
  (and `foundry-image-mcp emulator --fault NAME[:COUNT]`) fill at start.
The schedule is consumed only by the requests it applies to. Faults are chosen after authentication,
so a request with bad credentials still gets its 401 and spends no scheduled fault.

The faults (`FAULTS`, named in `fault_names`):

- `429`: HTTP 429 `rate_limit_exceeded` (OpenAI shape, `type:"requests"`) with `retry-after: 1`,
  `retry-after-ms: 100`, `x-ratelimit-remaining-requests: 0` and `x-ratelimit-remaining-tokens: 0`.
- `429-bare`: the same 429 without any retry-after or x-ratelimit header.
- `429-long`: a 429 `rate_limit_exceeded` ("Please retry after 120 seconds.") with `retry-after: 120` and the
  x-ratelimit headers but no `retry-after-ms`: a wait longer than a client should hold a call for.
- `500`, `502`, `503`: Foundry-shaped server errors (`server_error`, `bad_gateway`, `service_unavailable`, with
  `additionalInfo.request_id`); the 503 also sends `retry-after: 1`.
- `reset`: a reset before acceptance. The response start (200, with the JSON or event-stream headers the real
  answer would have) is sent, then the connection is dropped without a complete body. Nothing is processed.
- `reset-after-accept`: the request is processed first (a responses create exists and runs to completion),
  then its answer is cut as with `reset`: a JSON answer after half its body, an event stream at once.
- `json-reset-after-accept`: the responses create is processed (the response exists and runs to completion),
  then answered 200 `application/json` with the Content-Length of the whole Response JSON, the first half of
  that body, and a dropped connection (the client sees a transport error mid-body). A streamed create gets the
  same JSON answer, as from a buffering proxy: only once its response ended (the response itself was streamed,
  so its events can still be replayed).
- `not-json-after-accept`: the responses create is processed, then answered 200 `text/html` with a gateway's
  page (`GATEWAY_PAGE`) instead of its JSON or event stream; a streamed create is answered once its response
  ended.
- `event-not-json-after-accept`: the responses create is processed; its event stream sends the usual
  `response.created` (`response.queued`) and `response.in_progress` events, then the next event with a `data:`
  line that is not JSON (its first half), then ends cleanly without a terminal event, while the response runs
  on to completion. A non-streamed create is answered as with `not-json-after-accept`.
- `stall`: the request is processed, then the answer is held back for `EmulatorConfig.stall_seconds` before
  it is sent normally; a client with a shorter read timeout gives up first.
- `truncate-body`: 200 with the first half of the real JSON body (its Content-Length matching the cut body),
  i.e. malformed JSON. The real body is computed against a throw-away copy of the state, so nothing is
  processed. A streamed create is answered as its non-streamed equivalent would be.
- `truncate-stream`: the request is processed; the event stream of a responses create ends cleanly right
  after `response.in_progress`, without its terminal event, so clients must resume with
  `GET .../responses/{id}?stream=true&starting_after=N` (replays are never truncated). A JSON answer is
  cut to its first half instead, as with `truncate-body` but processed.
- `filter-400`: the prompt-level content filter block, HTTP 400 `content_filter` with
  `innererror.content_filter_result` (protocol §4.1). Nothing is processed.
- `filter-400-array`: the same block in its newer form, with `content_filters: [{blocked: true,
  source_type: "prompt", content_filter_results: {..., jailbreak: {detected, filtered}}}]` (§4.1).
- `moderation-blocked`: an image blocked after it was generated, HTTP 400 `type: image_generation_user_error`,
  `code: moderation_blocked` with `moderation_details: {moderation_stage: "output", categories: ["violence"]}`.
- `image-header-missing`: Azure's explicit answer to a call without the image deployment header, HTTP 400
  `type: image_generation_user_error`, `param: tools`, `code: invalid_request_error` (§7.4).
- `agent-field`: HTTP 400 `invalid_payload` "Not allowed when agent is specified." with `param: tools` (§3.2).
- `filter-failed`: the response is processed but ends `failed` with `error.code:"image_content_policy_violation"`
  and no image (streams end with `response.failed`).
- `filter-call`: the response completes, but its `image_generation_call` item is `failed` with `result:null`.
- `filter-incomplete`: the response ends `incomplete` with `incomplete_details.reason:"content_filter"` and no
  image (streams end with `response.incomplete`).
- `token-expired`: 401 `ExpiredAuthenticationToken` with `WWW-Authenticate: Bearer error="invalid_token"`.
- `forbidden-preview`: 403 `preview_feature_required` (protocol §7.3).
- `deployment-missing`: 404 `DeploymentNotFound`.

Every fault applies to any route; the three processed content-filter faults only make sense on a responses
create and act as `filter-400` anywhere else. The three `*-after-accept` faults that leave an answer unreadable
(`json-reset-after-accept`, `not-json-after-accept`, `event-not-json-after-accept`) only apply to a responses
create: a retrieve or a stream resume (`GET .../responses/{id}`) they fall on is answered normally (the way
back to the response is never faulted by them); on any other route `json-reset-after-accept` acts as
`reset-after-accept`, and the other two as `truncate-stream` (processed, half the JSON answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from starlette.responses import Response, StreamingResponse

from .context import Ctx
from .errors import ApiError, invalid_payload
from .fault_errors import error_for, is_responses_create
from .fault_names import FAULTS, UNREADABLE_AFTER_ACCEPT

FAULT_HEADER = "x-emulator-fault"
MARKER = re.compile(r"\[\[fault:([^\]]*)\]\]")
RETRIEVE = re.compile(r"/responses/[^/]+/?$")
GATEWAY_PAGE: Final = (
    "<html><body>upstream connect error or disconnect/reset before headers. "
    "reset reason: connection termination</body></html>"
)
"""The body of `not-json-after-accept`: what an Envoy-style gateway answers when it lost its upstream."""

Process = Callable[[Ctx], Awaitable[Response]]
"""Runs the route handler for a context and maps its errors to responses, as the route wrapper does."""


class InjectedReset(RuntimeError):
    """Raised inside a response body: uvicorn then drops the connection mid-response."""


# ---------------------------------------------------------------- choosing the fault


def _unknown(name: str, param: str) -> ApiError:
    return invalid_payload(f"Unknown emulator fault {name!r}. Known faults: {', '.join(FAULTS)}.", param)


def _strip_markers(value: Any, found: list[str]) -> Any:
    """The input with every `[[fault:...]]` removed from its texts; the names found go to `found`."""
    if isinstance(value, str):
        found.extend(match.group(1).strip() for match in MARKER.finditer(value))
        return MARKER.sub("", value).strip() if MARKER.search(value) else value
    if isinstance(value, list):
        return [_strip_markers(item, found) for item in value]
    if isinstance(value, dict):
        stripped = dict(value)
        for key in ("content", "text"):
            if key in stripped:
                stripped[key] = _strip_markers(stripped[key], found)
        return stripped
    return value


def take_marker(body: Any) -> tuple[str | None, Any]:
    """The fault named by a marker in a responses create's input, and the body with the markers stripped."""
    if not isinstance(body, dict) or "input" not in body:
        return None, body
    found: list[str] = []
    stripped = _strip_markers(body["input"], found)
    if not found:
        return None, body
    name = found[0]
    if name not in FAULTS:
        raise _unknown(name, "input")
    return name, {**body, "input": stripped}


def choose_fault(ctx: Ctx) -> str | None:
    """The fault for this request, if any; strips a prompt marker from `ctx.body` and consumes the schedule."""
    method, path = ctx.request.method, ctx.request.url.path
    header = ctx.headers.get(FAULT_HEADER, "").strip()
    marker = None
    if is_responses_create(method, path):
        marker, ctx.body = take_marker(ctx.body)
    if header:
        if header not in FAULTS:
            raise _unknown(header, FAULT_HEADER)
        return header
    if marker is not None:
        return marker
    return ctx.state.take_fault(method, path)


# ---------------------------------------------------------------- the faults' answers


def _wants_stream(ctx: Ctx) -> bool:
    if ctx.request.method == "GET":
        return ctx.query.get("stream", "").lower() in ("true", "1")
    return isinstance(ctx.body, dict) and bool(ctx.body.get("stream"))


async def _break_after(prefix: bytes) -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    raise InjectedReset("emulator fault: connection reset mid-response")


def _broken(status: int, headers: dict[str, str], prefix: bytes = b"") -> Response:
    return StreamingResponse(_break_after(prefix), status_code=status, headers=headers)


def _reset_before_acceptance(ctx: Ctx) -> Response:
    media = "text/event-stream; charset=utf-8" if _wants_stream(ctx) else "application/json"
    return _broken(200, {"content-type": media})


def _cut(real: Response) -> Response:
    """The real answer's start, then a dropped connection: half its body if it has one, none if it streams."""
    headers = dict(real.headers)
    if isinstance(real, StreamingResponse):
        headers.pop("content-length", None)
        return _broken(real.status_code, headers)
    return _broken(real.status_code, headers, bytes(real.body[: len(real.body) // 2]))


def _truncated(real: Response) -> Response:
    """The real answer with only the first half of its body, and a Content-Length to match: it ends cleanly."""
    if isinstance(real, StreamingResponse):
        return real
    headers = {k: v for k, v in real.headers.items() if k != "content-length"}
    return Response(bytes(real.body[: len(real.body) // 2]), status_code=real.status_code, headers=headers)


def _gateway_page() -> Response:
    return Response(GATEWAY_PAGE, status_code=200, media_type="text/html")


def _off_create(fault: str, ctx: Ctx) -> str | None:
    """What an unreadable-after-accept fault becomes away from a responses create: None on a retrieve or a
    stream resume (answered normally), the closest existing fault elsewhere."""
    method, path = ctx.request.method, ctx.request.url.path
    if is_responses_create(method, path):
        return fault
    if method == "GET" and RETRIEVE.search(path):
        return None
    return "reset-after-accept" if fault == "json-reset-after-accept" else "truncate-stream"


async def apply(fault: str, ctx: Ctx, process: Process) -> Response:
    """Answer the request as `fault` dictates; `process` runs the real handler when the fault needs it."""
    error = error_for(fault, ctx.request.method, ctx.request.url.path, ctx.headers)
    if error is not None:
        return error.response()
    if fault in UNREADABLE_AFTER_ACCEPT:
        shown = _off_create(fault, ctx)
        if shown is None:
            return await process(ctx)
        fault = shown
    ctx.fault = fault
    if fault == "reset":
        return _reset_before_acceptance(ctx)
    if fault in ("reset-after-accept", "json-reset-after-accept"):
        # The create handler answers a streamed json-reset-after-accept with its JSON, once the response ended.
        return _cut(await process(ctx))
    if fault in ("not-json-after-accept", "event-not-json-after-accept"):
        real = await process(ctx)
        # The create handler garbles the stream of event-not-json-after-accept itself.
        streamed = fault == "event-not-json-after-accept" and isinstance(real, StreamingResponse)
        return real if streamed else _gateway_page()
    if fault == "stall":
        real = await process(ctx)
        await asyncio.sleep(ctx.config.stall_seconds)
        return real
    if fault == "truncate-body":
        # Always the JSON answer: a streamed create or a stream resume is answered as its non-streamed twin.
        body = {**ctx.body, "stream": False} if isinstance(ctx.body, dict) and "stream" in ctx.body else ctx.body
        query = {k: v for k, v in ctx.query.items() if k != "stream"}
        sandboxed = dataclasses.replace(ctx, state=ctx.state.sandbox(), body=body, query=query)
        return _truncated(await process(sandboxed))
    # truncate-stream (the create handler ends its stream early) and the processed content filters.
    return _truncated(await process(ctx)) if fault == "truncate-stream" else await process(ctx)
