"""`resources/list` a page at a time: newest first, at most 100 per page, opaque cursors that stay valid (nothing
skipped or repeated) while images arrive, a foreign cursor refused with -32602; per principal over HTTP."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import MODES, HttpServer, connect, emulator_running
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from mcp_server.images.base import PAGE_SIZE
from mcp_server.images.records import new_image_id, new_record

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 1, tzinfo=UTC)
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def populate(root: Path, count: int, start: datetime = START) -> list[str]:
    """`count` stored images, one second apart (sidecars written directly: no PNG encoding, no fsync)."""
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for n in range(count):
        image_id = new_image_id(start + timedelta(seconds=n))
        record = new_record(TINY_PNG, output_format="png", width=1, height=1, metadata={}, image_id=image_id)
        (root / record.file_name).write_bytes(TINY_PNG)
        (root / f"{image_id}.json").write_text(record.model_dump_json())
        ids.append(image_id)
    return ids


async def list_all(client: object, *, between: object = None) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        result = await client.list_resources(cursor=cursor)  # type: ignore[attr-defined]
        pages.append([str(r.uri).rsplit("/", 1)[1] for r in result.resources])
        cursor = result.next_cursor
        if cursor is None:
            return pages
        if callable(between):
            between()


@pytest.mark.parametrize("mode", MODES)
async def test_images_are_listed_newest_first_a_page_at_a_time(tmp_path: Path, mode: str) -> None:
    ids = populate(tmp_path, 250)
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path, mode=mode) as client:
            pages = await list_all(client)
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 50]
    assert [i for page in pages for i in page] == sorted(ids, reverse=True)


async def test_images_added_while_paging_neither_repeat_nor_hide_the_ones_listed(tmp_path: Path) -> None:
    ids = populate(tmp_path, 230)
    later = iter(range(100))

    def add_one() -> None:  # newer than everything listed so far: it belongs before the cursor
        populate(tmp_path, 1, START + timedelta(days=1, seconds=next(later)))

    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            pages = await list_all(client, between=add_one)
    listed = [i for page in pages for i in page]
    assert len(listed) == len(set(listed)) == len(ids), "each original image exactly once"
    assert listed == sorted(ids, reverse=True)


async def test_a_cursor_this_server_did_not_make_is_refused_with_invalid_params(tmp_path: Path) -> None:
    populate(tmp_path, 3)
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            for cursor in ("not-a-cursor", "eyJ2IjogMSwgImFmdGVyIjogIi4uL3gifQ==", ""):
                with pytest.raises(MCPError) as caught:
                    await client.list_resources(cursor=cursor)
                assert caught.value.error.code == -32602, cursor


async def test_an_empty_store_lists_one_empty_page(tmp_path: Path) -> None:
    with emulator_running() as emu:
        async with connect(emu.endpoint, tmp_path) as client:
            result = await client.list_resources()
    assert result.resources == [] and result.next_cursor is None


LISTED_OVER_HTTP = int(os.environ.get("FOUNDRY_IMAGE_MCP_TEST_LISTED_IMAGES", "1000"))
"""How many images the HTTP listing test stores: 1,000 in the suite; 100,000 for the figure in benchmarks/README."""


@pytest.mark.parametrize("mode", MODES)
async def test_a_large_store_lists_page_by_page_over_http_each_page_well_under_1_mib(tmp_path: Path, mode: str) -> None:
    """Before pagination, 10,000 images made one 3.2 MB message that handshake-era HTTP clients never received
    ("Server-sent event exceeded the 1048576 byte limit")."""
    populate(tmp_path, LISTED_OVER_HTTP)
    with emulator_running() as emu:
        server = HttpServer(emu.endpoint, tmp_path)
        try:
            server.wait_ready()
            async with (
                create_mcp_http_client() as http,
                Client(streamable_http_client(server.url, http_client=http), mode=mode) as client,
            ):
                sizes: list[int] = []
                count, cursor = 0, None
                while True:
                    result = await client.list_resources(cursor=cursor)
                    sizes.append(len(result.model_dump_json(by_alias=True)))
                    count += len(result.resources)
                    cursor = result.next_cursor
                    if cursor is None:
                        break
        finally:
            server.stop()
    assert count == LISTED_OVER_HTTP and len(sizes) == -(-LISTED_OVER_HTTP // PAGE_SIZE)
    assert max(sizes) < 64 * 1024, f"largest page {max(sizes)} bytes"
