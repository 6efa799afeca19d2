"""The image store: each image and its metadata on disk, written atomically, surviving restarts.

Layout: `<root>/<image_id>.<ext>` holds the exact bytes the service returned and
`<root>/<image_id>.json` its metadata. The metadata is written last, so an image without
metadata (a crash mid-save) is never listed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

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


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, record: ImageRecord) -> Path:
        return self.root / record.file_name

    def save(
        self,
        data: bytes,
        *,
        output_format: str,
        width: int,
        height: int,
        metadata: dict[str, Any],
        image_id: str | None = None,
    ) -> ImageRecord:
        """Store the exact bytes and their metadata; blocking, so call it from a worker thread.

        With `image_id` (fixed when the generation was recorded in flight), saving again is harmless: an
        image already stored under that id is returned as it is, and a save a crash cut short is redone."""
        record = new_record(
            data, output_format=output_format, width=width, height=height, metadata=metadata, image_id=image_id
        )
        return self.put(record, data)

    def put(self, record: ImageRecord, data: bytes) -> ImageRecord:
        """Store `record` and its bytes, unless an image is already stored under its id (then that one)."""
        existing = self.get(record.image_id)
        if existing is not None:
            return existing
        self.write(record, data)
        return record

    def write(self, record: ImageRecord, data: bytes) -> None:
        """Write the bytes, then the metadata that makes them visible (raises OSError when the disk refuses)."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path_of(record), data)
        write_atomic(self.root / f"{record.image_id}.json", record.model_dump_json(indent=2).encode())

    def get(self, image_id: str) -> ImageRecord | None:
        if not IMAGE_ID_PATTERN.match(image_id):
            return None  # also keeps hostile ids ("../x") away from the file system
        return self._load(self.root / f"{image_id}.json")

    def read_bytes(self, record: ImageRecord) -> bytes:
        return self.path_of(record).read_bytes()

    def records(self) -> list[ImageRecord]:
        """Every complete image, newest first."""
        if not self.root.is_dir():
            return []
        records = [r for p in self.root.glob("img-*.json") if (r := self._load(p)) is not None]
        return sorted(records, key=lambda r: r.image_id, reverse=True)

    def _load(self, meta_path: Path) -> ImageRecord | None:
        try:
            record = ImageRecord.model_validate(json.loads(meta_path.read_bytes()))
        except (OSError, ValueError, ValidationError):
            return None
        expected_name = f"{record.image_id}.{EXTENSIONS.get(record.output_format, '')}"
        if not IMAGE_ID_PATTERN.match(record.image_id) or record.file_name != expected_name:
            return None
        if not self.path_of(record).is_file():
            return None
        return record
