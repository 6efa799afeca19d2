"""Nothing lost: a paid image survives mangled answers, crashes, full disks and two servers on one directory.

Each scenario injects its fault from outside the client (the emulator misbehaving on purpose, a
SIGKILL, a small tmpfs or a read-only one, a second process) and asserts what the issue asks of
every one: each generation the service completed is stored exactly once, no temporary file is left,
and the result says what happened and what to do.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from disk import Disk, small_disk
from helpers import RawStdioClient, connect, emulator_running, server_params, text_of, wait_until
from mcp.types import BlobResourceContents, CallToolResult, EmbeddedResource

from mcp_server.emulator import EmulatorConfig, RunningEmulator
from mcp_server.foundry.auth import ApiKeyAuth
from mcp_server.foundry.http import FoundryHttp, build_client
from mcp_server.foundry.responses import ResponsesClient
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import ResponseRunner, RunSettings
from mcp_server.images.held import HeldImages
from mcp_server.images.inflight import InFlight
from mcp_server.images.local import LocalStore
from mcp_server.images.records import InFlightRecord, new_image_id, new_inflight_record
from mcp_server.images.store import DiskFiles
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.pending import MAX_RECOVERY_ATTEMPTS, PendingGenerations

pytestmark = pytest.mark.anyio
RESPONSES = "/openai/v1/responses"
LOW = {"quality": "low", "size": "1024x1024"}


class Rescan:
    """The server's wait between rescans, run one pass at a time by the test instead of every minute."""

    def __init__(self) -> None:
        self._go = anyio.Event()
        self._sleeping = anyio.Event()

    async def sleep(self, _: float) -> None:
        self._sleeping.set()
        await self._go.wait()
        self._go = anyio.Event()

    async def run_once(self) -> None:
        """Let the loop make one pass, and return once it is waiting again."""
        await self._sleeping.wait()
        self._sleeping = anyio.Event()
        self._go.set()
        await self._sleeping.wait()


async def no_wait(_: float) -> None:
    await anyio.lowlevel.checkpoint()


def images(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("img-*") if p.suffix != ".json")


def temp_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.tmp"))


def records(out: Path) -> list[InFlightRecord]:
    return InFlight(out).records()


def creates(emu: RunningEmulator) -> int:
    return sum(1 for r in emu.state.requests if r.method == "POST" and r.path.endswith(RESPONSES))


def completed(emu: RunningEmulator) -> list[Any]:
    return [s for s in emu.state.responses.values() if s.status == "completed"]


def assert_stored_exactly_once(emu: RunningEmulator, out: Path) -> None:
    """Every generation the service completed is on disk once, byte for byte; nothing else is, nothing is left."""
    done = completed(emu)
    stored = images(out)
    assert len(stored) == len(done), (stored, done)
    assert sorted(p.read_bytes() for p in stored) == sorted(s.image_bytes for s in done)
    assert temp_files(out) == [] and records(out) == []
    assert list(out.glob(".pending/*.lock")) == [], "a settled record leaves no lock file behind"


async def wait_for(predicate: Any, what: str, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error and result.structured_content is not None, text_of(result)
    error: dict[str, Any] = result.structured_content["error"]
    return error


# ------------------------------------------------------------------ 1. mangled answers to a create


@pytest.mark.parametrize("fault", ["json-reset-after-accept", "not-json-after-accept", "event-not-json-after-accept"])
async def test_an_unreadable_answer_to_an_accepted_create_still_gives_the_image_once(
    tmp_path: Path, fault: str
) -> None:
    with emulator_running() as emu:
        emu.state.inject(fault)
        async with connect(emu.endpoint, tmp_path) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite", **LOW})
        assert not result.is_error, text_of(result)
        assert creates(emu) == 1, "found by its tag, not sent again"
        assert_stored_exactly_once(emu, tmp_path)


async def test_when_the_lost_create_cannot_be_looked_up_the_result_says_where_the_image_will_appear(
    tmp_path: Path,
) -> None:
    with emulator_running() as emu:
        emu.state.inject("not-json-after-accept")
        emu.state.inject("500", method="GET", path=RESPONSES, times=4)  # every lookup of the call itself
        async with connect(emu.endpoint, tmp_path) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite", **LOW})
            error = error_of(result)
            assert error["code"] == "ambiguous" and "Foundry" in error["message"]
            uri = error["pending_uri"]
            assert uri.startswith("foundry-image://images/") and uri in error["hint"] and uri in text_of(result)
            assert "try again" not in error["hint"], "a second call would pay twice"
            # The background recovery looks it up again, finds it, waits for it and stores it under that URI.
            await wait_for(lambda: DiskFiles(tmp_path).records(), "the recovered image (bytes and metadata)")
            (content,) = (await client.read_resource(uri)).contents
        assert isinstance(content, BlobResourceContents)
        assert creates(emu) == 1
        assert_stored_exactly_once(emu, tmp_path)


# ------------------------------------------------------------------ 2. crashes at each moment


def record_by_hand(out: Path, **fields: Any) -> InFlightRecord:
    """An in-flight record as a process that died would have left it (written, then its lock dropped)."""
    record = new_inflight_record(
        tag=new_image_id().replace("-", "_"), image_id=new_image_id(), agent_name=None, provenance={}
    )
    record = record.model_copy(update=fields)
    InFlight(out).begin(record).release()
    return record


async def test_killed_after_the_record_was_written_but_before_the_create_arrived(tmp_path: Path) -> None:
    with emulator_running() as emu:
        record_by_hand(tmp_path, provenance={"prompt": "never sent"})
        async with connect(emu.endpoint, tmp_path) as client:
            await wait_for(lambda: not records(tmp_path), "the record to be settled")
            assert (await client.list_resources()).resources == []
        assert creates(emu) == 0, "nothing is created on its behalf"
        assert_stored_exactly_once(emu, tmp_path)


async def test_killed_between_the_service_accepting_the_create_and_its_first_event(tmp_path: Path) -> None:
    """SIGKILL while the service holds back its answer: the record has a tag and no response id yet."""
    with emulator_running(EmulatorConfig(stall_seconds=30)) as emu:
        emu.state.inject("stall")
        raw = RawStdioClient(server_params(emu.endpoint, tmp_path))
        raw.initialize()
        raw.call_tool("generate_image", {"prompt": "held back", **LOW})
        wait_until(lambda: completed(emu) and records(tmp_path), what="the accepted create")
        (left,) = records(tmp_path)
        assert left.response_id is None and left.tag
        raw.kill()
        async with connect(emu.endpoint, tmp_path) as client:
            await wait_for(lambda: images(tmp_path) and not records(tmp_path), "the resumed image")
            (listed,) = (await client.list_resources()).resources
        assert str(listed.uri).endswith(left.image_id or "?"), "stored under the id fixed before sending"
        assert creates(emu) == 1
        assert_stored_exactly_once(emu, tmp_path)


async def test_killed_after_the_image_was_saved_but_before_its_record_was_settled(tmp_path: Path) -> None:
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            result = await client.call_tool("generate_image", {"prompt": "saved once", **LOW})
        (saved,) = DiskFiles(tmp_path).records()
        record_by_hand(tmp_path, image_id=saved.image_id, response_id=saved.response_id, provenance={})
        async with connect(emu.endpoint, tmp_path) as client:
            await wait_for(lambda: not records(tmp_path), "the record to be settled")
        assert not result.is_error
        assert_stored_exactly_once(emu, tmp_path)


# ------------------------------------------------------------------ 3. read-only and full disks


@pytest.fixture(params=["tmpfs", "injected"])
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A 6 MiB tmpfs where the machine can mount one; errors injected into the store's writes in any case."""
    with small_disk(tmp_path / "disk", 6 * 1024, monkeypatch, kind=request.param) as mounted:
        yield mounted


@pytest.mark.parametrize("state", ["read-only", "full"])
async def test_a_disk_that_cannot_take_the_image_is_refused_before_paying(disk: Disk, state: str) -> None:
    with emulator_running() as emu:
        disk.make_read_only() if state == "read-only" else disk.fill()
        async with connect(emu.endpoint, disk.path) as client:
            error = error_of(await client.call_tool("generate_image", {"prompt": "no room", **LOW}))
        assert error["code"] == "storage" and str(disk.path) in error["message"]
        assert ("read-only" if state == "read-only" else "MiB free") in error["message"]
        assert "nothing was charged" in error["message"] and error["hint"]
        assert creates(emu) == 0
        disk.restore()
        assert temp_files(disk.path) == [] and records(disk.path) == []


async def test_an_image_the_full_disk_refused_stays_readable_and_is_written_once_space_returns(disk: Disk) -> None:
    rescan = Rescan()
    with emulator_running(EmulatorConfig(latency=0.5)) as emu:
        async with (
            connect(emu.endpoint, disk.path, rescan_sleep=rescan.sleep) as client,
            anyio.create_task_group() as tg,
        ):
            results: list[CallToolResult] = []

            async def call() -> None:
                results.append(await client.call_tool("generate_image", {"prompt": "kept in memory", **LOW}))

            tg.start_soon(call)
            await wait_for(lambda: any(r.response_id for r in records(disk.path)), "the generation to start")
            disk.fill()
            await wait_for(lambda: results, "the result")
            (result,) = results
            assert not result.is_error, text_of(result)
            structured = result.structured_content or {}
            assert structured["saved"] is False and "no space" in structured["unsaved_reason"]
            assert (
                structured["path"] is None
                and "NOT saved yet" in text_of(result)
                and "free some space" in text_of(result)
            )
            (stored,) = completed(emu)
            (embedded,) = [c for c in result.content if isinstance(c, EmbeddedResource)]
            assert isinstance(embedded.resource, BlobResourceContents)
            (read,) = (await client.read_resource(structured["uri"])).contents
            assert isinstance(read, BlobResourceContents)
            assert [str(r.uri) for r in (await client.list_resources()).resources] == [structured["uri"]]
            assert images(disk.path) == [] and temp_files(disk.path) == []
            assert len(records(disk.path)) == 1, "its record stays until it is written"

            disk.restore()
            await rescan.run_once()
        assert_stored_exactly_once(emu, disk.path)
        (on_disk,) = images(disk.path)
        assert structured["uri"].endswith(on_disk.stem) and on_disk.read_bytes() == stored.image_bytes


async def test_an_image_still_refused_at_exit_is_fetched_again_by_the_next_start(disk: Disk) -> None:
    with emulator_running(EmulatorConfig(latency=0.5)) as emu:
        async with connect(emu.endpoint, disk.path) as client, anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "generate_image", {"prompt": "survives the exit", **LOW})
            await wait_for(lambda: any(r.response_id for r in records(disk.path)), "the generation to start")
            disk.fill()
        assert images(disk.path) == [] and len(records(disk.path)) == 1
        disk.restore()
        async with connect(emu.endpoint, disk.path):
            await wait_for(lambda: not records(disk.path), "the image fetched again")
        assert creates(emu) == 1
        assert_stored_exactly_once(emu, disk.path)


# ------------------------------------------------------------------ 4. two servers on one directory


async def test_a_second_server_leaves_a_live_servers_generation_alone_and_takes_over_a_dead_ones(
    tmp_path: Path,
) -> None:
    rescan = Rescan()
    with emulator_running(EmulatorConfig(latency=1.0)) as emu:
        first = RawStdioClient(server_params(emu.endpoint, tmp_path))
        first.initialize()
        first.call_tool("generate_image", {"prompt": "whose is it", **LOW})
        wait_until(lambda: any(r.response_id for r in records(tmp_path)), what="the first server's generation")
        async with connect(emu.endpoint, tmp_path, rescan_sleep=rescan.sleep):
            await rescan.run_once()  # a live owner: left alone
            wait_until(lambda: images(tmp_path) and not records(tmp_path), what="the first server's image")
            first.leave()
            assert len(images(tmp_path)) == 1

            second = RawStdioClient(server_params(emu.endpoint, tmp_path))
            second.initialize()
            second.call_tool("generate_image", {"prompt": "orphaned", **LOW})
            wait_until(lambda: any(r.response_id for r in records(tmp_path)), what="the second generation")
            second.kill()  # a dead owner: taken over by the next pass
            await rescan.run_once()
            await wait_for(lambda: len(images(tmp_path)) == 2 and not records(tmp_path), "the adopted image")
        assert creates(emu) == 2
        assert_stored_exactly_once(emu, tmp_path)


async def test_two_servers_starting_together_resume_a_record_once(tmp_path: Path) -> None:
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            await client.call_tool("generate_image", {"prompt": "one", **LOW})
        (saved,) = images(tmp_path)
        saved.unlink()
        (tmp_path / f"{saved.stem}.json").unlink()
        (stored,) = completed(emu)
        record_by_hand(tmp_path, response_id=stored.response["id"])
        async with connect(emu.endpoint, tmp_path), connect(emu.endpoint, tmp_path):
            await wait_for(lambda: not records(tmp_path), "the resumed record")
        assert_stored_exactly_once(emu, tmp_path)


# ------------------------------------------------------------------ 9. leftovers


async def test_a_record_the_service_no_longer_has_is_given_up_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_server")
    with emulator_running() as emu:
        record_by_hand(tmp_path, response_id="resp_gone_for_good")
        async with connect(emu.endpoint, tmp_path):
            await wait_for(lambda: not records(tmp_path), "the record to be given up")
    lines = [r for r in caplog.records if "resp_gone_for_good" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "no longer has" in lines[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("mcp_server.service")), "no traceback"
    assert images(tmp_path) == []


async def test_a_record_that_cannot_be_recovered_is_set_aside_after_a_bounded_number_of_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service unreachable at every start: each start tries once; after the last try the record is moved to
    `.pending/abandoned/` with one line, instead of being retried (with a traceback) forever."""
    record = record_by_hand(tmp_path, response_id="resp_unreachable")
    http = FoundryHttp(build_client("http://127.0.0.1:9/", ApiKeyAuth("k")), retry=RetryPolicy(sleep=no_wait))
    runner = ResponseRunner(ResponsesClient(http), RunSettings(sleep=no_wait))
    for start in range(1, MAX_RECOVERY_ATTEMPTS + 1):
        async with anyio.create_task_group() as tg:
            jobs = BackgroundJobs(tg)
            assert await PendingGenerations(runner, jobs, HeldImages()).resume([LocalStore(tmp_path)]) == 1
            assert await jobs.drain(10)
        left = records(tmp_path)
        assert [r.attempts for r in left] == ([start] if start < MAX_RECOVERY_ATTEMPTS else [])
    await http.aclose()
    assert (tmp_path / ".pending" / "abandoned" / f"{record.key}.json").is_file()
    assert not list((tmp_path / ".pending").glob("*.lock"))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "resp_unreachable" in r.getMessage()]
    assert len(warnings) == MAX_RECOVERY_ATTEMPTS and "Giving up" in warnings[-1].getMessage()
    ours = [r for r in caplog.records if r.name.startswith("mcp_server.service")]
    assert all(r.exc_info is None for r in ours), "one line each, no traceback"


async def test_a_record_left_by_an_earlier_version_is_still_finished(tmp_path: Path) -> None:
    """Before records were written ahead of the create, they were `.pending/<response id>.json`, flat."""
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            await client.call_tool("generate_image", {"prompt": "from before", **LOW})
        (saved,) = DiskFiles(tmp_path).records()
        for path in (tmp_path / f"{saved.image_id}.json", DiskFiles(tmp_path).path_of(saved)):
            path.unlink()
        old = {"response_id": saved.response_id, "recorded_at": "2026-11-01T00:00:00+00:00", "prompt": "from before"}
        (tmp_path / ".pending").mkdir(exist_ok=True)
        (tmp_path / ".pending" / f"{saved.response_id}.json").write_text(json.dumps(old))
        async with connect(emu.endpoint, tmp_path):
            await wait_for(lambda: not records(tmp_path), "the old record to be finished")
        (stored,) = DiskFiles(tmp_path).records()
        assert stored.prompt == "from before" and stored.response_id == saved.response_id
        assert_stored_exactly_once(emu, tmp_path)
