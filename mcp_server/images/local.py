"""The local image store: a directory on this machine (`DiskFiles`), listed through its index, with in-flight
records claimed by OS file locks (`inflight`). The default store; every blocking call runs in a worker thread."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from mcp_server.images import inflight
from mcp_server.images.base import PAGE_SIZE, Claim, Page, StoreWriteError
from mcp_server.images.disk import check_free_space, reason_of
from mcp_server.images.index import ImageIndex
from mcp_server.images.records import ImageRecord, InFlightRecord
from mcp_server.images.store import DiskFiles

T = TypeVar("T")
logger = logging.getLogger(__name__)


async def _in_thread(work: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(work)


async def _writing(work: Callable[[], T]) -> T:
    """`work` in a worker thread, a refused write raised as `StoreWriteError`."""
    try:
        return await _in_thread(work)
    except OSError as exc:
        raise StoreWriteError(reason_of(exc)) from exc


class LocalClaim:
    """`inflight.Claim` (blocking) as the async `Claim` of the store protocols."""

    def __init__(self, claim: inflight.Claim) -> None:
        self._claim = claim

    @property
    def record(self) -> InFlightRecord:
        return self._claim.record

    @property
    def held(self) -> bool:
        return self._claim.held

    async def update(self, **changes: Any) -> None:
        await _in_thread(lambda: self._claim.update(**changes))

    async def finish(self) -> None:
        await _in_thread(self._claim.finish)

    async def release(self) -> None:
        await _in_thread(self._claim.release)

    async def abandon(self) -> None:
        await _in_thread(self._claim.abandon)


class LocalInFlight:
    def __init__(self, root: Path) -> None:
        self._records = inflight.InFlight(root)

    async def begin(self, record: InFlightRecord) -> Claim:
        return LocalClaim(await _writing(lambda: self._records.begin(record)))

    async def orphans(self) -> list[Claim]:
        return [LocalClaim(claim) for claim in await _in_thread(self._records.orphans)]

    async def records(self) -> list[InFlightRecord]:
        return await _in_thread(self._records.records)


class LocalStore:
    """One directory of images (one principal's, over HTTP)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = DiskFiles(root)
        self._inflight = LocalInFlight(root)
        self._index: ImageIndex | None = None

    @property
    def label(self) -> str:
        return str(self.root)

    @property
    def key(self) -> str:
        return f"local:{self.root}"

    @property
    def directory(self) -> Path | None:
        return self.root

    @property
    def inflight(self) -> LocalInFlight:
        return self._inflight

    def path_of(self, record: ImageRecord) -> Path | None:
        return self.files.path_of(record)

    async def get(self, image_id: str) -> ImageRecord | None:
        return await _in_thread(lambda: self.files.get(image_id))

    async def read(self, record: ImageRecord) -> bytes:
        return await _in_thread(lambda: self.files.read_bytes(record))

    async def put(self, record: ImageRecord, data: bytes) -> ImageRecord:
        stored = await _writing(lambda: self.files.put(record, data))
        try:
            await _in_thread(lambda: self._ensure_index().add(stored))
        except (sqlite3.Error, OSError) as exc:  # the sidecar is the truth: the next listing's sync adds it
            logger.warning("Could not add %s to the index of %s: %s", stored.image_id, self.root, exc)
        return stored

    async def page(self, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
        def work() -> Page:
            index = self._ensure_index()
            if cursor is None:
                index.sync()
            records, next_cursor = index.page(cursor, limit)
            return Page(records, next_cursor)

        return await _in_thread(work)

    async def check_room(self, needed: int) -> None:
        await _in_thread(lambda: check_free_space(self.root, needed))

    def _ensure_index(self) -> ImageIndex:
        if self._index is None:
            self._index = ImageIndex(self.root)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
