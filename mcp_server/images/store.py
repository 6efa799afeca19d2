"""The image files on disk: each image and its metadata, written atomically, surviving restarts (blocking).

Layout: `<root>/<image_id>.<ext>` holds the exact bytes the service returned and
`<root>/<image_id>.json` its metadata. The metadata is written last, so an image without
metadata (a crash mid-save) is never listed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mcp_server.images.records import (
    EXTENSIONS,
    IMAGE_ID_PATTERN,
    ImageRecord,
    new_record,
)


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


def load_sidecar(root: Path, meta_path: Path) -> ImageRecord | None:
    """The record a sidecar (`<root>/<image_id>.json`) holds, or None unless it validates, names its image file
    after its id and format, and that file exists in `root`."""
    try:
        record = ImageRecord.model_validate(json.loads(meta_path.read_bytes()))
    except (OSError, ValueError, ValidationError):
        return None
    expected_name = f"{record.image_id}.{EXTENSIONS.get(record.output_format, '')}"
    if not IMAGE_ID_PATTERN.match(record.image_id) or record.file_name != expected_name:
        return None
    if not (root / record.file_name).is_file():
        return None
    return record


class DiskFiles:
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
        return load_sidecar(self.root, meta_path)
