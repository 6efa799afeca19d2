"""One principal's images in Azure Blob Storage: the `ImageStore` of `BlobBackend.store_for(prefix)`.

The names are in `blob_names`: bytes first, then the record whose existence makes the image visible, both
created only if absent (`If-None-Match: *`), so storing twice returns the image already stored and a
half-written image is never listed. A page is one List Blobs call: the service's continuation token,
wrapped with a version and the store it belongs to, is the cursor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from azure.core.exceptions import AzureError
from azure.storage.blob import ContentSettings

from mcp_server.images.base import PAGE_SIZE, Page, StoreWriteError
from mcp_server.images.blob_access import BlobAccess, create_blob, gather_limited, json_settings
from mcp_server.images.blob_errors import is_container_missing, read_error
from mcp_server.images.blob_inflight import BlobInFlight
from mcp_server.images.blob_names import (
    bytes_name,
    check_prefix,
    decode_cursor,
    encode_cursor,
    image_id_of,
    parse_record,
    record_from_metadata,
    record_metadata,
    record_name,
    records_folder,
    scope_of,
    valid_record,
)
from mcp_server.images.records import IMAGE_ID_PATTERN, ImageRecord

if TYPE_CHECKING:
    from azure.core.async_paging import AsyncPageIterator
    from azure.storage.blob import BlobProperties
    from azure.storage.blob.aio import BlobClient

logger = logging.getLogger(__name__)

MAX_PAGE: Final = 5000
"""The most blobs one List Blobs call returns."""


class BlobImageStore:
    """The images under `<prefix>/` of the backend's container."""

    def __init__(self, access: BlobAccess, prefix: str) -> None:
        self._access = access
        self._prefix = check_prefix(prefix)
        self._inflight = BlobInFlight(access, prefix)
        self._scope = scope_of(self.key)

    @property
    def label(self) -> str:
        return f"{self._access.url}/{self._prefix}"

    @property
    def key(self) -> str:
        return f"azure-blob:{self._access.url}/{self._prefix}"

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def inflight(self) -> BlobInFlight:
        return self._inflight

    @property
    def directory(self) -> Path | None:
        return None  # nothing of this store is a file on this machine

    def path_of(self, record: ImageRecord) -> Path | None:
        return None

    async def check_room(self, needed: int) -> None:
        """A storage account has no practical limit to check in advance."""

    async def get(self, image_id: str) -> ImageRecord | None:
        if not IMAGE_ID_PATTERN.match(image_id):
            return None
        data = await self._access.download(self._blob(record_name(self._prefix, image_id)))
        return None if data is None else parse_record(data, image_id)

    async def read(self, record: ImageRecord) -> bytes:
        data = await self._access.download(self._blob(bytes_name(self._prefix, record)))
        if data is None:
            raise FileNotFoundError(f"{self.label} has no bytes for {record.image_id}")
        return data

    async def put(self, record: ImageRecord, data: bytes) -> ImageRecord:
        if not valid_record(record):
            raise ValueError(f"not a record this store can keep: {record.image_id!r}, {record.file_name!r}")
        image = self._blob(bytes_name(self._prefix, record))
        settings = ContentSettings(content_type=record.mime_type)
        if not await self._access.write(lambda: create_blob(image, data, settings)):
            existing = await self._existing(record.image_id)
            if existing is not None:
                return existing
            # Bytes without a record: a store that was cut short (or is under way elsewhere); write them again.
            await self._access.write(lambda: image.upload_blob(data, overwrite=True, content_settings=settings))
        body = record.model_dump_json(indent=2).encode()
        meta = self._blob(record_name(self._prefix, record.image_id))
        if not await self._access.write(lambda: create_blob(meta, body, json_settings(), record_metadata(body))):
            return await self._existing(record.image_id) or record
        return record

    async def page(self, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
        marker = None if cursor is None else decode_cursor(cursor, self._scope)
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}")
        listed, marker = await self._list(marker, limit)
        records = await self._records(listed)
        return Page(records, None if marker is None else encode_cursor(marker, self._scope))

    async def _list(self, marker: str | None, limit: int) -> tuple[list[BlobProperties], str | None]:
        """One page of record blobs after `marker`, and the marker of the next (None: the last page). A page the
        service returns empty with a marker (it may) is skipped."""
        listing = self._access.container.list_blobs(
            name_starts_with=records_folder(self._prefix), include=["metadata"], results_per_page=limit
        )
        pages = cast("AsyncPageIterator[BlobProperties]", listing.by_page(continuation_token=marker))
        listed: list[BlobProperties] = []
        try:
            async for page in pages:
                listed = [blob async for blob in page]
                if listed or not pages.continuation_token:
                    break
        except AzureError as exc:
            if is_container_missing(exc):
                return [], None  # nothing stored yet: the container is made at the first write
            raise read_error(exc, self._access.name) from exc
        next_marker = pages.continuation_token
        return listed, str(next_marker) if next_marker else None

    async def _records(self, listed: list[BlobProperties]) -> list[ImageRecord]:
        """The records of listed blobs, from their metadata, or (too large for it) read, in listing order."""

        async def record_of(blob: BlobProperties) -> ImageRecord | None:
            image_id = image_id_of(str(blob.name))
            if image_id is None:
                return None
            return record_from_metadata(blob.metadata, image_id) or await self.get(image_id)

        found = await gather_limited(listed, record_of)
        return [record for record in found if record is not None]

    async def _existing(self, image_id: str) -> ImageRecord | None:
        try:
            return await self.get(image_id)
        except OSError as exc:
            raise StoreWriteError(str(exc), transient=not isinstance(exc, PermissionError | FileNotFoundError)) from exc

    def _blob(self, name: str) -> BlobClient:
        return self._access.container.get_blob_client(name)
