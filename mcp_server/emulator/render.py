"""Deterministic Pillow renderings that stand in for gpt-image output.

The picture depends only on the prompt, the resolved options and the input images, so the
same request always yields the same bytes and different prompts yield different pictures.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

_SHAPES = {"low": 3, "medium": 6, "high": 10}


@dataclass(frozen=True)
class RenderSpec:
    prompt: str
    width: int
    height: int
    quality: str  # resolved: low | medium | high
    output_format: str  # png | jpeg | webp
    compression: int
    transparent: bool
    partial_images: int = 0
    grain: int = 0
    """Strength (0-255) of deterministic film grain; real photographs compress to megabytes, flat
    synthetic pictures to kilobytes, and benchmarks of memory need the former."""


@dataclass(frozen=True)
class RenderResult:
    final: bytes
    partials: list[bytes]


def _seed(spec: RenderSpec) -> bytes:
    return hashlib.sha256(spec.prompt.encode()).digest()


def _palette(seed: bytes) -> list[tuple[int, int, int]]:
    return [(seed[i], seed[i + 1], seed[i + 2]) for i in range(0, 18, 3)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ValueError):  # Pillow built without FreeType only has the bitmap font
        return ImageFont.load_default()


def _caption(draw: ImageDraw.ImageDraw, spec: RenderSpec, colour: tuple[int, int, int]) -> None:
    words = " ".join(spec.prompt.split()[:5]) or "(empty prompt)"
    size = max(12, spec.height // 16)
    font = _font(size)
    x, y = spec.width // 16, spec.height - 2 * size
    shadow = tuple(255 - c for c in colour)
    draw.text((x + 2, y + 2), words, font=font, fill=(*shadow, 255))
    draw.text((x, y), words, font=font, fill=(*colour, 255))


def _shapes(draw: ImageDraw.ImageDraw, spec: RenderSpec, seed: bytes, palette: list[tuple[int, int, int]]) -> None:
    rng = random.Random(seed)
    w, h = spec.width, spec.height
    for i in range(_SHAPES.get(spec.quality, 6)):
        cx, cy = rng.randint(w // 5, 4 * w // 5), rng.randint(h // 5, 4 * h // 5)
        r = rng.randint(min(w, h) // 16, min(w, h) // 5)
        box = (cx - r, cy - r, cx + r, cy + r)
        colour = (*palette[(i + 2) % len(palette)], 255)
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)


def _generate(spec: RenderSpec) -> Image.Image:
    seed = _seed(spec)
    palette = _palette(seed)
    gradient = Image.linear_gradient("L").resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    if seed[20] % 2:
        gradient = gradient.transpose(Image.Transpose.ROTATE_90).resize((spec.width, spec.height))
    picture = ImageOps.colorize(gradient, palette[0], palette[1]).convert("RGBA")
    draw = ImageDraw.Draw(picture)
    _shapes(draw, spec, seed, palette)
    _caption(draw, spec, (255, 255, 255))
    if spec.transparent:
        # The "subject" is an ellipse; everything around it is fully transparent.
        alpha = Image.new("L", picture.size, 0)
        ImageDraw.Draw(alpha).ellipse(
            (spec.width // 8, spec.height // 8, 7 * spec.width // 8, 7 * spec.height // 8), fill=255
        )
        picture.putalpha(alpha)
    return picture


def _edit(spec: RenderSpec, inputs: list[Image.Image], mask: Image.Image | None) -> Image.Image:
    seed = _seed(spec)
    palette = _palette(seed)
    size = (spec.width, spec.height)
    base = ImageOps.fit(inputs[0].convert("RGBA"), size, Image.Resampling.BILINEAR)
    tint = Image.new("RGBA", size, (*palette[0], 255))
    edited = Image.blend(base, tint, 0.35)
    edited.putalpha(base.getchannel("A"))
    draw = ImageDraw.Draw(edited)
    for index, extra in enumerate(inputs[1:4]):
        thumb = ImageOps.fit(extra.convert("RGBA"), (spec.width // 5, spec.height // 5))
        edited.paste(thumb, (spec.width - (index + 1) * (thumb.width + 8), 8))
    _shapes(draw, RenderSpec(**{**spec.__dict__, "quality": "low"}), seed, palette)
    _caption(draw, spec, (255, 255, 255))
    if mask is not None:
        # Only pixels the mask marks as fully transparent may change, as with the real edit endpoint.
        alpha = ImageOps.fit(mask.convert("RGBA").getchannel("A"), size, Image.Resampling.NEAREST)
        editable = alpha.point(lambda a: 255 if a == 0 else 0)
        edited = Image.composite(edited, base, editable)
    if not spec.transparent:
        background = Image.new("RGBA", size, (255, 255, 255, 255))
        edited = Image.alpha_composite(background, edited)
    return edited


def encode(picture: Image.Image, spec: RenderSpec, *, fast: bool = False) -> bytes:
    out = io.BytesIO()
    fmt = spec.output_format.upper()
    # Partials only need to look coarse; a lower quality keeps them cheap to encode.
    quality = max(1, min(60 if fast else 100, spec.compression))
    if fmt == "JPEG":
        picture.convert("RGB").save(out, format=fmt, quality=quality)
    elif fmt == "WEBP":
        image = picture if spec.transparent else picture.convert("RGB")
        image.save(out, format=fmt, quality=quality, method=0)
    else:
        image = picture if spec.transparent else picture.convert("RGB")
        image.save(out, format=fmt, compress_level=1 if fast else 3)
    return out.getvalue()


def _grain(picture: Image.Image, spec: RenderSpec) -> Image.Image:
    noise_bytes = random.Random(_seed(spec)).randbytes(picture.width * picture.height * 3)
    noise = Image.frombytes("RGB", picture.size, noise_bytes).convert("RGBA")
    grained = Image.blend(picture, noise, min(spec.grain, 255) / 255)
    grained.putalpha(picture.getchannel("A"))
    return grained


def _partial(picture: Image.Image, index: int, total: int) -> Image.Image:
    # Earlier partials are coarser: downsample hard, then scale back up.
    factor = 2 ** (total - index + 2)
    small = picture.resize((max(1, picture.width // factor), max(1, picture.height // factor)), Image.Resampling.BOX)
    return small.resize(picture.size, Image.Resampling.NEAREST)


def render(spec: RenderSpec, inputs: list[Image.Image] | None = None, mask: Image.Image | None = None) -> RenderResult:
    picture = _edit(spec, inputs, mask) if inputs else _generate(spec)
    if not spec.transparent:
        picture = picture.convert("RGB").convert("RGBA")
    if spec.grain:
        picture = _grain(picture, spec)
    partials = [encode(_partial(picture, i, spec.partial_images), spec, fast=True) for i in range(spec.partial_images)]
    return RenderResult(final=encode(picture, spec), partials=partials)
