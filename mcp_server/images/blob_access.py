"""What the stores of one `BlobBackend` share: the container client, how writes meet a missing container, how
leases are timed, and the claims this process holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final, Protocol, TypeVar
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from mcp_server.images.blob_errors import (
    CONTAINER,
    CREDENTIALS,
    PERMISSION,
    ROLE_FIX,
    BlobStoreError,
    classify,
    is_container_missing,
    read_error,
)
from mcp_server.images.blob_timing import LeaseTiming

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient, ContainerClient

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

JSON: Final = "application/json"
PARALLEL_READS: Final = 16
"""Blobs read at once when a listing needs their bodies (records too large for metadata, in-flight records)."""


def json_settings() -> ContentSettings:
    return ContentSettings(content_type=JSON)


class Releasable(Protocol):
    async def release(self) -> None: ...


class BlobAccess:
    def __init__(self, container: ContainerClient, *, create_container: bool, timing: LeaseTiming) -> None:
        self.container = container
        self.create_container = create_container
        self.timing = timing
        self.claims: set[Releasable] = set()
        """The claims this process holds (released when the backend closes)."""

    @property
    def name(self) -> str:
        return str(self.container.container_name)

    @property
    def url(self) -> str:
        """The container's URL without a SAS token or user info: safe for messages."""
        parts = urlsplit(str(self.container.url))
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")

    async def write(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`, its failures as `BlobStoreError`; a missing container is created (when allowed) and `op` run
        again."""
        try:
            return await op()
        except AzureError as exc:
            if not (self.create_container and is_container_missing(exc)):
                raise classify(exc, self.name) from exc
        await self.create()
        try:
            return await op()
        except AzureError as exc:
            raise classify(exc, self.name) from exc

    async def read(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`, its failures as the `OSError` a file would raise."""
        try:
            return await op()
        except AzureError as exc:
            raise read_error(exc, self.name) from exc

    async def download(self, blob: BlobClient) -> bytes | None:
        """The blob's bytes, or None when it (or its container) does not exist; failures as `OSError`."""

        async def download() -> bytes | None:
            try:
                return bytes(await (await blob.download_blob()).readall())
            except ResourceNotFoundError:
                return None

        return await self.read(download)

    async def create(self) -> None:
        try:
            await self.container.create_container()
        except ResourceExistsError:
            return
        except AzureError as exc:
            error = classify(exc, self.name)
            if error.kind in (PERMISSION, CREDENTIALS):
                raise BlobStoreError(
                    f"the storage account has no container {self.name}, and this identity may not create it "
                    f"({error.reason}); create the container, or note that {ROLE_FIX}",
                    kind=CONTAINER,
                    transient=False,
                ) from exc
            raise error from exc
        logger.info("Created the container %s", self.url)


async def gather_limited(items: Iterable[T], fn: Callable[[T], Awaitable[R]], limit: int = PARALLEL_READS) -> list[R]:
    """`fn` of every item, at most `limit` at once, in the order of `items`."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with semaphore:
            return await fn(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def create_blob(
    blob: BlobClient, data: bytes, settings: ContentSettings, metadata: dict[str, str] | None = None
) -> bool:
    """Upload `data` unless the blob exists (If-None-Match: *); False when it did."""
    try:
        await blob.upload_blob(data, overwrite=False, content_settings=settings, metadata=metadata)
    except ResourceExistsError:
        return False
    return True
