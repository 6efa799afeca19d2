"""`ImageService` on its own, against the real emulator over loopback: generate, edit, masks, lost creates,
deleted agent versions, and the in-flight records that survive a caller leaving or the process stopping."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from PIL import Image

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.errors import ConfigurationError, InvalidInputError
from mcp_server.foundry.agents import AgentRegistry
from mcp_server.foundry.auth import ApiKeyAuth
from mcp_server.foundry.deployments import DeploymentsClient
from mcp_server.foundry.http import FoundryHttp, build_client
from mcp_server.foundry.responses import REQUEST_TAG_KEY
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import RunSettings
from mcp_server.images.inflight import InFlight
from mcp_server.images.local import LocalStore
from mcp_server.images.records import InFlightRecord
from mcp_server.inputs import InputResolver, UrlFetcher
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import ImageOptions
from mcp_server.service.deployments import DeploymentResolver
from mcp_server.service.generation import ImageService

pytestmark = pytest.mark.anyio

AGENT = "image-agent"
RESPONSES = "/openai/v1/responses"
VERSIONS = f"/agents/{AGENT}/versions"
LOW = ImageOptions(size="1024x1024", quality="low")
PARKED = 3600.0


@dataclass
class FakeTime:
    """Polls and retries return at once (recorded); heartbeats are parked out of the way."""

    waits: list[float] = field(default_factory=list[float])

    async def sleep(self, seconds: float) -> None:
        if seconds >= PARKED:
            await anyio.sleep_forever()
        self.waits.append(seconds)
        await anyio.lowlevel.checkpoint()


@dataclass
class Running:
    service: ImageService
    jobs: BackgroundJobs
    time: FakeTime


@asynccontextmanager
async def image_service(
    emu: RunningEmulator, image: str | None = None, model: str | None = None
) -> AsyncIterator[Running]:
    """The service as the server builds it: deployments found in the project unless `image` / `model` name them."""
    fake = FakeTime()
    http = FoundryHttp(build_client(emu.endpoint, ApiKeyAuth("test-key")), retry=RetryPolicy(sleep=fake.sleep))
    async with anyio.create_task_group() as tg:
        jobs = BackgroundJobs(tg)
        service = ImageService(
            http,
            AgentRegistry(http, AGENT),
            deployments=DeploymentResolver(DeploymentsClient(http), image_deployment=image, model_deployment=model),
            jobs=jobs,
            run_settings=RunSettings(heartbeat=PARKED, sleep=fake.sleep),
        )
        try:
            yield Running(service, jobs, fake)
        finally:
            await jobs.drain(10)
            tg.cancel_scope.cancel()
            await http.aclose()


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorConfig()) as running:
        yield running


def posts(emu: RunningEmulator, suffix: str) -> list[Any]:
    return [r for r in emu.state.requests if r.method == "POST" and r.path.endswith(suffix)]


def deployment_lookups(emu: RunningEmulator) -> list[Any]:
    return [r for r in emu.state.requests if r.method == "GET" and "/deployments" in r.path]


def png(mode: str = "RGB", size: tuple[int, int] = (64, 64)) -> bytes:
    image = Image.new(mode, size, (200, 40, 40, 0) if mode == "RGBA" else (200, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def resolve(store: LocalStore, *references: str, mask: str | None = None) -> Any:
    resolver = InputResolver(store=store, allowed_dirs=[], fetcher=UrlFetcher())
    return await resolver.resolve_all(list(references), mask)


def pending(store: LocalStore) -> list[InFlightRecord]:
    return InFlight(store.root).records()


class Crash(Exception):
    """The process stopping at a given moment."""


# ------------------------------------------------------------------ generate


async def test_generate_stores_the_image_the_service_made_with_its_provenance(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    seen: list[tuple[float, str]] = []

    async def progress(value: float, total: float | None, message: str) -> None:
        seen.append((value, message))

    async with image_service(emu) as running:
        result = await running.service.generate("a red kite", LOW, store, progress)
    record = result.record
    assert store.path_of(record).read_bytes() == emu.state.image_bytes(record.response_id or "")
    assert (record.width, record.height, record.output_format) == (1024, 1024, "png")
    assert (record.prompt, record.agent_name, record.agent_version) == ("a red kite", AGENT, "1")
    assert result.preview.data and pending(store) == []
    assert seen[-1][0] == 100 and [v for v, _ in seen] == sorted(v for v, _ in seen)

    (create,) = posts(emu, RESPONSES)
    assert create.json["agent_reference"] == {"type": "agent_reference", "name": AGENT, "version": "1"}
    assert create.json["stream"] is True and create.json["background"] is True and "tools" not in create.json
    assert re.fullmatch(r"[0-9a-f]{32}", create.json["metadata"][REQUEST_TAG_KEY])
    assert create.headers["x-ms-oai-image-generation-deployment"] == "gpt-image-2"
    (version,) = posts(emu, VERSIONS)
    assert version.json["definition"]["tools"][0]["quality"] == "low"
    assert (version.json["definition"]["model"], version.json["definition"]["tools"][0]["model"]) == (
        "gpt-4.1",
        "gpt-image-2",
    )


# ------------------------------------------------------------------ deployments


async def test_the_deployments_found_name_the_header_the_tool_and_the_agent_and_are_found_once(
    tmp_path: Path,
) -> None:
    config = EmulatorConfig(deployments={"chat-prod": "gpt-4.1-mini", "pictures": "gpt-image-1.5"})
    with start_emulator(config) as emu:
        async with image_service(emu) as running:
            await running.service.generate("one", LOW, LocalStore(tmp_path))
            await running.service.generate("two", ImageOptions(quality="high"), LocalStore(tmp_path))
        lookups = deployment_lookups(emu)
        creates, versions = posts(emu, RESPONSES), posts(emu, VERSIONS)
    assert [r.path for r in lookups] == ["/api/projects/emulator/deployments"], "one listing for the process"
    assert {c.headers["x-ms-oai-image-generation-deployment"] for c in creates} == {"pictures"}
    assert [v.json["definition"]["model"] for v in versions] == ["chat-prod", "chat-prod"]
    assert [v.json["definition"]["tools"][0]["model"] for v in versions] == ["pictures", "pictures"]


async def test_names_given_are_used_and_looked_up_by_name(tmp_path: Path) -> None:
    config = EmulatorConfig(deployments={"chat": "gpt-4o", "a": "gpt-image-1.5", "b": "gpt-image-2"})
    with start_emulator(config) as emu:
        async with image_service(emu, image="b", model="chat") as running:
            await running.service.generate("one", LOW, LocalStore(tmp_path))
        lookups = sorted(r.path.rsplit("/", 1)[-1] for r in deployment_lookups(emu))
        (create,) = posts(emu, RESPONSES)
    assert lookups == ["b", "chat"]
    assert create.headers["x-ms-oai-image-generation-deployment"] == "b"


async def test_options_are_checked_against_the_deployment_s_model_not_its_name(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(deployments={"chat": "gpt-4.1", "pictures": "gpt-image-1-mini"})) as emu:
        async with image_service(emu) as running:
            with pytest.raises(InvalidInputError) as caught:
                await running.service.generate("one", ImageOptions(input_fidelity="high"), LocalStore(tmp_path))
        assert posts(emu, VERSIONS) == [] and posts(emu, RESPONSES) == []
    assert "gpt-image-1-mini" in str(caught.value) and "input_fidelity" in str(caught.value)


async def test_a_project_with_two_image_deployments_fails_the_call_before_anything_is_sent(tmp_path: Path) -> None:
    config = EmulatorConfig(deployments={"chat": "gpt-4.1", "a": "gpt-image-1.5", "b": "gpt-image-2"})
    with start_emulator(config) as emu:
        async with image_service(emu) as running:
            with pytest.raises(ConfigurationError) as caught:
                await running.service.generate("one", LOW, LocalStore(tmp_path))
        assert posts(emu, VERSIONS) == [] and posts(emu, RESPONSES) == []
    text = str(caught.value)
    assert "a -> gpt-image-1.5" in text and "b -> gpt-image-2" in text and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in text


async def test_the_same_options_reuse_one_agent_version(emu: RunningEmulator, tmp_path: Path) -> None:
    async with image_service(emu) as running:
        await running.service.generate("one", LOW, LocalStore(tmp_path))
        await running.service.generate("two", LOW, LocalStore(tmp_path))
        await running.service.generate("three", ImageOptions(quality="high"), LocalStore(tmp_path))
    assert len(posts(emu, VERSIONS)) == 2 and len(posts(emu, RESPONSES)) == 3


async def test_a_deleted_agent_version_is_recreated_once(emu: RunningEmulator, tmp_path: Path) -> None:
    async with image_service(emu) as running:
        await running.service.generate("one", LOW, LocalStore(tmp_path))
        assert emu.state.delete_agent_version(AGENT, "1")
        result = await running.service.generate("two", LOW, LocalStore(tmp_path))
    assert result.record.agent_version is not None
    assert len(posts(emu, VERSIONS)) == 2
    assert len(posts(emu, RESPONSES)) == 3, "the first try met the deleted version; the second, the new one"


async def test_a_lost_create_answer_is_found_by_its_tag_and_not_repeated(emu: RunningEmulator, tmp_path: Path) -> None:
    emu.state.inject("reset-after-accept", method="POST", path=RESPONSES)
    async with image_service(emu) as running:
        result = await running.service.generate("a kite", LOW, LocalStore(tmp_path))
    (create,) = posts(emu, RESPONSES)
    assert result.record.response_id in emu.state.responses
    lookups = [r for r in emu.state.requests if r.method == "GET" and r.path.endswith(RESPONSES)]
    assert len(lookups) == 1 and lookups[0].query.get("agent_name") == AGENT
    assert create.json["metadata"][REQUEST_TAG_KEY]


# ------------------------------------------------------------------ edit


async def test_edit_sends_the_prompt_and_the_images_inline(emu: RunningEmulator, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    images, _ = await resolve(store, data_url(png()), data_url(png(size=(32, 32))))
    async with image_service(emu) as running:
        result = await running.service.edit("make it blue", images, None, LOW, store)
    assert result.record.model_dump()["kind"] == "edit"
    assert [usage.sent_as for usage in result.inputs] == ["inline", "inline"]
    (create,) = posts(emu, RESPONSES)
    content = create.json["input"][0]["content"]
    assert content[0] == {"type": "input_text", "text": "make it blue"}
    assert [part["image_url"].startswith("data:image/png;base64,") for part in content[1:]] == [True, True]
    (version,) = posts(emu, VERSIONS)
    assert version.json["definition"]["tools"][0]["action"] == "edit"


async def test_a_masked_edit_uploads_the_mask_and_goes_direct_on_the_deployments_found(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    images, mask = await resolve(store, data_url(png()), mask=data_url(png("RGBA")))
    async with image_service(emu) as running:
        first = await running.service.edit("fill the hole", images, mask, LOW, store)
        second = await running.service.edit("again", images, mask, LOW, store)
    assert len(posts(emu, "/openai/v1/files")) == 2 and first.inputs[-1].sent_as == "uploaded"
    assert posts(emu, VERSIONS) == [], "an agent version cannot carry a per-call mask"
    creates = posts(emu, RESPONSES)
    assert [c.json.get("model") for c in creates] == ["gpt-4.1", "gpt-4.1"]
    assert all("agent_reference" not in c.json for c in creates)
    assert {c.headers["x-ms-oai-image-generation-deployment"] for c in creates} == {"gpt-image-2"}
    (tool,) = creates[0].json["tools"]
    assert tool["model"] == "gpt-image-2" and tool["input_image_mask"] == {"file_id": first.inputs[-1].file_id}
    assert first.record.agent_name is None and second.record.agent_name is None
    assert len(deployment_lookups(emu)) == 1


async def test_a_follow_up_edit_uses_the_earlier_turn_and_falls_back_to_bytes_when_it_is_gone(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    async with image_service(emu) as running:
        first = await running.service.generate("a kite", LOW, store)
        images, _ = await resolve(store, first.record.uri)
        follow = await running.service.edit("now at night", images, None, LOW, store)
        assert emu.state.pop_response(first.record.response_id or "") is not None
        fallback = await running.service.edit("now at dawn", images, None, LOW, store)
    creates = posts(emu, RESPONSES)
    assert creates[1].json["previous_response_id"] == first.record.response_id
    assert follow.parent is not None and follow.inputs[0].sent_as == "previous_response"
    assert creates[2].json["previous_response_id"] == first.record.response_id, "tried first"
    assert "previous_response_id" not in creates[3].json and fallback.inputs[0].sent_as == "inline"


# ------------------------------------------------------------------ in flight


async def test_the_pending_record_is_written_before_waiting_and_resumed_after_a_restart(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    in_flight: list[InFlightRecord] = []

    async def progress(value: float, total: float | None, message: str) -> None:
        if message == "Generating the image":
            in_flight.extend(pending(store))
            raise Crash

    async with image_service(emu) as running:
        with pytest.raises(Crash):
            await running.service.generate("a lighthouse", LOW, store, progress)
    (record,) = in_flight
    assert record.provenance["prompt"] == "a lighthouse" and record.provenance["agent_name"] == AGENT
    assert record.agent_name == AGENT and record.tag and record.image_id and record.response_id
    assert pending(store) == [record] and store.files.records() == []

    before = len(deployment_lookups(emu))
    async with image_service(emu) as restarted:
        await restarted.service.resume_pending([store])
        assert await restarted.jobs.drain(10)
    assert len(deployment_lookups(emu)) == before, "resuming needs no deployments: none are looked up"
    resumed = [r for r in emu.state.requests if r.method == "GET" and (record.response_id or "") in r.path]
    assert resumed and all("x-ms-oai-image-generation-deployment" not in r.headers for r in resumed)
    (stored,) = store.files.records()
    assert stored.response_id == record.response_id and stored.prompt == "a lighthouse"
    assert stored.image_id == record.image_id, "stored under the id fixed before the create was sent"
    assert store.path_of(stored).read_bytes() == emu.state.image_bytes(record.response_id or "")
    assert pending(store) == []
    assert len(posts(emu, RESPONSES)) == 1, "resumed, not generated again"


@pytest.mark.parametrize("cancel_upstream", [False, True])
async def test_a_caller_that_leaves_gets_its_image_finished_or_cancelled(
    emu: RunningEmulator, tmp_path: Path, cancel_upstream: bool
) -> None:
    store = LocalStore(tmp_path)
    async with image_service(emu) as running:
        with anyio.CancelScope() as scope:

            async def progress(value: float, total: float | None, message: str) -> None:
                if message == "Generating the image":
                    scope.cancel()

            await running.service.generate("a boat", LOW, store, progress, client_cancelled=lambda: cancel_upstream)
        assert scope.cancelled_caught
        assert await running.jobs.drain(10)
    cancels = [r for r in emu.state.requests if r.method == "POST" and r.path.endswith("/cancel")]
    assert pending(store) == []
    if cancel_upstream:
        assert len(cancels) == 1 and store.files.records() == []
    else:
        assert cancels == [] and len(store.files.records()) == 1


async def test_a_failed_generation_leaves_no_pending_record(emu: RunningEmulator, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    emu.state.inject("filter-failed", method="POST", path=RESPONSES)
    async with image_service(emu) as running:
        with pytest.raises(Exception) as caught:
            await running.service.generate("something", LOW, store)
    assert getattr(caught.value, "code", None) == "content_filter"
    assert pending(store) == [] and store.files.records() == []
