"""The doctor's check of a storage account: write, read, list and delete one small blob, as the server does."""

from __future__ import annotations

from azure.core.exceptions import AzureError

from mcp_server.images.blob_access import BlobAccess, create_blob
from mcp_server.images.blob_errors import REFUSED, BlobStoreError, classify

PROBE_DATA = b"foundry-image-mcp doctor probe\n"


async def probe(access: BlobAccess, name: str) -> str:
    """What was done, e.g. `wrote, read, listed and deleted doctor/probe-....txt`; `BlobStoreError` (its reason
    starting with the step) when a step fails."""
    from azure.storage.blob import ContentSettings

    blob = access.container.get_blob_client(name)
    try:
        await access.write(lambda: create_blob(blob, PROBE_DATA, ContentSettings(content_type="text/plain")))
    except BlobStoreError as exc:
        raise _at("write", exc) from exc
    failure: BlobStoreError | None = None
    try:
        data = await (await blob.download_blob()).readall()
        if data != PROBE_DATA:
            raise BlobStoreError("the blob read back differs from the one written", kind=REFUSED, transient=False)
        listed = [b.name async for b in access.container.list_blobs(name_starts_with=name)]
        if name not in listed:
            raise BlobStoreError("the blob written is not listed", kind=REFUSED, transient=False)
    except AzureError as exc:
        failure = _at("read or list", classify(exc, access.name))
    except BlobStoreError as exc:
        failure = _at("read or list", exc)
    try:
        await blob.delete_blob()
    except AzureError as exc:
        failure = failure or _at("delete", classify(exc, access.name))
    if failure is not None:
        raise failure
    return f"wrote, read, listed and deleted {name}"


def _at(step: str, error: BlobStoreError) -> BlobStoreError:
    return BlobStoreError(f"could not {step} a test blob: {error.reason}", kind=error.kind, transient=error.transient)
