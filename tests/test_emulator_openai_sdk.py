"""The emulator speaks the wire format the official openai SDK expects (protocol §3 to §6)."""

from __future__ import annotations

import base64
import io
import time
import typing
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import openai
import pytest
from helpers import emulator_running
from openai import AsyncOpenAI
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseImageGenCallPartialImageEvent,
    ResponseOutputItemDoneEvent,
    ResponseStreamEvent,
)
from openai.types.responses.response_output_item import ImageGenerationCall
from PIL import Image

from mcp_server.emulator import EmulatorConfig, RunningEmulator

pytestmark = pytest.mark.anyio

IMAGE = min(EmulatorConfig().image_deployments)
"""The image deployment the emulated project serves by default."""
DEPLOYMENT = {"x-ms-oai-image-generation-deployment": IMAGE}
_EVENT_CLASSES = typing.get_args(typing.get_args(ResponseStreamEvent)[0])
EVENT_MODELS: dict[str, Any] = {typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in _EVENT_CLASSES}


def make_agent(emulator: RunningEmulator, name: str = "img-agent", **tool: Any) -> dict[str, Any]:
    definition = {
        "kind": "prompt",
        "model": "gpt-4.1",
        "instructions": "Generate images.",
        "tools": [{"type": "image_generation", "model": IMAGE, **tool}],
        "tool_choice": {"type": "image_generation"},
    }
    with httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}) as http:
        reply = http.post(f"/agents/{name}/versions", params={"api-version": "v1"}, json={"definition": definition})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def agent_ref(name: str = "img-agent") -> dict[str, Any]:
    return {"agent_reference": {"type": "agent_reference", "name": name}}


def client_for(emulator: RunningEmulator) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=emulator.endpoint + "/openai/v1", api_key="test-key", max_retries=0)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture
def slow_emulator() -> Iterator[RunningEmulator]:
    with emulator_running(EmulatorConfig(latency=0.3)) as running:
        yield running


async def test_create_parses_into_typed_objects(emulator: RunningEmulator) -> None:
    make_agent(emulator, size="1536x1024", output_format="webp", quality="low")
    async with client_for(emulator) as client:
        raw = await client.responses.with_raw_response.create(
            input="a lighthouse at dusk", extra_headers=DEPLOYMENT, extra_body=agent_ref()
        )
        response = raw.parse()
    # Strict validation catches a missing required field that the SDK's lenient parsing would let through.
    Response.model_validate(raw.http_response.json())
    assert response.status == "completed"
    assert response.model == "gpt-4.1"
    assert response.output_text
    calls = [item for item in response.output if isinstance(item, ImageGenerationCall)]
    assert len(calls) == 1 and calls[0].result is not None and calls[0].id.startswith("ig_")
    image = decode(calls[0].result)
    assert (image.format, image.size) == ("WEBP", (1536, 1024))
    assert base64.b64decode(calls[0].result) == emulator.state.image_bytes(response.id)
    extra = response.model_extra or {}
    assert extra["agent_reference"] == {"type": "agent_reference", "name": "img-agent", "version": "1"}
    echoed = response.tools[0].model_dump()
    assert echoed["size"] == "1536x1024" and echoed["output_compression"] == 100 and echoed["moderation"] == "auto"
    item = calls[0].model_dump()
    assert (item["size"], item["quality"], item["background"]) == ("1536x1024", "low", "opaque")
    recorded = emulator.state.requests[-1]
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.json is not None and recorded.json["agent_reference"]["name"] == "img-agent"


async def test_stream_yields_typed_partial_images(emulator: RunningEmulator) -> None:
    make_agent(emulator, partial_images=2, size="1024x1536")
    events: list[Any] = []
    async with client_for(emulator) as client:
        stream = await client.responses.create(
            input="a red kite", stream=True, extra_headers=DEPLOYMENT, extra_body=agent_ref()
        )
        with anyio.fail_after(20):
            async with stream:
                events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for event in events:
        EVENT_MODELS[event.type].model_validate(event.model_dump())
    partials = [e for e in events if isinstance(e, ResponseImageGenCallPartialImageEvent)]
    assert [p.partial_image_index for p in partials] == [0, 1]
    assert isinstance(events[-1], ResponseCompletedEvent)
    done = [e for e in events if isinstance(e, ResponseOutputItemDoneEvent) and e.item.type == "image_generation_call"]
    assert len(done) == 1
    final_b64 = typing.cast(ImageGenerationCall, done[0].item).result
    assert final_b64 is not None
    for partial in partials:
        image = decode(partial.partial_image_b64)
        assert (image.format, image.size) == ("PNG", (1024, 1536))
        assert partial.size == "1024x1536" and partial.output_format == "png"
        assert partial.partial_image_b64 != final_b64
    assert events.index(partials[-1]) < events.index(done[0])
    completed = events[-1].response
    assert completed.status == "completed"
    assert any(isinstance(item, ImageGenerationCall) and item.result == final_b64 for item in completed.output)
    assert emulator.state.responses[completed.id].events[-1]["type"] == "response.completed"


async def test_background_polling(slow_emulator: RunningEmulator) -> None:
    make_agent(slow_emulator)
    async with client_for(slow_emulator) as client:
        created = await client.responses.create(
            input="a tree", background=True, extra_headers=DEPLOYMENT, extra_body=agent_ref()
        )
        assert created.status == "queued" and created.output == [] and created.background is True
        seen = []
        with anyio.fail_after(20):
            while True:
                current = await client.responses.retrieve(created.id)
                seen.append(current.status)
                if current.status not in ("queued", "in_progress"):
                    break
                await anyio.sleep(0.02)
    assert "in_progress" in seen and seen[-1] == "completed"
    assert current.completed_at is not None and current.usage is not None
    assert any(isinstance(item, ImageGenerationCall) and item.result for item in current.output)


async def test_stream_resume_with_starting_after(emulator: RunningEmulator) -> None:
    make_agent(emulator, partial_images=1)
    async with client_for(emulator) as client:
        with anyio.fail_after(20):
            stream = await client.responses.create(
                input="a boat", stream=True, background=True, extra_headers=DEPLOYMENT, extra_body=agent_ref()
            )
            async with stream:
                first = [event async for event in stream]
            assert [e.type for e in first[:3]] == ["response.created", "response.queued", "response.in_progress"]
            response_id = first[0].response.id
            resumed = await client.responses.retrieve(response_id, stream=True, starting_after=4)
            async with resumed:
                replay = [event async for event in resumed]
    assert [e.sequence_number for e in replay] == list(range(5, len(first)))
    assert [e.model_dump() for e in replay] == [e.model_dump() for e in first[5:]]
    assert isinstance(replay[-1], ResponseCompletedEvent)


async def test_cancel_background_response() -> None:
    with emulator_running(EmulatorConfig(latency=30)) as emulator:
        make_agent(emulator)
        async with client_for(emulator) as client:
            created = await client.responses.create(
                input="slow", background=True, extra_headers=DEPLOYMENT, extra_body=agent_ref()
            )
            with anyio.fail_after(10):
                cancelled = await client.responses.cancel(created.id)
                again = await client.responses.cancel(created.id)
                fetched = await client.responses.retrieve(created.id)
    assert cancelled.status == again.status == fetched.status == "cancelled"
    assert emulator.state.responses[created.id].image_bytes is None


async def test_cancel_rejects_foreground_response(emulator: RunningEmulator) -> None:
    make_agent(emulator)
    async with client_for(emulator) as client:
        done = await client.responses.create(input="x", extra_headers=DEPLOYMENT, extra_body=agent_ref())
        with pytest.raises(openai.BadRequestError, match="background"):
            await client.responses.cancel(done.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.cancel("resp_missing")


async def test_delete_response(emulator: RunningEmulator) -> None:
    make_agent(emulator)
    async with client_for(emulator) as client:
        done = await client.responses.create(input="x", extra_headers=DEPLOYMENT, extra_body=agent_ref())
        await client.responses.delete(done.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(done.id)
    assert done.id not in emulator.state.responses
    assert emulator.state.count("DELETE", f"/responses/{done.id}") == 1


async def test_files_upload_and_use_as_input_image(emulator: RunningEmulator) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(picture, format="PNG")
    make_agent(emulator)
    async with client_for(emulator) as client:
        uploaded = await client.files.create(file=("green.png", picture.getvalue(), "image/png"), purpose="assistants")
        assert uploaded.id.startswith("assistant-") and uploaded.bytes == len(picture.getvalue())
        assert uploaded.purpose == "assistants" and uploaded.filename == "green.png"
        assert (await client.files.retrieve(uploaded.id)).id == uploaded.id
        assert (await client.files.content(uploaded.id)).content == picture.getvalue()
        listed = await client.files.list()
        assert [f.id for f in listed.data] == [uploaded.id]
        edit_input = [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "make it blue"},
                    {"type": "input_image", "file_id": uploaded.id, "detail": "auto"},
                ],
            }
        ]
        edited = await client.responses.create(
            input=typing.cast(Any, edit_input), extra_headers=DEPLOYMENT, extra_body=agent_ref()
        )
        assert edited.status == "completed"
        await client.files.delete(uploaded.id)
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(uploaded.id)
    assert emulator.state.files == {}


async def test_legacy_agent_field_is_accepted_and_echoed_as_agent_reference(emulator: RunningEmulator) -> None:
    make_agent(emulator, name="legacy-agent")
    async with client_for(emulator) as client:
        response = await client.responses.create(
            input="x",
            extra_headers=DEPLOYMENT,
            extra_body={"agent": {"type": "agent_reference", "name": "legacy-agent", "version": "1"}},
        )
    assert response.status == "completed"
    assert (response.model_extra or {})["agent_reference"]["name"] == "legacy-agent"


async def test_concurrent_generations_overlap() -> None:
    latency = 0.5
    with emulator_running(EmulatorConfig(latency=latency)) as emulator:
        make_agent(emulator)
        statuses: list[str | None] = []
        most_in_progress = 0

        def in_progress() -> int:
            return sum(1 for stored in emulator.state.responses.values() if stored.status == "in_progress")

        async def watch() -> None:
            nonlocal most_in_progress
            while True:
                most_in_progress = max(most_in_progress, in_progress())
                await anyio.sleep(0.005)

        async with client_for(emulator) as client:

            async def one(index: int) -> None:
                response = await client.responses.create(
                    input=f"picture {index}", extra_headers=DEPLOYMENT, extra_body=agent_ref()
                )
                statuses.append(response.status)

            started = time.monotonic()
            # One after another, a generation would finish before the next began: the latency must not block
            # the emulator's loop, so all four are in progress at once (seen, not timed: no bound on a busy CI).
            with anyio.fail_after(30):
                async with anyio.create_task_group() as watching:
                    watching.start_soon(watch)
                    async with anyio.create_task_group() as group:
                        for index in range(4):
                            group.start_soon(one, index)
                    watching.cancel_scope.cancel()
            elapsed = time.monotonic() - started
    assert statuses == ["completed"] * 4
    assert most_in_progress == 4
    assert elapsed >= latency


@pytest.mark.parametrize("openai_events", [False, True], ids=["azure", "openai"])
async def test_the_sdk_reads_both_image_stream_forms(openai_events: bool) -> None:
    """Azure's (the default: item "generating", no `image_generation_call.completed`, `obfuscation` on text
    deltas, `content_filters` on the Response) and api.openai.com's (protocol §5.2)."""
    with emulator_running(EmulatorConfig(openai_image_events=openai_events)) as emulator:
        make_agent(emulator, partial_images=1)
        async with client_for(emulator) as client:
            stream = await client.responses.create(
                input="a kite", stream=True, extra_headers=DEPLOYMENT, extra_body=agent_ref()
            )
            with anyio.fail_after(20):
                async with stream:
                    events = [event async for event in stream]
    for event in events:
        EVENT_MODELS[event.type].model_validate(event.model_dump())
    kinds = [event.type for event in events]
    assert ("response.image_generation_call.completed" in kinds) is openai_events
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    (call,) = [item for item in completed.response.output if isinstance(item, ImageGenerationCall)]
    assert call.status == ("completed" if openai_events else "generating") and call.result
    assert isinstance((completed.response.model_extra or {})["content_filters"], list)
