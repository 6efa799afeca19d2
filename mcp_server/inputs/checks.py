"""Pillow checks every input image passes before it goes upstream.

Only the header is trusted for the size checks, so a small file claiming a huge canvas is
refused before any pixel is decoded. Blocking (Pillow), so call these from a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from mcp_server.inputs.messages import refusal
from mcp_server.protocol import PIL_FORMATS

MAX_INPUT_BYTES: Final = 50 * 1024 * 1024
"""Every input must be smaller than this."""

MIN_SIDE: Final = 16
MAX_SIDE: Final = 16384
MAX_PIXELS: Final = 64 * 1000 * 1000

ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
FORMAT_HINT: Final = "Convert it to PNG (or JPEG/WebP), or pass a different image."


@dataclass(frozen=True)
class ImageFacts:
    """What the checks learned about an accepted image."""

    output_format: str
    width: int
    height: int
    has_alpha: bool


def check_image(data: bytes, label: str, reference: str, *, max_bytes: int = MAX_INPUT_BYTES) -> ImageFacts:
    """Refuse `data` unless it is a complete PNG, JPEG or WebP of sane size; blocking.

    Raises:
        InvalidInputError: naming `label` and what is wrong.
    """
    from PIL import Image, UnidentifiedImageError

    check_byte_size(len(data), label, reference, max_bytes=max_bytes)
    if not data:
        raise refusal(label, reference, "is empty (0 bytes).")
    try:
        with Image.open(io.BytesIO(data)) as image:
            format_name = image.format or "unknown"
            width, height = image.size
            mode, has_transparency = image.mode, "transparency" in image.info
        output_format = PIL_FORMATS.get(format_name)
        if output_format is None:
            raise refusal(
                label, reference, f"is a {format_name} image; only PNG, JPEG and WebP are accepted.", FORMAT_HINT
            )
        _check_dimensions(width, height, label, reference)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise refusal(
            label, reference, f"has far too many pixels (at most {MAX_PIXELS // 1_000_000} megapixels).", _SIZE_HINT
        ) from None
    except UnidentifiedImageError:
        raise refusal(label, reference, "is not an image (its bytes are not PNG, JPEG or WebP).", FORMAT_HINT) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        # Pillow reports truncated or corrupt files through any of these.
        raise refusal(label, reference, f"is not a complete, readable image ({_short(exc)}).", FORMAT_HINT) from None
    has_alpha = mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and has_transparency)
    return ImageFacts(output_format, width, height, has_alpha)


def check_byte_size(size: int, label: str, reference: str, *, max_bytes: int = MAX_INPUT_BYTES) -> None:
    """Refuse an input of `size` bytes or more than the cap allows (checked before reading when possible)."""
    if size >= max_bytes:
        raise refusal(
            label,
            reference,
            f"is {_mib(size)}; each input image must be smaller than {_mib(max_bytes)}.",
            "Downscale or compress the image (JPEG or WebP) first.",
        )


_SIZE_HINT: Final = (
    f"Use an image between {MIN_SIDE} and {MAX_SIDE} pixels per side and at most {MAX_PIXELS // 1_000_000} megapixels."
)


def _check_dimensions(width: int, height: int, label: str, reference: str) -> None:
    if min(width, height) < MIN_SIDE:
        raise refusal(
            label, reference, f"is {width}×{height} pixels; each side must be at least {MIN_SIDE}.", _SIZE_HINT
        )
    if max(width, height) > MAX_SIDE:
        raise refusal(
            label, reference, f"is {width}×{height} pixels; each side must be at most {MAX_SIDE}.", _SIZE_HINT
        )
    if width * height > MAX_PIXELS:
        raise refusal(
            label,
            reference,
            f"is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"at most {MAX_PIXELS // 1_000_000} megapixels are accepted.",
            _SIZE_HINT,
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 100 else text[:100] + "…"
