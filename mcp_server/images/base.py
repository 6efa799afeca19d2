"""What any image store offers the rest of the server: the local directory (`local.py`) and Azure Blob Storage
(`blob.py`, an optional extra) both implement these protocols, and nothing above `images/` knows which it has.

An image store keeps, per principal, the exact bytes of each image with its `ImageRecord`, lists them newest
first a page at a time, and keeps the in-flight records of generations not yet stored (`InFlightStore`), each
claimed by exactly one live process or replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from mcp_server.images.records import ImageRecord, InFlightRecord

PAGE_SIZE: Final = 100
"""The most records one `resources/list` page holds."""


@dataclass(frozen=True)
class Page:
    records: list[ImageRecord]
    next_cursor: str | None
    """Opaque; None on the last page. A cursor stays valid while images are added: nothing is skipped or
    repeated across the pages of one listing."""


class StoreWriteError(Exception):
    """The store refused a write. `reason` says why in a few words ("no space left on the device", "the
    file system is read-only", "permission denied", "the storage account refused: ..."), and `transient`
    whether writing again later may succeed (a full disk may empty; a missing container will not appear)."""

    def __init__(self, reason: str, *, transient: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Claim(Protocol):
    """An in-flight record owned by this process until `finish`, `release` or `abandon`."""

    @property
    def record(self) -> InFlightRecord: ...

    @property
    def held(self) -> bool:
        """Whether this process still owns the record."""
        ...

    async def update(self, **changes: Any) -> None:
        """Change the record and save it; a store that refuses now only costs the change (logged)."""

    async def finish(self) -> None:
        """The generation is settled (stored, or ended without an image): remove the record."""

    async def release(self) -> None:
        """Stop owning the record without settling it; another process (or a later start) takes it over."""

    async def abandon(self) -> None:
        """Give up on the record for good, keeping it aside for a person to look at."""


class InFlightStore(Protocol):
    async def begin(self, record: InFlightRecord) -> Claim:
        """Record a generation about to be sent, owned by this process. Raises `StoreWriteError` when the store
        refuses: the caller must then not send the create."""
        ...

    async def orphans(self) -> list[Claim]:
        """Claim every record no live owner holds (its owner died, or released it)."""
        ...

    async def records(self) -> list[InFlightRecord]:
        """Every record, owned or not (to look at, not to act on)."""
        ...


class ImageStore(Protocol):
    """One principal's images."""

    @property
    def label(self) -> str:
        """Where the images are, for messages: a directory, or `container/prefix` on a storage account."""
        ...

    @property
    def key(self) -> str:
        """Identifies the store among all stores of the process (for images held in memory)."""
        ...

    @property
    def inflight(self) -> InFlightStore: ...

    @property
    def directory(self) -> Path | None:
        """The directory the images are in on this machine (edit inputs may name files there), or None."""
        ...

    def path_of(self, record: ImageRecord) -> Path | None:
        """The file of a stored image on this machine, or None when it lives elsewhere (Blob Storage)."""
        ...

    async def get(self, image_id: str) -> ImageRecord | None:
        """The record of a stored image, or None (also for an id that is not an image id)."""
        ...

    async def read(self, record: ImageRecord) -> bytes:
        """The exact bytes stored for `record`."""
        ...

    async def put(self, record: ImageRecord, data: bytes) -> ImageRecord:
        """Store the bytes, then the record that makes them visible; an image already stored under the same id
        is returned as it is (storing twice is harmless). Raises `StoreWriteError`."""
        ...

    async def page(self, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
        """Stored images, newest first, `limit` at most, after `cursor`. Raises ValueError for a cursor this
        store did not make."""
        ...

    async def check_room(self, needed: int) -> None:
        """Raise `StorageError` (naming the store and the shortfall) when it cannot take `needed` more bytes."""
        ...
