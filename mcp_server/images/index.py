"""Placeholder index (replaced by the SQLite index): lists by parsing every sidecar, keyset cursors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from mcp_server.images.records import IMAGE_ID_PATTERN, ImageRecord
from mcp_server.images.store import DiskFiles


def encode_cursor(last: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": 1, "after": last}).encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        last = body["after"] if body.get("v") == 1 else None
    except (ValueError, TypeError, KeyError, AttributeError):
        last = None
    if not isinstance(last, str) or not IMAGE_ID_PATTERN.match(last):
        raise ValueError("not a cursor of this store")
    return last


class ImageIndex:
    def __init__(self, root: Path) -> None:
        self._files = DiskFiles(root)

    def add(self, record: ImageRecord) -> None:
        return None

    def sync(self) -> None:
        return None

    def get(self, image_id: str) -> ImageRecord | None:
        return self._files.get(image_id)

    def page(self, cursor: str | None, limit: int) -> tuple[list[ImageRecord], str | None]:
        records = self._files.records()
        if cursor is not None:
            last = decode_cursor(cursor)
            records = [r for r in records if r.image_id < last]
        page = records[:limit]
        return page, encode_cursor(page[-1].image_id) if len(records) > limit else None

    def close(self) -> None:
        return None
