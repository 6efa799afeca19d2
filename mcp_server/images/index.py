"""An index of one output directory's images in SQLite, so that a listing page or a lookup does not read every
sidecar.

`<root>/.index.sqlite3` (WAL mode; `indexdb.py`) holds one row per stored image: its id and its `ImageRecord` as
JSON. The image files and their sidecars (`<root>/<image_id>.<ext>` and `.json`) stay the truth: the index is
rebuilt from the sidecars when it is missing, damaged or of another schema version, and brought up to date when
images were added or removed behind its back, by another process, another version of the server or by hand
(`sync`, `indexscan.py`): the directory's mtime is compared with the one recorded when the index last matched the
directory (one `stat` when nothing changed), and only when they differ are the sidecars' names compared with the
rows, and only the new sidecars read.

Listing is newest first, by id (ids start with their UTC time), a page at a time after a cursor that names the
last id listed, so that images stored meanwhile are never skipped or repeated. The memory used does not depend on
the number of images stored.

Blocking (SQLite, the file system): call from worker threads. Several threads, and several processes, may share
one index; each operation uses a connection of its own.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from pydantic import ValidationError

from mcp_server.images.indexdb import INDEX_NAME, Connections, damaged, transaction
from mcp_server.images.indexscan import reconcile, record_mtime, recorded_mtime, settled
from mcp_server.images.records import IMAGE_ID_PATTERN, ImageRecord
from mcp_server.images.store import load_sidecar

__all__ = ["INDEX_NAME", "ImageIndex", "decode_cursor", "encode_cursor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
CURSOR_VERSION: Final = "i1"
MAX_CURSOR_LENGTH: Final = 200
ABOVE_EVERY_ID: Final = "~"
"""Sorts after every image id ("img-..."): the bound of the first page."""


def encode_cursor(last_id: str) -> str:
    body = json.dumps({"v": CURSOR_VERSION, "after": last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The last id of the page a cursor follows. ValueError for anything `encode_cursor` did not make."""
    last_id: object = None
    if isinstance(cursor, str) and len(cursor) <= MAX_CURSOR_LENGTH:
        try:
            body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except ValueError:  # also binascii.Error and UnicodeDecodeError
            body = None
        last_id = body.get("after") if isinstance(body, dict) else None
    if not isinstance(last_id, str) or not IMAGE_ID_PATTERN.fullmatch(last_id) or encode_cursor(last_id) != cursor:
        raise ValueError("not a cursor of this image listing")
    return last_id


class _Damaged(Exception):
    """The index file was found damaged (and deleted) while it was brought up to date."""


def _parse(raw: str) -> ImageRecord | None:
    try:
        return ImageRecord.model_validate_json(raw)
    except ValidationError:
        return None


class ImageIndex:
    """The index of the images stored in `root`, synced with the directory on open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._db = Connections(root)
        self._sync_lock = threading.Lock()
        self._clean_mtime: int | None = None
        """The directory mtime at which the index last matched it, as this process knows it."""
        self.sync()

    def close(self) -> None:
        self._db.close()

    def add(self, record: ImageRecord) -> None:
        """Index an image whose files were just written. A failure is logged, not raised: the image is stored, and
        the next `sync` finds it."""
        if not self._exists():
            return  # nothing was written: there is no directory
        try:
            self._run(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO images (image_id, record) VALUES (?, ?)",
                    (record.image_id, record.model_dump_json()),
                )
            )
        except sqlite3.Error as exc:
            logger.warning(
                "Could not index image %s in %s (%s); the next listing finds it", record.image_id, self.root, exc
            )

    def get(self, image_id: str) -> ImageRecord | None:
        """The record of a stored image, or None (also for anything that is not an image id, like "../x"). An image
        the index does not know yet is looked for on disk and indexed."""
        if not isinstance(image_id, str) or not IMAGE_ID_PATTERN.fullmatch(image_id) or not self._exists():
            return None
        meta_path = self.root / f"{image_id}.json"
        row = self._run(
            lambda conn: conn.execute("SELECT record FROM images WHERE image_id = ?", (image_id,)).fetchone()
        )
        if row is not None:
            record = _parse(row[0])
            if record is not None and meta_path.is_file() and (self.root / record.file_name).is_file():
                return record
            self._forget([image_id])
            return None
        record = load_sidecar(self.root, meta_path)
        if record is None or record.image_id != image_id:
            return None
        self.add(record)
        return record

    def page(self, cursor: str | None, limit: int) -> tuple[list[ImageRecord], str | None]:
        """Stored images, newest first, `limit` at most, after `cursor` (None: the first page, which syncs first).
        The next page's cursor is None on the last page. ValueError for a cursor this index did not make."""
        last_id = ABOVE_EVERY_ID if cursor is None else decode_cursor(cursor)
        if limit < 1:
            raise ValueError(f"a page holds at least one image, not {limit}")
        if cursor is None:
            self.sync()
        if not self._exists():
            return [], None
        records, more, gone = self._run(lambda conn: self._fetch(conn, last_id, limit))
        if gone:
            self._forget(gone)
        return records, (encode_cursor(records[-1].image_id) if more and records else None)

    def sync(self) -> None:
        """Make the index match the directory: cheap (one `stat`) when the directory has not changed since it last
        matched. A failure is logged, not raised: listing goes on with what the index holds."""
        try:
            mtime = os.stat(self.root).st_mtime_ns
        except OSError:
            return  # no directory yet: nothing is stored
        if mtime == self._clean_mtime:
            return
        with self._sync_lock:
            for attempt in (1, 2):
                try:
                    self._bring_up_to_date()
                    return
                except _Damaged:
                    if attempt == 1:
                        continue
                    logger.warning("The image index of %s was damaged again while it was rebuilt", self.root)
                    return
                except (sqlite3.Error, OSError) as exc:
                    logger.warning("Could not bring the image index of %s up to date (%s)", self.root, exc)
                    return

    def _bring_up_to_date(self) -> None:
        if self._db.replaced():
            logger.info("The image index of %s was replaced by another process; reopening it", self.root)
        with self._db.connection() as conn:
            try:
                self._reconcile(conn)
            except sqlite3.DatabaseError as exc:
                if not damaged(exc):
                    raise
                self._db.discard(conn, exc)
                raise _Damaged from exc

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        mtime = os.stat(self.root).st_mtime_ns
        if recorded_mtime(conn) == mtime:
            self._clean_mtime = mtime
            return
        now = time.time_ns()
        started = time.monotonic()
        changed = reconcile(conn, self.root)
        if changed:
            logger.info(
                "Image index of %s: %d rows added or removed in %.2f s", self.root, changed, time.monotonic() - started
            )
        if os.stat(self.root).st_mtime_ns == mtime and settled(mtime, now):
            record_mtime(conn, mtime)
            self._clean_mtime = mtime

    def _fetch(self, conn: sqlite3.Connection, last_id: str, limit: int) -> tuple[list[ImageRecord], bool, list[str]]:
        """Up to `limit` records older than `last_id`, whether more follow, and the ids of rows skipped because
        their image file is gone."""
        found: list[ImageRecord] = []
        gone: list[str] = []
        while len(found) <= limit:
            wanted = limit + 1 - len(found)
            rows = conn.execute(
                "SELECT image_id, record FROM images WHERE image_id < ? ORDER BY image_id DESC LIMIT ?",
                (last_id, wanted),
            ).fetchall()
            for image_id, raw in rows:
                last_id = image_id
                record = _parse(raw)
                if record is not None and (self.root / record.file_name).is_file():
                    found.append(record)
                else:
                    gone.append(image_id)
            if len(rows) < wanted:
                break
        return found[:limit], len(found) > limit, gone

    def _forget(self, image_ids: list[str]) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany("DELETE FROM images WHERE image_id = ?", [(i,) for i in image_ids])

        try:
            self._run(delete)
        except sqlite3.Error as exc:
            logger.warning(
                "Could not drop %d vanished images from the index of %s (%s)", len(image_ids), self.root, exc
            )

    def _exists(self) -> bool:
        """Whether there may be images: once the index is open, yes (no `stat` needed); before, when the directory
        exists (made since this index was opened: then build the index now)."""
        if self._db.opened:
            return True
        if not self.root.is_dir():
            return False
        self.sync()
        return True

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """`operation` on a connection; when it finds the file damaged, again on the index rebuilt."""
        with self._db.connection() as conn:
            try:
                return operation(conn)
            except sqlite3.DatabaseError as exc:
                if not damaged(exc):
                    raise
                self._db.discard(conn, exc)
        self._clean_mtime = None
        self.sync()
        with self._db.connection() as conn:
            return operation(conn)
