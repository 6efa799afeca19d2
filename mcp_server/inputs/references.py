"""Turning each `edit_image` input reference into validated image bytes, before any upstream call.

Accepted forms, tried in this order: a `foundry-image://` resource URI, a data URL, an https
URL, a `file:` URI or path, a Foundry file id (passed through), bare base64. Every refusal is
an `InvalidInputError` whose message starts with the input's label (`images[2]`, `mask`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from anyio.to_thread import run_sync

from mcp_server.images.base import ImageStore
from mcp_server.images.records import image_id_from_uri
from mcp_server.inputs.checks import MAX_INPUT_BYTES, ImageFacts, check_byte_size, check_image
from mcp_server.inputs.classify import Kind, classify, decode_base64, decoded_size
from mcp_server.inputs.fetch import UrlFetcher
from mcp_server.inputs.messages import refusal, shorten
from mcp_server.inputs.paths import PathSyntaxError, locate, read_confined, to_local_path
from mcp_server.protocol import MIME_TYPES

MAX_IMAGES: Final = 16
DATA_URL: Final = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)
DATA_URL_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp"})
FORMS_HINT: Final = (
    "Pass a foundry-image:// resource URI, a path or file:// URI the server can read, "
    "a data:image/png;base64,... URL, an https URL, a Foundry file id, or base64 image bytes."
)
MASK_HINT: Final = "the mask must be a PNG with an alpha channel; fully transparent pixels mark the area to edit."


@dataclass(frozen=True)
class ResolvedImage:
    """One input, checked: its exact bytes and what they are, or a Foundry file id passed through."""

    label: str
    reference: str
    kind: Kind
    data: bytes | None
    file_id: str | None
    output_format: str | None
    width: int | None
    height: int | None
    has_alpha: bool | None
    image_id: str | None
    path: Path | None

    @property
    def mime_type(self) -> str | None:
        return MIME_TYPES[self.output_format] if self.output_format else None

    def data_url(self) -> str:
        """The bytes as a `data:` URL. Raises ValueError for a file id, which has no bytes here."""
        if self.data is None or self.mime_type is None:
            raise ValueError(f"{self.label} is a file id and has no bytes to inline.")
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


class InputResolver:
    """Resolves references against the store, the readable directories, and the web (through `fetcher`)."""

    def __init__(
        self,
        *,
        store: ImageStore,
        allowed_dirs: Sequence[Path],
        fetcher: UrlFetcher,
        max_bytes: int = MAX_INPUT_BYTES,
    ) -> None:
        self._store = store
        self._allowed_dirs = tuple(allowed_dirs)
        self._fetcher = fetcher
        self._max_bytes = max_bytes

    async def resolve_all(
        self, images: Sequence[str], mask: str | None, roots: Sequence[Path] = ()
    ) -> tuple[list[ResolvedImage], ResolvedImage | None]:
        """Resolve `images` (labelled `images[i]`) and the optional `mask`, checking the mask against images[0]."""
        if not images:
            raise refusal("images", "[]", "give at least one image to edit.", FORMS_HINT)
        if len(images) > MAX_IMAGES:
            raise refusal("images", f"{len(images)} references", f"at most {MAX_IMAGES} images can be edited together.")
        resolved = [await self.resolve(reference, f"images[{i}]", roots) for i, reference in enumerate(images)]
        if mask is None:
            return resolved, None
        resolved_mask = await self.resolve(mask, "mask", roots)
        _check_mask(resolved_mask, resolved[0])
        return resolved, resolved_mask

    async def resolve(self, reference: str, label: str, roots: Sequence[Path] = ()) -> ResolvedImage:
        """One reference, checked; raises InvalidInputError naming `label` when it is refused."""
        text = reference.strip()
        if not text:
            raise refusal(label, reference, "is empty.", FORMS_HINT)
        kind = classify(text)
        if kind == "resource":
            return await self._resource(text, label)
        if kind == "data_url":
            return await self._checked(
                label, text, "data_url", await run_sync(_decode_data_url, text, label, self._max_bytes)
            )
        if kind == "url":
            return await self._checked(label, text, "url", await self._fetcher.fetch(text, label))
        if kind == "path":
            return await self._path(text, label, [*self._allowed_dirs, *roots])
        if kind == "file_id":
            return ResolvedImage(
                label=label,
                reference=text,
                kind="file_id",
                data=None,
                file_id=text,
                output_format=None,
                width=None,
                height=None,
                has_alpha=None,
                image_id=None,
                path=None,
            )
        if kind == "base64":
            check_byte_size(decoded_size(text), label, text, max_bytes=self._max_bytes)
            try:
                data = await run_sync(decode_base64, text)
            except binascii.Error:
                raise refusal(label, text, "looks like base64 but is not valid base64.", FORMS_HINT) from None
            return await self._checked(label, text, "base64", data)
        if kind == "other_url":
            raise refusal(label, text, "uses a URL scheme this server does not fetch; use an https URL.", FORMS_HINT)
        raise refusal(
            label,
            text,
            "is not a resource URI, path, file:// URI, data URL, https URL, file id or base64 image.",
            FORMS_HINT,
        )

    async def _resource(self, uri: str, label: str) -> ResolvedImage:
        image_id = image_id_from_uri(uri)
        record = await self._store.get(image_id) if image_id else None
        if record is None or image_id is None:
            raise refusal(label, uri, "no stored image with that URI; use resources/list.", FORMS_HINT)
        check_byte_size(record.bytes, label, uri, max_bytes=self._max_bytes)
        data = await self._store.read(record)
        facts = await run_sync(lambda: check_image(data, label, uri, max_bytes=self._max_bytes))
        return _resolved(label, uri, "resource", data, facts, image_id=image_id, path=self._store.path_of(record))

    async def _path(self, text: str, label: str, allowed_dirs: list[Path]) -> ResolvedImage:
        try:
            pure = to_local_path(text)
        except PathSyntaxError as exc:
            raise refusal(label, text, f"is not a usable path: {exc}", FORMS_HINT) from None
        real = await run_sync(locate, pure, label, text, allowed_dirs)
        return await self._read_and_check(real, label, text, "path", None)

    async def _read_and_check(
        self, real: Path, label: str, reference: str, kind: Kind, image_id: str | None
    ) -> ResolvedImage:
        def work() -> tuple[bytes, ImageFacts]:
            data = read_confined(real, label, reference, max_bytes=self._max_bytes)
            return data, check_image(data, label, reference, max_bytes=self._max_bytes)

        data, facts = await run_sync(work)
        return _resolved(label, reference, kind, data, facts, image_id=image_id, path=real)

    async def _checked(self, label: str, reference: str, kind: Kind, data: bytes) -> ResolvedImage:
        facts = await run_sync(lambda: check_image(data, label, reference, max_bytes=self._max_bytes))
        return _resolved(label, reference, kind, data, facts)


def _resolved(
    label: str,
    reference: str,
    kind: Kind,
    data: bytes,
    facts: ImageFacts,
    *,
    image_id: str | None = None,
    path: Path | None = None,
) -> ResolvedImage:
    return ResolvedImage(
        label=label,
        reference=shorten(reference),
        kind=kind,
        data=data,
        file_id=None,
        output_format=facts.output_format,
        width=facts.width,
        height=facts.height,
        has_alpha=facts.has_alpha,
        image_id=image_id,
        path=path,
    )


def _decode_data_url(text: str, label: str, max_bytes: int) -> bytes:
    match = DATA_URL.match(text)
    if match is None:
        raise refusal(label, text, "is not a valid data URL (expected data:image/png;base64,...).", FORMS_HINT)
    media_type = match.group(1).strip().lower()
    if media_type not in DATA_URL_TYPES:
        raise refusal(
            label, text, f"is a data URL of type '{media_type or 'none'}'; use image/png, image/jpeg or image/webp."
        )
    if "base64" not in (p.strip().lower() for p in match.group(2).split(";")):
        raise refusal(label, text, "is a data URL without ';base64'; encode the image as base64.", FORMS_HINT)
    payload = text[match.end() :]
    check_byte_size(decoded_size(payload), label, text, max_bytes=max_bytes)
    try:
        return decode_base64(payload)
    except binascii.Error:
        raise refusal(label, text, "is a data URL whose base64 payload is not valid base64.", FORMS_HINT) from None


def _check_mask(mask: ResolvedImage, first: ResolvedImage) -> None:
    if mask.kind == "file_id":
        return  # uploaded earlier: Foundry checks it
    if mask.output_format != "png" or not mask.has_alpha:
        what = f"a {(mask.output_format or 'unknown').upper()} image without an alpha channel"
        if mask.output_format == "png":
            what = "a PNG without an alpha channel"
        elif mask.has_alpha:
            what = f"a {(mask.output_format or 'unknown').upper()} image, not a PNG"
        raise refusal("mask", mask.reference, f"is {what}; {MASK_HINT}")
    if first.width is not None and (mask.width, mask.height) != (first.width, first.height):
        raise refusal(
            "mask",
            mask.reference,
            f"is {mask.width}×{mask.height} pixels but images[0] is {first.width}×{first.height}; "
            "the mask must have the same size as the first image.",
        )
