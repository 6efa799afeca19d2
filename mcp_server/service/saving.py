"""Storing a finished image with its provenance, and rendering the previews a client is shown."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.to_thread

from mcp_server.foundry.responses import ExtractedImage
from mcp_server.images.base import Claim, ImageStore, StoreWriteError
from mcp_server.images.held import HeldImage, HeldImages
from mcp_server.images.partials import PARTIAL_PREVIEW_SIDE, PartialPreviews
from mcp_server.images.preview import Preview, inspect_image, make_preview
from mcp_server.images.records import ImageRecord, new_record

logger = logging.getLogger(__name__)

PREVIEW_LIMITER: Final = anyio.CapacityLimiter(2)
"""Previews decode whole images: a few at a time keeps memory flat under concurrency, at no cost in
throughput since the work is CPU-bound."""

PROVENANCE_KEYS: Final = ("kind", "prompt", "options", "agent_name", "agent_version", "inputs", "parent")
"""What an in-flight record keeps of a call's provenance, to store with its image later."""


@dataclass(frozen=True)
class Saved:
    record: ImageRecord
    unsaved: str | None = None
    """Why the image is only held in memory (the disk refused it), or None when it is on disk."""


async def store_image(
    image: ExtractedImage, provenance: dict[str, Any], store: ImageStore, claim: Claim | None, held: HeldImages
) -> Saved:
    """Store the image exactly once, under the id its in-flight record fixed, and settle that record.

    When the store refuses, the image is held in memory (readable, written later) rather than lost."""
    info = await anyio.to_thread.run_sync(inspect_image, image.data)
    metadata = {**provenance, "revised_prompt": image.call.revised_prompt, "response_id": image.response_id}
    record = new_record(
        image.data,
        output_format=info.output_format,
        width=info.width,
        height=info.height,
        metadata=metadata,
        image_id=claim.record.image_id if claim else None,
    )
    try:
        record = await store.put(record, image.data)
    except StoreWriteError as exc:
        held.hold(HeldImage(store, record, image.data, claim, exc.reason))
        return Saved(record, unsaved=exc.reason)
    if claim is not None:
        with anyio.CancelScope(shield=True):  # stored: settle its record even if the caller is going away
            await claim.finish()
    return Saved(record)


async def preview_of(data: bytes) -> Preview:
    return await anyio.to_thread.run_sync(make_preview, data, limiter=PREVIEW_LIMITER)


async def render_partial(partials: PartialPreviews, uri: str, b64: str) -> None:
    """Render a streamed partial image into the slot reserved at `uri`; a damaged one leaves it empty."""
    try:
        data = base64.b64decode(b64)
        preview: Preview | None = await anyio.to_thread.run_sync(
            make_preview, data, PARTIAL_PREVIEW_SIDE, limiter=PREVIEW_LIMITER
        )
    except (ValueError, OSError) as exc:  # a damaged partial must not fail the generation
        logger.warning("Could not render partial image %s: %s", uri, exc)
        preview = None
    partials.fill(uri, preview)
