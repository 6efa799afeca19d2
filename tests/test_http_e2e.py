"""Streamable HTTP: the real server over loopback HTTP, driven by mcp.Client and by raw HTTP for security."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import MODES, HttpServer, text_of
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import BlobResourceContents

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.images.stores import principal_dir_name

pytestmark = pytest.mark.anyio
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef01"
TOKENS = {"FOUNDRY_IMAGE_MCP_AUTH_TOKENS": f"alice:{ALICE},bob:{BOB}"}


@pytest.fixture
def served(emulator: RunningEmulator, tmp_path: Path) -> Iterator[HttpServer]:
    server = HttpServer(emulator.endpoint, tmp_path, extra_env=TOKENS)
    server.wait_ready()
    yield server
    server.stop()


@asynccontextmanager
async def client(
    server: HttpServer, token: str | None, mode: str = "auto", *, terminate: bool = True
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(
            streamable_http_client(server.url, http_client=http, terminate_on_close=terminate), mode=mode
        ) as session,
    ):
        yield session


@pytest.mark.parametrize("mode", MODES)
async def test_an_http_client_generates_and_reads_back_exact_bytes(
    served: HttpServer, emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(60):
        async with client(served, ALICE, mode) as session:
            result = await session.call_tool("generate_image", {"prompt": "over http", "quality": "low"})
            meta = result.structured_content
            assert meta is not None and not result.is_error, text_of(result)
            listed = await session.list_resources()
            read = await session.read_resource(meta["uri"])
    assert [r.uri for r in listed.resources] == [meta["uri"]]
    (content,) = read.contents
    assert isinstance(content, BlobResourceContents)
    stored = Path(meta["path"])
    assert base64.b64decode(content.blob) == stored.read_bytes() == emulator.state.image_bytes(meta["response_id"])
    assert stored.parent == tmp_path / principal_dir_name("alice")


async def test_each_principal_sees_and_reads_only_its_own_images(served: HttpServer, emulator: RunningEmulator) -> None:
    with anyio.fail_after(60):
        async with client(served, ALICE) as alice:
            made = await alice.call_tool("generate_image", {"prompt": "alice's cat", "quality": "low"})
        uri = (made.structured_content or {})["uri"]
        responses_before = len(emulator.state.responses)
        async with client(served, BOB, "legacy") as bob:
            listed = await bob.list_resources()
            with pytest.raises(MCPError) as unreadable:
                await bob.read_resource(uri)
            edit = await bob.call_tool("edit_image", {"prompt": "steal it", "images": [uri]})
            by_path = await bob.call_tool(
                "edit_image", {"prompt": "steal it", "images": [str(Path((made.structured_content or {})["path"]))]}
            )
    assert listed.resources == []
    assert unreadable.value.error.code == -32602
    assert edit.is_error and "images[0]" in text_of(edit)
    assert by_path.is_error and "outside" in text_of(by_path)
    assert len(emulator.state.responses) == responses_before


async def test_security_checks_answer_before_any_tool_runs(served: HttpServer, emulator: RunningEmulator) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=10) as http:
        missing = await http.post("/mcp", json=body, headers=headers)
        wrong = await http.post(
            "/mcp", json=body, headers={**headers, "Authorization": "Bearer not-a-valid-token-at-all"}
        )
        bad_host = await http.post(
            "/mcp", json=body, headers={**headers, "Authorization": f"Bearer {ALICE}", "Host": "evil.example:80"}
        )
        bad_origin = await http.post(
            "/mcp", json=body, headers={**headers, "Authorization": f"Bearer {ALICE}", "Origin": "http://evil.example"}
        )
        good = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {ALICE}"})
        health = await http.get("/healthz")
        metadata_url = missing.headers["www-authenticate"].split('resource_metadata="')[1].split('"')[0]
        metadata = await http.get(metadata_url)
        too_big = await http.post(
            "/mcp", content=b"x" * (65 * 1024 * 1024), headers={**headers, "Authorization": f"Bearer {ALICE}"}
        )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "Bearer" in missing.headers["www-authenticate"]
    assert metadata.status_code == 200 and metadata.json()["resource"] == served.url
    assert bad_host.status_code == 421
    assert bad_origin.status_code == 403
    assert good.status_code == 200
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert too_big.status_code == 413
    assert emulator.state.requests == []


@pytest.mark.parametrize("mode", MODES)
async def test_stateless_mode_serves_calls(emulator: RunningEmulator, tmp_path: Path, mode: str) -> None:
    server = HttpServer(emulator.endpoint, tmp_path, extra_env=TOKENS, args=["--stateless"])
    try:
        server.wait_ready()
        with anyio.fail_after(60):
            async with client(server, BOB, mode) as session:
                result = await session.call_tool("generate_image", {"prompt": "stateless", "quality": "low"})
        assert not result.is_error, text_of(result)
    finally:
        server.stop()


def test_a_non_loopback_address_without_inbound_auth_is_refused(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_server",
            "serve",
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--emulator",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "without inbound authentication" in done.stderr and "--allow-unauthenticated" in done.stderr
    assert "Serving MCP" not in done.stderr and "Traceback" not in done.stderr


async def test_shutdown_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(latency=2)) as emu:
        server = HttpServer(emu.endpoint, tmp_path, extra_env=TOKENS)
        server.wait_ready()
        results: list[Any] = []
        with anyio.fail_after(60):
            try:
                async with client(server, ALICE, terminate=False) as session, anyio.create_task_group() as tg:
                    # Listed first: the client checks results against the output schema, and would otherwise
                    # fetch it after the result, from a server that has gone by then.
                    await session.list_tools()

                    async def call() -> None:
                        results.append(await session.call_tool("generate_image", {"prompt": "finish me"}))

                    tg.start_soon(call)
                    while not emu.state.responses:
                        await anyio.sleep(0.01)
                    await anyio.to_thread.run_sync(server.stop)
            except BaseExceptionGroup as group:
                # Closing the client may still try to reach the server that is now gone; nothing else may fail.
                _, unexpected = group.split(httpx2.ConnectError)
                if unexpected is not None:
                    raise
        assert len(results) == 1, "".join(server.log)
        assert not results[0].is_error, text_of(results[0])
        assert Path(results[0].structured_content["path"]).is_file()
        assert list(tmp_path.rglob(".*.tmp")) == []


async def test_calls_beyond_the_concurrency_cap_wait_with_progress(tmp_path: Path) -> None:
    env = {**TOKENS, "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT": "1", "FOUNDRY_IMAGE_MCP_HEARTBEAT": "0.3"}
    with start_emulator(EmulatorConfig(latency=1.0)) as emu:
        server = HttpServer(emu.endpoint, tmp_path, extra_env=env)
        server.wait_ready()
        messages: list[str] = []
        results: list[Any] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            messages.append(message or "")

        try:
            with anyio.fail_after(60):
                async with client(server, ALICE) as session, anyio.create_task_group() as tg:
                    for n in range(2):

                        async def call(n: int = n) -> None:
                            results.append(
                                await session.call_tool(
                                    "generate_image", {"prompt": f"queued {n}"}, progress_callback=on_progress
                                )
                            )

                        tg.start_soon(call)
        finally:
            server.stop()
        assert len(results) == 2 and not any(r.is_error for r in results)
        assert any(m.startswith("Waiting for a free generation slot") for m in messages), messages
        starts = sorted(s.response["created_at"] for s in emu.state.responses.values())
        assert starts[1] - starts[0] >= 1
