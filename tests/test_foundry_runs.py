"""`ResponseRunner` against `httpx2.MockTransport`: streaming, resuming with `starting_after`, the polling
fallback, lost creates, and heartbeats timed by an injected clock. Nothing here waits for real."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest

from mcp_server.errors import ContentFilteredError, NotFoundError, ServiceRefusedError, UnexpectedResponseError
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.responses import REQUEST_TAG_KEY, ImageDataMissingError, ResponsesClient, extract_image
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import ResponseRunner, RunHooks, RunSettings
from mcp_server.protocol import CreateResponseRequest, PartialImageEvent, Response

pytestmark = pytest.mark.anyio

RID = "resp_0beb64d4859e557a0069a7e133b4a881958d2935996230adaa"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
TAG = "5f1c0c1e2d3a4b5c6d7e8f9a0b1c2d3e"
PARKED = 3600.0
"""A delay this long never ends within a test: a heartbeat set to it stays out of the way."""


@dataclass
class FakeTime:
    now: float = 0.0
    waits: list[float] = field(default_factory=list[float])

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds >= PARKED:
            await anyio.sleep_forever()
        self.waits.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


Handler = Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]]


def runner_with(handler: Handler, time_: FakeTime, **settings: Any) -> ResponseRunner:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="http://foundry/api/projects/p/")
    http = FoundryHttp(client, image_deployment="gpt-image-1", retry=RetryPolicy(attempts=1))
    settings.setdefault("heartbeat", PARKED)
    return ResponseRunner(ResponsesClient(http), RunSettings(sleep=time_.sleep, clock=time_.clock, **settings))


def request() -> CreateResponseRequest:
    return CreateResponseRequest(input="a kite", metadata={REQUEST_TAG_KEY: TAG})


def response(status: str, output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": RID,
        "object": "response",
        "status": status,
        "background": True,
        "output": output or [],
        "metadata": {REQUEST_TAG_KEY: TAG},
    }


IMAGE_ITEM = {"type": "image_generation_call", "id": "ig_1", "status": "generating", "result": PNG_B64}


def events() -> list[dict[str, Any]]:
    """One image generation's stream, as Azure sends it (protocol §9.5)."""
    kinds: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("queued")},
        {"type": "response.queued", "response": response("queued")},
        {"type": "response.in_progress", "response": response("in_progress")},
        {
            "type": "response.image_generation_call.partial_image",
            "output_index": 0,
            "item_id": "ig_1",
            "partial_image_index": 0,
            "partial_image_b64": PNG_B64,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": IMAGE_ITEM},
        {"type": "response.completed", "response": response("completed", [IMAGE_ITEM])},
    ]
    return [{**event, "sequence_number": number} for number, event in enumerate(kinds)]


def sse(items: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in items)


def event_stream(body: bytes | AsyncIterator[bytes]) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"}, content=body)


async def broken(items: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Sends `items`, then the connection breaks."""
    yield sse(items)
    raise httpx2.ReadError("connection reset by peer")


@dataclass
class Heard:
    started: list[str] = field(default_factory=list[str])
    partials: list[int] = field(default_factory=list[int])
    beats: list[str] = field(default_factory=list[str])

    def hooks(self, on_beat: Callable[[str], Awaitable[None]] | None = None) -> RunHooks:
        async def started(response_id: str) -> None:
            self.started.append(response_id)

        async def partial(event: PartialImageEvent) -> None:
            self.partials.append(event.partial_image_index)

        async def beat(message: str) -> None:
            self.beats.append(message)

        return RunHooks(on_started=started, on_partial=partial, on_heartbeat=on_beat or beat)


def is_create(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/openai/v1/responses")


# ------------------------------------------------------------------ streaming and resuming


async def test_a_stream_is_followed_to_its_final_response() -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return event_stream(sse(events()))

    heard = Heard()
    final = await runner_with(handle, FakeTime()).run(request(), hooks=heard.hooks())
    assert final.status == "completed" and final.image_calls()[0].result == PNG_B64
    assert sent[0]["stream"] is True and sent[0]["background"] is True and sent[0]["store"] is True
    assert heard.started == [RID] and heard.partials == [0]


@pytest.mark.parametrize("cut", ["ended", "broken"])
async def test_a_dropped_stream_resumes_after_the_last_event_seen(cut: str) -> None:
    seen: list[httpx2.Request] = []
    all_events = events()

    async def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if is_create(request):
            first = all_events[:4]
            return event_stream(sse(first) if cut == "ended" else broken(first))
        # The replay starts one event early: a duplicate must be skipped, not reported twice.
        return event_stream(sse(all_events[2:]))

    heard = Heard()
    final = await runner_with(handle, FakeTime()).run(request(), hooks=heard.hooks())
    assert final.image_calls()[0].result == PNG_B64
    creates = [r for r in seen if is_create(r)]
    resumes = [r for r in seen if r.method == "GET"]
    assert len(creates) == 1, "the generation is not started again"
    assert resumes[0].url.path.endswith(f"/openai/v1/responses/{RID}")
    assert dict(resumes[0].url.params) == {"stream": "true", "starting_after": "3"}
    assert heard.started == [RID] and heard.partials == [0]


async def test_when_resuming_keeps_failing_the_response_is_polled() -> None:
    time_ = FakeTime()
    polls = iter([response("in_progress"), response("in_progress"), response("completed", [IMAGE_ITEM])])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if is_create(request):
            return event_stream(broken(events()[:3]))
        if request.url.params.get("stream") == "true":
            return event_stream(broken([]))
        return httpx2.Response(200, json=next(polls))

    final = await runner_with(handle, time_, resume_attempts=2).run(request(), hooks=Heard().hooks())
    assert final.status == "completed"
    assert time_.waits == [0.1, 0.2], "polled quickly at first"


# ------------------------------------------------------------------ the polling fallback


STREAM_REFUSED = {
    "error": {
        "message": "ImageGen as a tool is not supported in streaming mode.",
        "type": "invalid_request_error",
        "param": "stream",
        "code": None,
    }
}


async def test_a_refused_stream_falls_back_to_polling_and_is_remembered() -> None:
    time_ = FakeTime()
    sent: list[dict[str, Any]] = []
    statuses = iter(["in_progress"] * 5 + ["completed"] + ["completed"])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if is_create(request):
            body = json.loads(request.content)
            sent.append(body)
            if body.get("stream"):
                return httpx2.Response(400, json=STREAM_REFUSED)
            return httpx2.Response(200, json=response("queued"))
        status = next(statuses)
        return httpx2.Response(200, json=response(status, [IMAGE_ITEM] if status == "completed" else []))

    runner = runner_with(handle, time_, poll_interval=1.0)
    heard = Heard()
    final = await runner.run(request(), hooks=heard.hooks())
    assert final.status == "completed" and heard.started == [RID]
    assert time_.waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], "doubling from 0.1 s up to poll_interval"
    await runner.run(request(), hooks=heard.hooks())
    assert [body.get("stream") for body in sent] == [True, None, None]


async def test_a_400_about_another_field_is_not_taken_for_a_refused_stream() -> None:
    creates = 0

    async def handle(request: httpx2.Request) -> httpx2.Response:
        nonlocal creates
        creates += 1
        body = {"error": {**STREAM_REFUSED["error"], "param": "tools", "code": "invalid_payload"}}
        return httpx2.Response(400, json=body)

    with pytest.raises(ServiceRefusedError) as caught:
        await runner_with(handle, FakeTime()).run(request(), hooks=Heard().hooks())
    assert caught.value.upstream_param == "tools" and creates == 1


async def test_wait_polls_an_existing_response_to_its_end() -> None:
    time_ = FakeTime()
    answers = iter([response("queued"), response("in_progress"), response("completed", [IMAGE_ITEM])])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.method == "GET" and request.url.path.endswith(RID)
        return httpx2.Response(200, json=next(answers))

    final = await runner_with(handle, time_, poll_interval=0.15).wait(RID)
    assert final.status == "completed" and time_.waits == [0.1, 0.15]


# ------------------------------------------------------------------ a create whose answer was lost


def listing(found: bool) -> dict[str, Any]:
    return {"object": "list", "data": [response("in_progress")] if found else [], "has_more": False}


@pytest.mark.parametrize("accepted", [True, False])
async def test_a_lost_create_is_looked_up_by_its_tag_before_creating_again(accepted: bool) -> None:
    seen: list[httpx2.Request] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if is_create(request):
            if len([r for r in seen if is_create(r)]) == 1:
                raise httpx2.ReadError("the answer was lost")
            return event_stream(sse(events()))
        if request.url.params.get("stream") == "true":
            return event_stream(sse(events()))
        return httpx2.Response(200, json=listing(accepted))

    heard = Heard()
    final = await runner_with(handle, FakeTime()).run(request(), hooks=heard.hooks())
    assert final.status == "completed" and heard.started == [RID]
    creates = [r for r in seen if is_create(r)]
    lookups = [r for r in seen if r.method == "GET" and r.url.path.endswith("/openai/v1/responses")]
    assert len(lookups) == 1
    assert len(creates) == (1 if accepted else 2)


# ------------------------------------------------------------------ heartbeats


async def test_heartbeats_fire_at_the_injected_interval_with_the_elapsed_time() -> None:
    time_ = FakeTime()
    release = anyio.Event()
    heard = Heard()

    async def gated() -> AsyncIterator[bytes]:
        yield sse(events()[:1])
        await release.wait()
        yield sse(events()[1:])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        return event_stream(gated())

    async def beat(message: str) -> None:
        heard.beats.append(message)
        if len(heard.beats) == 3:
            release.set()
            await anyio.sleep_forever()  # no fourth beat: the run ends and cancels this

    with anyio.fail_after(5):
        await runner_with(handle, time_, heartbeat=4.0).run(request(), hooks=heard.hooks(beat))
    assert time_.waits == [4.0, 4.0, 4.0]
    assert heard.beats == [
        "Still generating (4 s, queued)",
        "Still generating (8 s, queued)",
        "Still generating (12 s, queued)",
    ]


# ------------------------------------------------------------------ streams as Azure sends them (protocol §5.2, §9.5)


FILTERS = [
    {"blocked": False, "source_type": "prompt", "content_filter_results": {}},
    {"blocked": False, "source_type": "completion", "content_filter_results": {}},
]


def azure_events(final_result: str | None = PNG_B64) -> list[dict[str, Any]]:
    """The recorded Azure order: a partial nobody asked for, the image item still "generating" when done and in
    the final Response, no `image_generation_call.completed`, `obfuscation` on text deltas, `content_filters`."""
    message = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": []}
    final_item = {**IMAGE_ITEM, "result": final_result}
    kinds: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**response("in_progress"), "content_filters": None}},
        {"type": "response.in_progress", "response": {**response("in_progress"), "content_filters": None}},
        {"type": "response.output_item.added", "output_index": 0, "item": {**IMAGE_ITEM, "status": "in_progress"}},
        {"type": "response.image_generation_call.in_progress", "output_index": 0, "item_id": "ig_1"},
        {"type": "response.image_generation_call.generating", "output_index": 0, "item_id": "ig_1"},
        {
            "type": "response.image_generation_call.partial_image",
            "output_index": 0,
            "item_id": "ig_1",
            "partial_image_index": 0,
            "partial_image_b64": PNG_B64,
            "size": "1024x1024",
            "quality": "low",
            "background": "opaque",
            "output_format": "png",
        },
        {"type": "response.output_item.done", "output_index": 0, "item": IMAGE_ITEM},
        {"type": "response.output_item.added", "output_index": 1, "item": {**message, "status": "in_progress"}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Here", "obfuscation": "x1Yz"},
        {"type": "response.output_item.done", "output_index": 1, "item": message},
        {
            "type": "response.completed",
            "response": {**response("completed", [final_item, message]), "content_filters": FILTERS},
        },
    ]
    return [{**event, "sequence_number": number} for number, event in enumerate(kinds)]


@pytest.mark.parametrize("final_result", [PNG_B64, None], ids=["image-in-final", "null-in-final"])
async def test_an_azure_stream_gives_the_image_of_its_output_item_done(final_result: str | None) -> None:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        return event_stream(sse(azure_events(final_result)))

    heard = Heard()
    final = await runner_with(handle, FakeTime()).run(request(), hooks=heard.hooks())
    assert final.status == "completed" and final.content_filters == FILTERS
    (call,) = final.image_calls()
    assert call.status == "generating" and call.result == PNG_B64
    assert extract_image(final).data.startswith(b"\x89PNG")
    assert heard.partials == [0], "a partial image nobody asked for is still reported"


async def test_a_streamed_image_is_kept_when_the_poll_after_a_drop_holds_result_null() -> None:
    delivered = azure_events()[:7]  # up to and including the image's output_item.done
    retrieved = response("completed", [{**IMAGE_ITEM, "status": "completed", "result": None}])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if is_create(request):
            return event_stream(broken(delivered))
        if request.url.params.get("stream") == "true":
            return event_stream(broken([]))
        return httpx2.Response(200, json=retrieved)

    final = await runner_with(handle, FakeTime(), resume_attempts=1).run(request(), hooks=Heard().hooks())
    assert extract_image(final).call.result == PNG_B64 and len(final.image_calls()) == 1


async def test_a_streamed_image_is_kept_when_its_response_can_no_longer_be_read() -> None:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        if is_create(request):
            return event_stream(broken(azure_events()[:7]))
        if request.url.params.get("stream") == "true":
            return event_stream(broken([]))
        return httpx2.Response(404, json={"error": {"code": "not_found", "message": "gone", "param": None}})

    final = await runner_with(handle, FakeTime(), resume_attempts=1).run(request(), hooks=Heard().hooks())
    assert extract_image(final).call.result == PNG_B64


async def test_result_null_without_a_streamed_image_is_a_clear_retryable_error() -> None:
    polled = response("completed", [{**IMAGE_ITEM, "status": "completed", "result": None}])
    with pytest.raises(ImageDataMissingError) as caught:
        extract_image(Response.model_validate(polled))
    assert isinstance(caught.value, UnexpectedResponseError)
    assert "result: null" in caught.value.message and "again" in (caught.value.hint or "")


async def test_waiting_on_a_response_retrieved_with_result_null_replays_its_stream_for_the_image() -> None:
    seen: list[httpx2.Request] = []
    polled = response("completed", [{**IMAGE_ITEM, "status": "completed", "result": None}])

    async def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.params.get("stream") == "true":
            return event_stream(sse(azure_events()[1:]))
        return httpx2.Response(200, json=polled)

    final = await runner_with(handle, FakeTime()).wait(RID)
    assert extract_image(final).call.result == PNG_B64
    assert [r.method for r in seen] == ["GET", "GET"] and not any(is_create(r) for r in seen)


async def test_a_404_while_polling_is_a_vanished_response_and_creates_nothing_again() -> None:
    creates = 0

    async def handle(request: httpx2.Request) -> httpx2.Response:
        nonlocal creates
        if is_create(request):
            creates += 1
            return event_stream(broken(events()[:3]))
        if request.url.params.get("stream") == "true":
            return event_stream(broken([]))
        return httpx2.Response(404, json={"error": {"code": "not_found", "message": "gone", "param": "response_id"}})

    with pytest.raises(NotFoundError) as caught:
        await runner_with(handle, FakeTime(), resume_attempts=1).run(request(), hooks=Heard().hooks())
    assert caught.value.code == "response_not_found" and creates == 1


async def test_a_refused_resume_falls_back_to_polling_without_a_second_create() -> None:
    seen: list[httpx2.Request] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if is_create(request):
            return event_stream(broken(events()[:3]))
        if request.url.params.get("stream") == "true":
            return httpx2.Response(400, json=STREAM_REFUSED)
        return httpx2.Response(200, json=response("completed", [IMAGE_ITEM]))

    runner = runner_with(handle, FakeTime())
    final = await runner.run(request(), hooks=Heard().hooks())
    assert final.status == "completed" and len([r for r in seen if is_create(r)]) == 1
    assert len([r for r in seen if r.url.params.get("stream") == "true"]) == 1, "not retried once refused"
    await runner.run(request(), hooks=Heard().hooks())
    assert json.loads([r for r in seen if is_create(r)][-1].content)["stream"] is True, "streaming stays on"


MODERATION_BLOCKED = {
    "error": {
        "type": "image_generation_user_error",
        "code": "moderation_blocked",
        "message": "Your request was rejected by the safety system.",
        "param": None,
        "moderation_details": {"moderation_stage": "output", "categories": ["violence"]},
    }
}
GENERIC_400 = {
    "error": {
        "message": "There was an issue with your request. Please check your inputs and try again",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


@pytest.mark.parametrize(
    ("body", "kind"),
    [(MODERATION_BLOCKED, ContentFilteredError), (GENERIC_400, ServiceRefusedError)],
    ids=["moderation-blocked", "generic-400"],
)
async def test_a_400_not_about_streaming_is_sent_once_and_leaves_streaming_on(
    body: dict[str, Any], kind: type[Exception]
) -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(400, json=body)

    runner = runner_with(handle, FakeTime())
    for _ in range(2):
        with pytest.raises(kind) as caught:
            await runner.run(request(), hooks=Heard().hooks())
        assert type(caught.value) is kind
    assert [b.get("stream") for b in sent] == [True, True], "one create per call, streaming still on"


async def test_a_moderation_error_event_in_a_stream_is_a_content_filter_error() -> None:
    error_event = {**MODERATION_BLOCKED["error"], "type": "error", "sequence_number": 3}

    async def handle(request: httpx2.Request) -> httpx2.Response:
        return event_stream(sse([*events()[:3], error_event]))

    with pytest.raises(ContentFilteredError) as caught:
        await runner_with(handle, FakeTime()).run(request(), hooks=Heard().hooks())
    assert "violence" in caught.value.message and caught.value.upstream_code == "moderation_blocked"
