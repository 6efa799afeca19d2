"""Storing a finished image with its provenance, and rendering the previews a client is shown."""

from __future__ import annotations

import base64
import logging
from typing import Any, Final

import anyio
import anyio.to_thread

from mcp_server.foundry.responses import ExtractedImage
from mcp_server.images.partials import PARTIAL_PREVIEW_SIDE, PartialPreviews
from mcp_server.images.preview import Preview, inspect_image, make_preview
from mcp_server.images.store import ImageRecord, ImageStore

logger = logging.getLogger(__name__)

PREVIEW_LIMITER: Final = anyio.CapacityLimiter(2)
"""Previews decode whole images: a few at a time keeps memory flat under concurrency, at no cost in
throughput since the work is CPU-bound."""

PROVENANCE_KEYS: Final = ("kind", "prompt", "options", "agent_name", "agent_version", "inputs", "parent")
"""What an in-flight record keeps of a call's provenance, to store with its image later."""


def save_image(image: ExtractedImage, provenance: dict[str, Any], store: ImageStore) -> ImageRecord:
    """Store the image with its provenance and drop its in-flight record; blocking, run it in a worker thread."""
    info = inspect_image(image.data)
    record = store.save(
        image.data,
        output_format=info.output_format,
        width=info.width,
        height=info.height,
        metadata={**provenance, "revised_prompt": image.call.revised_prompt, "response_id": image.response_id},
    )
    store.drop_pending(image.response_id)
    return record


async def store_image(image: ExtractedImage, provenance: dict[str, Any], store: ImageStore) -> ImageRecord:
    return await anyio.to_thread.run_sync(save_image, image, provenance, store)


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
