"""Two stateless HTTP replicas sharing one Azure Blob Storage container (Azurite): a client whose requests
alternate between them generates, lists, reads and edits across both; a replica killed mid-generation leaves
no image lost and none duplicated (the other replica takes its in-flight record over once the lease is gone).

The process is the subject: each replica is a real `serve --transport http --stateless` subprocess.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient
from azurite import Azurite
from helpers import HttpServer, emulator_running, parts, text_of
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import BlobResourceContents

from benchmarks.http_load import Alternating
from mcp_server.emulator import EmulatorConfig, RunningEmulator

pytestmark = pytest.mark.anyio
LOW = {"quality": "low", "size": "1024x1024"}


@asynccontextmanager
async def client_of(url: str, transport: httpx2.AsyncBaseTransport | None = None) -> AsyncIterator[Client]:
    timeout = httpx2.Timeout(30, read=300)
    async with (
        httpx2.AsyncClient(transport=transport, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


def port_of(server: HttpServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def replica(emu: RunningEmulator, out: Path, env: dict[str, str]) -> HttpServer:
    server = HttpServer(emu.endpoint, out, extra_env=env, args=["--stateless"])
    server.wait_ready()
    return server


async def blobs(container: ContainerClient, prefix: str) -> list[str]:
    try:
        return [blob.name async for blob in container.list_blobs(name_starts_with=prefix)]
    except ResourceNotFoundError:  # the container is created by the first write
        return []


async def inflight_records(container: ContainerClient) -> list[dict[str, Any]]:
    found = []
    for name in await blobs(container, "shared/inflight/"):
        try:
            data = await (await container.download_blob(name)).readall()
        except ResourceNotFoundError:  # settled between the listing and the download
            continue
        found.append({"name": name, **json.loads(data)})
    return found


def completed(emu: RunningEmulator) -> list[Any]:
    return [s for s in emu.state.responses.values() if s.status == "completed"]


@pytest.fixture
async def shared(azurite: Azurite, tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], ContainerClient]]:
    name = f"replicas-{secrets.token_hex(4)}"
    env = {
        "FOUNDRY_IMAGE_MCP_STORE": "azure-blob",
        "FOUNDRY_IMAGE_MCP_BLOB_CONNECTION_STRING": azurite.connection_string(),
        "FOUNDRY_IMAGE_MCP_BLOB_CONTAINER": name,
        "FOUNDRY_IMAGE_MCP_RESCAN_SECONDS": "0.5",
        "FOUNDRY_IMAGE_MCP_POLL_INTERVAL": "0.1",
    }
    async with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        yield env, service.get_container_client(name)


async def test_a_client_alternating_between_two_replicas_works_across_both(
    shared: tuple[dict[str, str], ContainerClient], tmp_path: Path
) -> None:
    env, container = shared
    with emulator_running() as emu:
        first, second = replica(emu, tmp_path / "a", env), replica(emu, tmp_path / "b", env)
        try:
            transport = Alternating([port_of(first), port_of(second)])
            async with client_of(first.url, transport) as client:
                made = await client.call_tool("generate_image", {"prompt": "a lighthouse", **LOW})
                assert not made.is_error, text_of(made)
                uri = str(parts(made)[1].uri)
                listed = [str(r.uri) for r in (await client.list_resources()).resources]
                (content,) = (await client.read_resource(uri)).contents
                edited = await client.call_tool("edit_image", {"prompt": "at night", "images": [uri], **LOW})
                assert not edited.is_error, text_of(edited)
                again = [str(r.uri) for r in (await client.list_resources()).resources]
        finally:
            first.stop()
            second.stop()
    assert set(transport.sent_to) == {port_of(first), port_of(second)}, "both replicas served"
    assert listed == [uri] and sorted(again) == sorted([str(parts(edited)[1].uri), uri])
    assert isinstance(content, BlobResourceContents)
    (generated, edit) = sorted(completed(emu), key=lambda s: s.response["created_at"])
    assert edit.request.get("previous_response_id") == generated.response["id"], "the edit continued the image"
    assert edited.structured_content and edited.structured_content["parent"]["uri"] == uri
    assert len(await blobs(container, "shared/records/")) == 2 and await inflight_records(container) == []


async def test_a_replica_killed_mid_generation_loses_nothing_and_stores_nothing_twice(
    shared: tuple[dict[str, str], ContainerClient], tmp_path: Path
) -> None:
    env, container = shared
    with emulator_running(EmulatorConfig(latency=1.5)) as emu:
        doomed, survivor = replica(emu, tmp_path / "a", env), replica(emu, tmp_path / "b", env)
        try:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    try:
                        async with client_of(doomed.url) as client:
                            await client.call_tool("generate_image", {"prompt": "orphaned", **LOW})
                    except Exception:  # the replica dies under it
                        return

                tg.start_soon(call)
                with anyio.fail_after(20):
                    while not [r for r in await inflight_records(container) if r.get("response_id")]:
                        await anyio.sleep(0.05)
                doomed.process.kill()
                tg.cancel_scope.cancel()
            (record,) = await inflight_records(container)
            # The dead replica's lease would expire within 60 s; break it now, as that expiry would.
            await BlobLeaseClient(container.get_blob_client(record["name"])).break_lease(lease_break_period=0)
            with anyio.fail_after(30):
                while await inflight_records(container):
                    await anyio.sleep(0.1)
        finally:
            doomed.stop()
            survivor.stop()
    (done,) = completed(emu)
    stored = await blobs(container, "shared/records/")
    assert len(stored) == 1 and record["image_id"] in stored[0], "stored once, under the id fixed in advance"
    image_blobs = await blobs(container, "shared/images/")
    (image_name,) = image_blobs
    assert await (await container.download_blob(image_name)).readall() == done.image_bytes
