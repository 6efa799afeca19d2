"""Long generations through a real MCP client: heartbeats, resumed streams, cancellation, nothing lost."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import MODES, RawStdioClient, server_params, text_of, wait_until
from mcp import Client

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

pytestmark = pytest.mark.anyio


def posts(emulator: RunningEmulator, suffix: str) -> list[Any]:
    return [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith(suffix)]


def has_response(emulator: RunningEmulator) -> bool:
    return any(s.status in ("queued", "in_progress") for s in emulator.state.responses.values())


async def test_a_30_second_generation_sends_heartbeats_at_least_every_10_seconds(tmp_path: Path) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), message))

    with start_emulator(EmulatorConfig(latency=30)) as emu, anyio.fail_after(90):
        async with Client(server_params(emu.endpoint, tmp_path), mode="legacy") as client:
            started = time.monotonic()
            result = await client.call_tool("generate_image", {"prompt": "slow"}, progress_callback=on_progress)
            finished = time.monotonic()
    assert not result.is_error, text_of(result)
    assert finished - started >= 30
    beats = [m for _, m in seen if m and m.startswith("Still generating")]
    assert len(beats) >= 5, beats
    moments = [started, *(t for t, _ in seen), finished]
    assert max(b - a for a, b in itertools.pairwise(moments)) < 10


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_stream_resumes_and_yields_the_same_final_bytes(tmp_path: Path, mode: str) -> None:
    with start_emulator(EmulatorConfig(drop_stream_after=5)) as emu, anyio.fail_after(60):
        async with Client(server_params(emu.endpoint, tmp_path), mode=mode) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite", "partial_images": 3})
        meta = result.structured_content
        assert meta is not None and not result.is_error, text_of(result)
        assert Path(meta["path"]).read_bytes() == emu.state.image_bytes(meta["response_id"])
        assert len(posts(emu, "/openai/v1/responses")) == 1, "the generation must not be restarted"
        resumes = [r for r in emu.state.requests if r.method == "GET" and r.query.get("stream") == "true"]
        assert resumes and resumes[0].query["starting_after"] == "4"


async def test_when_streaming_is_refused_the_response_is_polled(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(refuse_image_streaming=True)) as emu, anyio.fail_after(60):
        async with Client(server_params(emu.endpoint, tmp_path)) as client:
            first = await client.call_tool("generate_image", {"prompt": "a kite", "partial_images": 1})
            second = await client.call_tool("generate_image", {"prompt": "a bird"})
        assert not first.is_error and not second.is_error, text_of(first) + text_of(second)
        bodies = [r.json for r in posts(emu, "/openai/v1/responses")]
        assert [b.get("stream") for b in bodies] == [True, None, None], "refused once, then remembered"
        assert all(b["background"] is True for b in bodies)
        assert any(r.method == "GET" and "/openai/v1/responses/" in r.path for r in emu.state.requests)


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_call_cancels_the_generation_upstream_within_a_second(tmp_path: Path, mode: str) -> None:
    with start_emulator(EmulatorConfig(latency=20)) as emu, anyio.fail_after(60):
        async with Client(server_params(emu.endpoint, tmp_path), mode=mode) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "generate_image", {"prompt": "never mind"})
                while not has_response(emu):
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            cancelled_at = time.monotonic()
            with anyio.fail_after(1):
                while not posts(emu, "/cancel"):
                    await anyio.sleep(0.01)
            assert time.monotonic() - cancelled_at < 1
            (stored,) = emu.state.responses.values()
            with anyio.fail_after(5):
                while stored.status != "cancelled":
                    await anyio.sleep(0.01)
                    (stored,) = emu.state.responses.values()
            assert (await client.list_resources()).resources == []
        assert not list((tmp_path / ".pending").glob("*.json"))


async def test_an_image_finished_after_the_client_left_is_stored_and_listed(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(latency=2)) as emu:
        raw = RawStdioClient(server_params(emu.endpoint, tmp_path))
        raw.initialize()
        raw.call_tool("generate_image", {"prompt": "left behind"})
        wait_until(lambda: has_response(emu), what="the generation to start")
        assert raw.leave(timeout=60) == 0
        assert posts(emu, "/cancel") == []
        (stored,) = emu.state.responses.values()
        assert stored.status == "completed"
        with anyio.fail_after(60):
            async with Client(server_params(emu.endpoint, tmp_path)) as client:
                listed = (await client.list_resources()).resources
        (image,) = listed
        (saved,) = tmp_path.glob("img-*.png")
        assert image.uri.endswith(saved.stem)
        assert saved.read_bytes() == stored.image_bytes
        assert not list((tmp_path / ".pending").glob("*.json"))


@pytest.mark.parametrize("null_results", [False, True], ids=["plain", "retrieve-result-null"])
async def test_a_generation_in_flight_across_a_restart_is_resumed_and_stored(
    tmp_path: Path, null_results: bool
) -> None:
    """Also when the service retrieves the finished response with `result: null` (protocol §4): its image is read
    from a replay of its stream."""
    with start_emulator(EmulatorConfig(latency=3, null_result_on_retrieve=null_results)) as emu:
        raw = RawStdioClient(server_params(emu.endpoint, tmp_path))
        raw.initialize()
        raw.call_tool("generate_image", {"prompt": "survives a crash"})
        wait_until(lambda: any((tmp_path / ".pending").glob("*.json")), what="the in-flight record")
        raw.kill()
        assert list(tmp_path.glob("img-*")) == []
        with anyio.fail_after(60):
            async with Client(server_params(emu.endpoint, tmp_path)) as client:
                while not (await client.list_resources()).resources:
                    await anyio.sleep(0.05)
                (image,) = (await client.list_resources()).resources
        (stored,) = emu.state.responses.values()
        (saved,) = tmp_path.glob("img-*.png")
        assert image.uri.endswith(saved.stem) and saved.read_bytes() == stored.image_bytes
        meta = (tmp_path / f"{saved.stem}.json").read_text()
        assert "survives a crash" in meta
        assert not list((tmp_path / ".pending").glob("*.json"))
        assert len(posts(emu, "/openai/v1/responses")) == 1


async def test_a_response_deleted_while_it_runs_is_reported_and_not_started_again(tmp_path: Path) -> None:
    """A 404 for the response being followed is not a lost agent version: no second version, no second create."""
    with start_emulator(EmulatorConfig(latency=3)) as emu, anyio.fail_after(60):
        async with Client(server_params(emu.endpoint, tmp_path)) as client, anyio.create_task_group() as tg:
            results: list[Any] = []

            async def call() -> None:
                results.append(await client.call_tool("generate_image", {"prompt": "vanishing"}))

            tg.start_soon(call)
            while not has_response(emu):
                await anyio.sleep(0.01)
            (response_id,) = emu.state.responses
            async with httpx2.AsyncClient(base_url=emu.endpoint + "/") as http:
                deleted = await http.delete(f"openai/v1/responses/{response_id}", headers={"authorization": "Bearer k"})
            assert deleted.status_code == 200
        (result,) = results
        assert result.is_error and result.structured_content is not None
        assert result.structured_content["error"]["code"] == "response_not_found", text_of(result)
        assert len(posts(emu, "/openai/v1/responses")) == 1
        assert len(posts(emu, "/agents/foundry-image-mcp/versions")) == 1


async def test_a_partial_image_nobody_asked_for_is_reported_without_a_total(tmp_path: Path) -> None:
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    with start_emulator(EmulatorConfig(unrequested_partial_image=True)) as emu, anyio.fail_after(60):
        async with Client(server_params(emu.endpoint, tmp_path)) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite"}, progress_callback=on_progress)
    assert not result.is_error, text_of(result)
    partials = [m.split(":")[0] for m in seen if m.startswith("Partial image")]
    assert partials == ["Partial image 1"], seen


async def test_streaming_stays_on_after_a_refusal_that_is_not_about_streaming(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu, anyio.fail_after(60):
        emu.state.inject("moderation-blocked")
        async with Client(server_params(emu.endpoint, tmp_path)) as client:
            blocked = await client.call_tool("generate_image", {"prompt": "blocked"})
            after = await client.call_tool("generate_image", {"prompt": "fine"})
        assert blocked.is_error and not after.is_error, text_of(after)
        assert [b.get("stream") for b in (r.json for r in posts(emu, "/openai/v1/responses"))] == [True, True]
