"""Long generations through a real MCP client: heartbeats, resumed streams, cancellation, nothing lost.

Timing is configured, not waited for: the heartbeat interval and the emulator's latency are a fraction of a
second, in the same proportions as production's (a beat every 5 s, promised at least every 10 s). Only leaving
and crashing need a server process of their own (stdio); the server that comes back runs in-process.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import MODES, RawStdioClient, connect, emulator_running, server_params, text_of, wait_until
from mcp import Client

from mcp_server.emulator import EmulatorConfig, RunningEmulator
from mcp_server.images.inflight import InFlight

pytestmark = pytest.mark.anyio


def posts(emulator: RunningEmulator, suffix: str) -> list[Any]:
    return [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith(suffix)]


def in_flight(output_dir: Path) -> bool:
    """Whether the server has recorded a generation it started and knows the response id of."""
    return any(record.response_id for record in InFlight(output_dir).records())


def recorded(output_dir: Path) -> bool:
    """Whether any in-flight record is left (written before the create is sent, settled once stored)."""
    return bool(InFlight(output_dir).keys())


def has_response(emulator: RunningEmulator) -> bool:
    return any(s.status in ("queued", "in_progress") for s in emulator.state.responses.values())


HEARTBEAT = 0.25
"""Seconds between heartbeats (FOUNDRY_IMAGE_MCP_HEARTBEAT; 5 by default): the promise is progress at least
every 2 x HEARTBEAT while a generation runs."""
LATENCY = 6 * HEARTBEAT


@pytest.mark.parametrize("mode", MODES)
async def test_a_long_generation_sends_heartbeats_at_least_every_two_heartbeat_intervals(
    tmp_path: Path, mode: str
) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), message))

    env = {"FOUNDRY_IMAGE_MCP_HEARTBEAT": str(HEARTBEAT)}
    with emulator_running(EmulatorConfig(latency=LATENCY)) as emu, anyio.fail_after(30):
        async with connect(emu.endpoint, tmp_path, mode=mode, extra_env=env) as client:
            started = time.monotonic()
            result = await client.call_tool("generate_image", {"prompt": "slow"}, progress_callback=on_progress)
            finished = time.monotonic()
    assert not result.is_error, text_of(result)
    assert finished - started >= LATENCY
    beats = [m for _, m in seen if m and m.startswith("Still generating")]
    assert len(beats) >= LATENCY / HEARTBEAT - 1, beats
    moments = [started, *(t for t, _ in seen), finished]
    assert max(b - a for a, b in itertools.pairwise(moments)) < 2 * HEARTBEAT, moments


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_stream_resumes_and_yields_the_same_final_bytes(tmp_path: Path, mode: str) -> None:
    with emulator_running(EmulatorConfig(drop_stream_after=5)) as emu, anyio.fail_after(60):
        async with connect(emu.endpoint, tmp_path, mode=mode) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite", "partial_images": 3})
        meta = result.structured_content
        assert meta is not None and not result.is_error, text_of(result)
        assert Path(meta["path"]).read_bytes() == emu.state.image_bytes(meta["response_id"])
        assert len(posts(emu, "/openai/v1/responses")) == 1, "the generation must not be restarted"
        resumes = [r for r in emu.state.requests if r.method == "GET" and r.query.get("stream") == "true"]
        assert resumes and resumes[0].query["starting_after"] == "4"


async def test_when_streaming_is_refused_the_response_is_polled(tmp_path: Path) -> None:
    with emulator_running(EmulatorConfig(refuse_image_streaming=True)) as emu, anyio.fail_after(60):
        async with connect(emu.endpoint, tmp_path) as client:
            first = await client.call_tool("generate_image", {"prompt": "a kite", "partial_images": 1})
            second = await client.call_tool("generate_image", {"prompt": "a bird"})
        assert not first.is_error and not second.is_error, text_of(first) + text_of(second)
        bodies = [r.json for r in posts(emu, "/openai/v1/responses")]
        assert [b.get("stream") for b in bodies] == [True, None, None], "refused once, then remembered"
        assert all(b["background"] is True for b in bodies)
        assert any(r.method == "GET" and "/openai/v1/responses/" in r.path for r in emu.state.requests)


CANCEL_PATHS = [
    pytest.param("legacy", False, id="legacy-in-process"),
    # An in-process 2026-07-28 call runs in the caller's own task (the SDK's direct dispatcher), with no
    # notifications/cancelled to tell "stop" from "the client left"; on a wire the cancellation is explicit.
    pytest.param("auto", True, id="auto-stdio"),
]


@pytest.mark.parametrize(("mode", "stdio"), CANCEL_PATHS)
async def test_cancelling_the_call_cancels_the_generation_upstream_within_a_second(
    tmp_path: Path, mode: str, stdio: bool
) -> None:
    with emulator_running(EmulatorConfig(latency=20)) as emu, anyio.fail_after(60):
        client = (
            Client(server_params(emu.endpoint, tmp_path), mode=mode)
            if stdio
            else connect(emu.endpoint, tmp_path, mode=mode)
        )
        async with client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "generate_image", {"prompt": "never mind"})
                # Started upstream and known to the server (its in-flight record): there is something to cancel.
                while not in_flight(tmp_path):
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
        assert not recorded(tmp_path)


async def test_an_image_finished_after_the_client_left_is_stored_and_listed(tmp_path: Path) -> None:
    """The process is the subject: a stdio client that exits closes stdin, and the server must not exit (or
    cancel upstream) before the generation it was asked for has landed."""
    with emulator_running(EmulatorConfig(latency=2)) as emu:
        raw = RawStdioClient(server_params(emu.endpoint, tmp_path))
        raw.initialize()
        raw.call_tool("generate_image", {"prompt": "left behind"})
        # Started upstream and known to the server (its in-flight record), not merely sent.
        wait_until(lambda: in_flight(tmp_path), what="the in-flight record")
        raw.close_stdin()
        assert has_response(emu), "the client must leave while the generation still runs"
        assert raw.leave(timeout=60) == 0
        assert posts(emu, "/cancel") == []
        (stored,) = emu.state.responses.values()
        assert stored.status == "completed"
        with anyio.fail_after(60):
            async with connect(emu.endpoint, tmp_path) as client:
                listed = (await client.list_resources()).resources
        (image,) = listed
        (saved,) = tmp_path.glob("img-*.png")
        assert image.uri.endswith(saved.stem)
        assert saved.read_bytes() == stored.image_bytes
        assert not recorded(tmp_path)


@pytest.mark.parametrize("null_results", [False, True], ids=["plain", "retrieve-result-null"])
async def test_a_generation_in_flight_across_a_restart_is_resumed_and_stored(
    tmp_path: Path, null_results: bool
) -> None:
    """The process is the subject: a server killed mid-generation; the next one (here in-process) resumes it.
    Also when the service retrieves the finished response with `result: null` (protocol §4): its image is read
    from a replay of its stream."""
    with emulator_running(EmulatorConfig(latency=2, null_result_on_retrieve=null_results)) as emu:
        raw = RawStdioClient(server_params(emu.endpoint, tmp_path))
        raw.initialize()
        raw.call_tool("generate_image", {"prompt": "survives a crash"})
        wait_until(lambda: in_flight(tmp_path), what="the in-flight record")
        raw.kill()
        assert has_response(emu), "the server must die while the generation still runs"
        assert list(tmp_path.glob("img-*")) == []
        with anyio.fail_after(60):
            env = {"FOUNDRY_IMAGE_MCP_POLL_INTERVAL": "0.1"}
            async with connect(emu.endpoint, tmp_path, extra_env=env) as client:
                while not (await client.list_resources()).resources:
                    await anyio.sleep(0.05)
                (image,) = (await client.list_resources()).resources
        (stored,) = emu.state.responses.values()
        (saved,) = tmp_path.glob("img-*.png")
        assert image.uri.endswith(saved.stem) and saved.read_bytes() == stored.image_bytes
        meta = (tmp_path / f"{saved.stem}.json").read_text()
        assert "survives a crash" in meta
        assert not recorded(tmp_path)
        assert len(posts(emu, "/openai/v1/responses")) == 1


async def test_a_response_deleted_while_it_runs_is_reported_and_not_started_again(tmp_path: Path) -> None:
    """A 404 for the response being followed is not a lost agent version: no second version, no second create."""
    with emulator_running(EmulatorConfig(latency=3)) as emu, anyio.fail_after(60):
        async with connect(emu.endpoint, tmp_path) as client, anyio.create_task_group() as tg:
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

    with emulator_running(EmulatorConfig(unrequested_partial_image=True)) as emu, anyio.fail_after(60):
        async with connect(emu.endpoint, tmp_path) as client:
            result = await client.call_tool("generate_image", {"prompt": "a kite"}, progress_callback=on_progress)
    assert not result.is_error, text_of(result)
    partials = [m.split(":")[0] for m in seen if m.startswith("Partial image")]
    assert partials == ["Partial image 1"], seen


async def test_streaming_stays_on_after_a_refusal_that_is_not_about_streaming(tmp_path: Path) -> None:
    with emulator_running(EmulatorConfig()) as emu, anyio.fail_after(60):
        emu.state.inject("moderation-blocked")
        async with connect(emu.endpoint, tmp_path) as client:
            blocked = await client.call_tool("generate_image", {"prompt": "blocked"})
            after = await client.call_tool("generate_image", {"prompt": "fine"})
        assert blocked.is_error and not after.is_error, text_of(after)
        assert [b.get("stream") for b in (r.json for r in posts(emu, "/openai/v1/responses"))] == [True, True]
