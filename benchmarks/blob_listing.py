"""Figure 7: listing and looking up stored images in Azure Blob Storage (`FOUNDRY_IMAGE_MCP_STORE=azure-blob`) at
N images under one prefix (10,000 by default), on Azurite started for the figure, against the local store over a
temporary directory holding the same images, in the same run.

The container is filled through the store's own `put` (`BlobBackend.store_for(prefix)`), WRITERS at once: each
image is a realistic record (`listing.sample_record`, ids one second apart) and 4 bytes; the time that took is
reported. The local directory gets the same ids the way figure 6 writes them (`listing.populate`) and its index is
built before anything is timed.

Then, for both stores, through the `ImageStore` protocol the server uses: the first page (`page(None, 100)`; the
local store's includes the `sync` a listing starts with), a deep page (page 50, reached once through the cursors,
then timed alone) and `get(id)` of ids spread over the images; each the median over the repetitions. The local
store is judged (≤ 20 ms each). Azurite is an emulator in Node.js on loopback, not Azure: its rows pass under
100 ms and are reported as INFO above that, never failed (a real account adds a network round trip per request;
a page is one List Blobs call, a lookup one Get Blob).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from mcp_server.config import BLOB_CONNECTION_VAR, BLOB_CONTAINER_VAR, STORE_VAR, Settings
from mcp_server.images.base import ImageStore
from mcp_server.images.local import LocalStore

from .azurite import Azurite, AzuriteUnavailable, azurite_running, missing, skipped
from .common import Figure, Row, Stats, ms
from .listing import PAGE, TARGET_MS, TINY_IMAGE, image_id, populate, sample_record

AZURITE_TARGET_MS = 100.0
DEEP_PAGE = 50
PREFIX = "shared"
WRITERS = 64
"""Images stored at once while filling the container."""
LOCAL_SETTLE = 0.15
"""Seconds for the local directory's mtime to age past the index's trust threshold (100 ms) before timing."""


async def _timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append(ms(time.perf_counter() - started))
    return samples


async def _timed_each(call: Callable[[str], Awaitable[object]], ids: Sequence[str]) -> list[float]:
    samples = []
    for image in ids:
        started = time.perf_counter()
        await call(image)
        samples.append(ms(time.perf_counter() - started))
    return samples


async def _cursor_of_page(store: ImageStore, number: int) -> str | None:
    """The cursor page `number` (1-based) is listed with, walking the pages before it."""
    cursor: str | None = None
    for _ in range(number - 1):
        cursor = (await store.page(cursor, PAGE)).next_cursor
    return cursor


async def _measure(store: ImageStore, deep: int, ids: Sequence[str], repeat: int) -> dict[str, list[float]]:
    """First page, deep page and lookups of `store`, after one untimed first page."""
    await store.page(None, PAGE)
    cursor = await _cursor_of_page(store, deep)
    first = await _timed(lambda: store.page(None, PAGE), repeat)
    deep_ms = await _timed(lambda: store.page(cursor, PAGE), repeat)
    for image in ids:  # every id must be found (the lookups are not timing misses)
        if await store.get(image) is None:
            raise RuntimeError(f"{store.label} has no {image}")
    return {"first": first, "deep": deep_ms, "get": await _timed_each(store.get, ids)}


async def _fill(store: ImageStore, count: int) -> float:
    """Store `count` images through `store.put`, WRITERS at once; the seconds it took."""
    records = [sample_record(image_id(n), TINY_IMAGE) for n in range(count)]
    pending = iter(records)
    started = time.perf_counter()

    async def writer() -> None:
        for record in pending:
            await store.put(record, TINY_IMAGE)

    async with anyio.create_task_group() as tg:
        for _ in range(WRITERS):
            tg.start_soon(writer)
    return time.perf_counter() - started


async def _on_azurite(
    azurite: Azurite, count: int, deep: int, ids: Sequence[str], repeat: int
) -> tuple[float, dict[str, list[float]]]:
    """Fill a fresh container and measure it: (seconds the filling took, the timings)."""
    from mcp_server.images.blob import open_backend

    settings = Settings.load(
        {
            "AZURE_AI_PROJECT_ENDPOINT": "https://bench.services.ai.azure.com/api/projects/bench",
            "HOME": tempfile.gettempdir(),
            STORE_VAR: "azure-blob",
            BLOB_CONNECTION_VAR: azurite.connection_string(),
            BLOB_CONTAINER_VAR: f"bench-{secrets.token_hex(6)}",
        }
    )
    backend = open_backend(settings, retries=0)
    try:
        await backend.prepare()
        store = backend.store_for(PREFIX)
        took = await _fill(store, count)
        return took, await _measure(store, deep, ids, repeat)
    finally:
        await backend.aclose()


async def _on_disk(root: Path, count: int, deep: int, ids: Sequence[str], repeat: int) -> dict[str, list[float]]:
    populate(root, count)
    store = LocalStore(root)
    try:
        await store.page(None, PAGE)  # builds the index
        await anyio.sleep(LOCAL_SETTLE)
        await store.page(None, PAGE)  # the index's own files moved the mtime: one comparison of names, recorded
        return await _measure(store, deep, ids, repeat)
    finally:
        store.close()


def _rows(label: str, blob: list[float], local: list[float], digits: int) -> list[Row]:
    azurite, disk = Stats.of(blob), Stats.of(local)
    return [
        Row(
            label=f"Azurite: {label}",
            measured=azurite,
            baseline=disk,
            comparison=Stats.of([b / disk.median for b in blob]),
            unit="ms",
            comparison_unit="x local",
            target=f"< {AZURITE_TARGET_MS:.0f} ms, else INFO",
            status="PASS" if azurite.median < AZURITE_TARGET_MS else "INFO",
            digits=digits,
        ),
        Row(
            label=f"local: {label}",
            measured=disk,
            baseline=None,
            comparison=None,
            unit="ms",
            comparison_unit="",
            target=f"≤ {TARGET_MS:.0f} ms",
            status="PASS" if disk.median <= TARGET_MS else "FAIL",
            digits=digits,
        ),
    ]


async def run(repeat: int, count: int = 10_000) -> Figure:
    figure = Figure("blob_listing", f"7. Blob listing: {count:,} stored images in Azure Blob Storage (Azurite)")
    reason = missing()
    if reason is not None:
        return skipped(figure, reason)
    deep = min(DEEP_PAGE, max(2, count // PAGE // 2))
    ids = [image_id(n * count // (repeat * 10)) for n in range(repeat * 10)]
    try:
        with azurite_running() as azurite:
            took, blob = await _on_azurite(azurite, count, deep, ids, repeat)
    except AzuriteUnavailable as exc:
        return skipped(figure, str(exc))
    with tempfile.TemporaryDirectory(prefix="bench-blob-listing-") as tmp:
        local = await _on_disk(Path(tmp) / "images", count, deep, ids, repeat)
    figure.rows.append(
        Row(
            label=f"filling the container through put ({WRITERS} at once)",
            measured=Stats.of([took]),
            baseline=None,
            comparison=None,
            unit="s",
            comparison_unit="",
            target="—",
            status="INFO",
            digits=1,
        )
    )
    for key, label, digits in (
        ("first", f"first page ({PAGE} of {count:,})", 2),
        ("deep", f"deep page (page {deep}, after {(deep - 1) * PAGE:,})", 2),
        ("get", "lookup by id", 3),
    ):
        figure.rows.extend(_rows(label, blob[key], local[key], digits))
    figure.notes.append(
        f"filled {count:,} images (record + 4-byte image each, 2 Put Blob) in {took:.1f} s: {count / took:.0f} images/s"
    )
    figure.notes.append(
        f"baseline: LocalStore over a temporary directory with the same {count:,} ids (written as figure 6 does, "
        "index built before timing); its first page includes the sync every listing starts with"
    )
    figure.notes.append(
        f"lookups: {len(ids)} ids spread over the images; Azurite is a loopback emulator, not Azure: its rows pass "
        f"under {AZURITE_TARGET_MS:.0f} ms and are INFO above, never FAIL"
    )
    return figure
