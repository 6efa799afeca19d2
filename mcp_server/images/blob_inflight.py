"""Generations in flight in Azure Blob Storage, each owned by exactly one live replica through a blob lease.

A record is `<prefix>/inflight/<key>.json`, created (If-None-Match: *) and leased at once by `begin`. The
owner renews the lease every `LeaseTiming.renew_every` seconds from a task the claim owns; a replica that
dies stops renewing, and its lease expires within `LeaseTiming.seconds`. `orphans` tries to acquire the
lease of every record: the service grants it only where no lease is held (never leased, released, expired
or broken), to exactly one of the replicas asking, which then reads the record again. Writes and deletes
of a record carry the lease id, so a replica that lost its lease cannot touch the record any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient
from pydantic import ValidationError

from mcp_server.images.base import Claim, StoreWriteError
from mcp_server.images.blob_access import BlobAccess, create_blob, gather_limited, json_settings
from mcp_server.images.blob_errors import classify, error_code, is_container_missing, is_lease_lost, read_error
from mcp_server.images.blob_names import abandoned_name, inflight_folder, inflight_name, key_of
from mcp_server.images.records import InFlightRecord

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient

logger = logging.getLogger(__name__)


def _parse(data: bytes, key: str) -> InFlightRecord | None:
    try:
        record = InFlightRecord.model_validate_json(data)
    except (ValidationError, ValueError):
        return None
    return record if record.key == key else None


class BlobClaim:
    """An in-flight record whose lease this process holds, renewed in the background until `finish`, `release`
    or `abandon` (or until the lease is lost)."""

    def __init__(
        self, access: BlobAccess, prefix: str, blob: BlobClient, lease: BlobLeaseClient, record: InFlightRecord
    ) -> None:
        self._access = access
        self._prefix = prefix
        self._blob = blob
        self._lease = lease
        self._record = record
        self._open = True
        self._renewed_at = access.timing.clock()
        self._renewal = asyncio.create_task(self._keep(), name=f"lease of in-flight record {record.key}")
        access.claims.add(self)

    @property
    def record(self) -> InFlightRecord:
        return self._record

    @property
    def held(self) -> bool:
        timing = self._access.timing
        return self._open and timing.clock() - self._renewed_at < timing.seconds

    @property
    def name(self) -> str:
        return str(self._blob.blob_name)

    async def update(self, **changes: Any) -> None:
        self._record = self._record.model_copy(update=changes)
        body = self._record.model_dump_json(indent=2).encode()
        try:
            await self._blob.upload_blob(body, overwrite=True, lease=self._lease, content_settings=json_settings())
        except AzureError as exc:
            self._note_failure(exc, "update")

    async def finish(self) -> None:
        if await self._stop():
            await self._delete()

    async def release(self) -> None:
        if not await self._stop():
            return
        try:
            await self._lease.release()
        except AzureError as exc:
            logger.info("Could not release the lease of %s (%s); it expires by itself", self.name, error_code(exc))

    async def abandon(self) -> None:
        if not await self._stop():
            return
        aside = self._access.container.get_blob_client(abandoned_name(self._prefix, self._record.key))
        body = self._record.model_dump_json(indent=2).encode()
        try:
            await self._access.write(lambda: aside.upload_blob(body, overwrite=True, content_settings=json_settings()))
        except StoreWriteError as exc:
            logger.warning("Could not keep %s aside (%s); removing it", self.name, exc.reason)
        await self._delete()

    async def _delete(self) -> None:
        try:
            await self._blob.delete_blob(lease=self._lease)
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            self._note_failure(exc, "remove")

    def _note_failure(self, exc: AzureError, action: str) -> None:
        if is_lease_lost(exc):
            self._open = False
            logger.warning("Could not %s %s: its lease was lost (%s)", action, self.name, error_code(exc))
        else:
            logger.warning("Could not %s %s: %s", action, self.name, classify(exc, self._access.name).reason)

    async def _stop(self) -> bool:
        """Stop renewing; False when the claim was already settled here (finish, release or abandon)."""
        if self not in self._access.claims:
            return False
        self._access.claims.discard(self)
        self._open = False
        self._renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewal
        return True

    async def _keep(self) -> None:
        """Renew the lease every `renew_every` seconds; give up when the lease is lost, or when renewals failed
        for as long as a lease lasts (another replica may hold it by then)."""
        timing = self._access.timing
        while self._open:
            await timing.sleep(timing.renew_every)
            try:
                await self._lease.renew()
            except AzureError as exc:
                if is_lease_lost(exc):
                    self._open = False
                    logger.warning("Lost the lease of %s (%s); another replica may take it", self.name, error_code(exc))
                    return
                logger.warning("Could not renew the lease of %s: %s", self.name, classify(exc, "").reason)
                if timing.clock() - self._renewed_at >= timing.seconds:
                    self._open = False
                    logger.warning("The lease of %s has expired; another replica may take it", self.name)
                    return
            else:
                self._renewed_at = timing.clock()


class BlobInFlight:
    """The in-flight records of one principal prefix."""

    def __init__(self, access: BlobAccess, prefix: str) -> None:
        self._access = access
        self._prefix = prefix

    async def begin(self, record: InFlightRecord) -> BlobClaim:
        blob = self._access.container.get_blob_client(inflight_name(self._prefix, record.key))
        body = record.model_dump_json(indent=2).encode()
        created = await self._access.write(lambda: create_blob(blob, body, json_settings()))
        lease = BlobLeaseClient(blob)
        try:
            await lease.acquire(lease_duration=self._access.timing.seconds)
        except AzureError as exc:
            if created:
                with contextlib.suppress(AzureError):
                    await blob.delete_blob()
            if isinstance(exc, ResourceExistsError):
                raise StoreWriteError(f"another process holds the in-flight record {record.key}") from exc
            raise classify(exc, self._access.name) from exc
        claim = BlobClaim(self._access, self._prefix, blob, lease, record)
        if not created:  # a create the service did but whose answer was lost, retried: make it ours
            await claim.update()
        return claim

    async def orphans(self) -> list[Claim]:
        try:
            names = await self._names()
        except AzureError as exc:
            raise classify(exc, self._access.name) from exc
        claims = await gather_limited(names, self._try_claim)
        return [claim for claim in claims if claim is not None]

    async def records(self) -> list[InFlightRecord]:
        try:
            names = await self._names()
        except AzureError as exc:
            raise read_error(exc, self._access.name) from exc

        async def read(name: str) -> InFlightRecord | None:
            key = key_of(name)
            data = await self._access.download(self._access.container.get_blob_client(name))
            return None if data is None or key is None else _parse(data, key)

        return [record for record in await gather_limited(names, read) if record is not None]

    async def _names(self) -> list[str]:
        pages = self._access.container.list_blobs(name_starts_with=inflight_folder(self._prefix))
        try:
            return [str(blob.name) async for blob in pages if key_of(str(blob.name)) is not None]
        except AzureError as exc:
            if is_container_missing(exc):
                return []
            raise

    async def _try_claim(self, name: str) -> BlobClaim | None:
        """Own the record `name` if no live process does: acquire its lease, then read it again."""
        key = key_of(name)
        blob = self._access.container.get_blob_client(name)
        lease = BlobLeaseClient(blob)
        try:
            await lease.acquire(lease_duration=self._access.timing.seconds)
        except (ResourceExistsError, ResourceNotFoundError):
            return None  # a live owner holds it, or it was settled meanwhile
        except AzureError as exc:
            logger.warning("Could not claim %s: %s", name, classify(exc, self._access.name).reason)
            return None
        try:
            data = await self._access.download(blob)
        except OSError as exc:
            logger.warning("Could not read %s: %s", name, exc)
            data = None
        record = None if data is None or key is None else _parse(data, key)
        if record is None:
            logger.warning("The in-flight record %s is unreadable; left for a person to look at", name)
            with contextlib.suppress(AzureError):
                await lease.release()
            return None
        return BlobClaim(self._access, self._prefix, blob, lease, record)
