"""Image checks and inline previews (Pillow, imported on first use).

The preview is what travels inline in a tool result, so it is sized for the message, never
the stored original: a downscaled JPEG, or PNG when the image has transparency, re-encoded
smaller until its base64 fits the budget.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from mcp_server.errors import UnexpectedResponseError
from mcp_server.protocol import PIL_FORMATS

PREVIEW_MAX_SIDE: Final = 512
PREVIEW_BUDGET_BYTES: Final = 256 * 1024
"""Raw preview bytes; base64 adds a third, so the whole tool result stays far below 1 MiB."""


@dataclass(frozen=True)
class ImageInfo:
    output_format: str
    width: int
    height: int


@dataclass(frozen=True)
class Preview:
    data: bytes
    mime_type: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    """Check that `data` is a complete PNG, JPEG or WebP image and report its format and size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = PIL_FORMATS.get(image.format or "")
            image.verify()
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnexpectedResponseError(f"Foundry returned image data that is not a readable image ({exc}).") from None
    if fmt is None:
        raise UnexpectedResponseError("Foundry returned an image in a format other than PNG, JPEG or WebP.")
    return ImageInfo(fmt, width, height)


def make_preview(data: bytes, max_side: int = PREVIEW_MAX_SIDE, budget: int = PREVIEW_BUDGET_BYTES) -> Preview:
    """A small rendition of `data` for inline display; blocking, so call it from a worker thread."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as source:
        source.draft("RGB", (max_side, max_side))  # JPEG decodes at reduced scale: much faster
        mode = "RGBA" if _has_alpha(source) else "RGB"
        image = source if source.mode == mode else source.convert(mode)
        side = max_side
        while True:
            scale = min(1.0, side / max(image.size))
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            # reducing_gap: Pillow first shrinks by an integer factor (cheap), then resamples the rest.
            thumb = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)
            buffer = io.BytesIO()
            if mode == "RGBA":
                thumb.save(buffer, format="PNG", compress_level=6)
                mime = "image/png"
            else:
                thumb.save(buffer, format="JPEG", quality=82, optimize=True)
                mime = "image/jpeg"
            if buffer.tell() <= budget or side <= 64:
                return Preview(buffer.getvalue(), mime, thumb.width, thumb.height)
            side = int(side * 0.75)


def _has_alpha(image: object) -> bool:
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode in ("RGBA", "LA", "PA"):
        return True
    return image.mode == "P" and "transparency" in image.info
