from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from mcp_server.errors import UnexpectedResponseError
from mcp_server.images.preview import PREVIEW_BUDGET_BYTES, PREVIEW_MAX_SIDE, inspect_image, make_preview


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noisy(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


def test_preview_of_a_large_noisy_png_is_small_jpeg_with_the_aspect_ratio_kept() -> None:
    data = encoded(noisy((1536, 1024)), "PNG")
    preview = make_preview(data)
    assert preview.mime_type == "image/jpeg"
    assert len(preview.data) <= PREVIEW_BUDGET_BYTES
    assert max(preview.width, preview.height) <= PREVIEW_MAX_SIDE
    assert abs(preview.width / preview.height - 1.5) < 0.02
    assert Image.open(io.BytesIO(preview.data)).format == "JPEG"


def test_preview_keeps_transparency_as_png() -> None:
    image = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    preview = make_preview(encoded(image, "PNG"))
    assert preview.mime_type == "image/png"
    assert Image.open(io.BytesIO(preview.data)).getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_preview_shrinks_until_it_fits_a_tight_budget() -> None:
    preview = make_preview(encoded(noisy((1024, 1024)), "PNG"), budget=20_000)
    assert len(preview.data) <= 20_000


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_inspect_reports_format_and_size(fmt: str, name: str) -> None:
    info = inspect_image(encoded(Image.new("RGB", (30, 20)), fmt))
    assert (info.output_format, info.width, info.height) == (name, 30, 20)


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(Image.new("RGB", (4, 4)), "GIF")])
def test_inspect_refuses_what_is_not_a_png_jpeg_or_webp(data: bytes) -> None:
    with pytest.raises(UnexpectedResponseError):
        inspect_image(data)
