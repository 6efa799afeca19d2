"""How validated edit inputs travel to Foundry: inline data URLs, or uploads referenced by file id.

Threshold: an image up to 4 MiB goes inline as a data URL (5.6 MB of base64), and inline
images together stay under 12 MiB. Anything larger is uploaded once through the Files API
and referenced by `file_id`: the upload is binary (no base64 third on top), stays well clear
of the Responses API's 20,971,520-character limit per `image_url`, and keeps the JSON
request small enough for proxies and retries. Small inputs stay inline because an upload
costs an extra round trip and leaves a file in the project.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from mcp_server.inputs import ResolvedImage
from mcp_server.protocol import InputImage

INLINE_MAX_BYTES: Final = 4 * 1024 * 1024
INLINE_TOTAL_MAX_BYTES: Final = 12 * 1024 * 1024

SentAs = Literal["inline", "uploaded", "file_id", "previous_response"]
Uploader = Callable[[ResolvedImage], Awaitable[str]]


@dataclass(frozen=True)
class InputUsage:
    """How one input reached the service; reported back in the tool result."""

    label: str
    kind: str
    reference: str
    sent_as: SentAs
    file_id: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


def usage(image: ResolvedImage, sent_as: SentAs, file_id: str | None = None) -> InputUsage:
    return InputUsage(
        label=image.label,
        kind=image.kind,
        reference=image.reference,
        sent_as=sent_as,
        file_id=file_id or image.file_id,
        bytes=len(image.data) if image.data is not None else None,
        width=image.width,
        height=image.height,
    )


async def image_parts(
    images: Sequence[ResolvedImage], upload: Uploader
) -> tuple[list[dict[str, Any]], list[InputUsage]]:
    """`input_image` content parts for `images`, inline or uploaded by the rule above."""
    parts: list[dict[str, Any]] = []
    used: list[InputUsage] = []
    inline_total = 0
    for image in images:
        if image.data is None:
            parts.append(InputImage(file_id=image.file_id).to_wire())
            used.append(usage(image, "file_id"))
        elif len(image.data) <= INLINE_MAX_BYTES and inline_total + len(image.data) <= INLINE_TOTAL_MAX_BYTES:
            inline_total += len(image.data)
            parts.append(InputImage(image_url=image.data_url()).to_wire())
            used.append(usage(image, "inline"))
        else:
            file_id = await upload(image)
            parts.append(InputImage(file_id=file_id).to_wire())
            used.append(usage(image, "uploaded", file_id))
    return parts, used
