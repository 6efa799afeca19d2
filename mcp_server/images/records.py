"""The records of the image stores: what is known of a stored image (`ImageRecord`), of a generation in flight
(`InFlightRecord`), and the ids and URIs that name them. Shared by every store implementation."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from mcp_server.protocol import MIME_TYPES

URI_SCHEME: Final = "foundry-image"
URI_PREFIX: Final = f"{URI_SCHEME}://images/"
URI_TEMPLATE: Final = URI_PREFIX + "{image_id}"
IMAGE_ID_PATTERN: Final = re.compile(r"^img-\d{8}-\d{6}-[0-9a-f]{8}$")
RESPONSE_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
EXTENSIONS: Final = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class ImageRecord(BaseModel):
    """What the store knows about one image; saved as its `.json` file."""

    model_config = ConfigDict(extra="allow")

    image_id: str
    file_name: str
    mime_type: str
    output_format: str
    width: int
    height: int
    bytes: int
    created_at: str
    prompt: str | None = None
    revised_prompt: str | None = None
    options: dict[str, Any] = {}
    response_id: str | None = None
    agent_name: str | None = None
    agent_version: str | None = None

    @property
    def uri(self) -> str:
        return URI_PREFIX + self.image_id


def new_image_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"img-{stamp}-{secrets.token_hex(4)}"


def image_id_from_uri(uri: str) -> str | None:
    if not uri.startswith(URI_PREFIX):
        return None
    image_id = uri.removeprefix(URI_PREFIX)
    return image_id if IMAGE_ID_PATTERN.match(image_id) else None


def new_record(
    data: bytes,
    *,
    output_format: str,
    width: int,
    height: int,
    metadata: dict[str, Any],
    image_id: str | None = None,
) -> ImageRecord:
    """The record of an image about to be stored (under `image_id`, or a new id)."""
    image_id = image_id or new_image_id()
    return ImageRecord(
        image_id=image_id,
        file_name=f"{image_id}.{EXTENSIONS[output_format]}",
        mime_type=MIME_TYPES[output_format],
        output_format=output_format,
        width=width,
        height=height,
        bytes=len(data),
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        **metadata,
    )


KEY_PATTERN: Final = RESPONSE_ID_PATTERN
"""In-flight record keys: request tags (uuid hex), or the response ids older records were named by."""


class InFlightRecord(BaseModel):
    """One generation the service may be making; saved as `<key>.json`."""

    model_config = ConfigDict(extra="ignore")

    key: str
    """The file name stem: the request tag (records written before the claim layout used the response id)."""
    tag: str | None = None
    image_id: str | None = None
    """The id the image is stored under: fixed in advance, so that storing it twice is impossible."""
    response_id: str | None = None
    agent_name: str | None = None
    """The agent the create named, to look the response up by tag (None for a direct call)."""
    recorded_at: str = ""
    attempts: int = 0
    """Recoveries that failed for a reason that may pass (the service unreachable)."""
    provenance: dict[str, Any] = {}


def new_inflight_record(
    *, tag: str, image_id: str, agent_name: str | None, provenance: dict[str, Any]
) -> InFlightRecord:
    return InFlightRecord(
        key=tag,
        tag=tag,
        image_id=image_id,
        agent_name=agent_name,
        recorded_at=datetime.now(UTC).isoformat(),
        provenance=provenance,
    )
