"""Bringing an image index up to date with its directory: the sidecars (`<image_id>.json`) are the truth.

Memory does not grow with the number of images: the names the directory holds go, a batch at a time, into a
temporary table of the connection (which SQLite keeps in a temporary file beyond its page cache); only the
sidecars the index lacks are read, a batch at a time; rows whose sidecar is gone are deleted.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from mcp_server.images.indexdb import transaction
from mcp_server.images.records import IMAGE_ID_PATTERN
from mcp_server.images.store import load_sidecar

BATCH: Final = 500
SETTLE_NS: Final = 100_000_000
"""How long after the directory's last change its mtime is trusted: a change within the same tick of the file
system's clock leaves the mtime as it was, so a scan taken that soon after a change is not recorded as complete."""
COARSE_SETTLE_NS: Final = 2_000_000_000
"""The same for a file system whose mtimes are whole seconds (FAT keeps two)."""
DIR_MTIME: Final = "dir_mtime_ns"


def recorded_mtime(conn: sqlite3.Connection) -> int | None:
    """The directory mtime at which the index last matched the directory entirely."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DIR_MTIME,)).fetchone()
    return None if row is None else int(row[0])


def record_mtime(conn: sqlite3.Connection, mtime_ns: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (DIR_MTIME, mtime_ns))


def settled(mtime_ns: int, now_ns: int) -> bool:
    """Whether any change to the directory made after `now_ns` must give it an mtime other than `mtime_ns`."""
    coarse = mtime_ns % 1_000_000_000 == 0
    return now_ns - mtime_ns > (COARSE_SETTLE_NS if coarse else SETTLE_NS)


def reconcile(conn: sqlite3.Connection, root: Path) -> int:
    """Make the rows match the sidecars in `root`; returns how many rows were added or removed."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen (image_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM temp.seen")
    try:
        _collect_names(conn, root)
        return _add_new(conn, root) + _drop_vanished(conn, root)
    finally:
        conn.execute("DELETE FROM temp.seen")
        conn.execute("PRAGMA shrink_memory")  # the names' pages need not stay cached


def _collect_names(conn: sqlite3.Connection, root: Path) -> None:
    """The ids of the sidecars in `root` into `temp.seen` (names only: no file is opened)."""
    batch: list[tuple[str]] = []
    conn.execute("BEGIN")  # touches only the temporary table: no lock on the index
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("img-") and name.endswith(".json") and IMAGE_ID_PATTERN.fullmatch(name[:-5]):
                    batch.append((name[:-5],))
                    if len(batch) == BATCH:
                        conn.executemany("INSERT OR IGNORE INTO temp.seen VALUES (?)", batch)
                        batch.clear()
        conn.executemany("INSERT OR IGNORE INTO temp.seen VALUES (?)", batch)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _add_new(conn: sqlite3.Connection, root: Path) -> int:
    """Read the sidecars the index lacks and add those that hold a complete image."""
    added = 0
    after = ""
    while True:
        ids = [
            image_id
            for (image_id,) in conn.execute(
                "SELECT image_id FROM temp.seen AS s WHERE image_id > ? AND NOT EXISTS "
                "(SELECT 1 FROM main.images AS i WHERE i.image_id = s.image_id) ORDER BY image_id LIMIT ?",
                (after, BATCH),
            )
        ]
        if not ids:
            return added
        after = ids[-1]
        rows = [
            (record.image_id, record.model_dump_json())
            for image_id in ids
            if (record := load_sidecar(root, root / f"{image_id}.json")) is not None and record.image_id == image_id
        ]
        if rows:
            with transaction(conn):
                conn.executemany("INSERT OR REPLACE INTO images (image_id, record) VALUES (?, ?)", rows)
            added += len(rows)


def _drop_vanished(conn: sqlite3.Connection, root: Path) -> int:
    """Delete the rows whose sidecar is gone (checked again: one may have been written since the names were read)."""
    dropped = 0
    after = ""
    while True:
        ids = [
            image_id
            for (image_id,) in conn.execute(
                "SELECT image_id FROM main.images AS i WHERE image_id > ? AND NOT EXISTS "
                "(SELECT 1 FROM temp.seen AS s WHERE s.image_id = i.image_id) ORDER BY image_id LIMIT ?",
                (after, BATCH),
            )
        ]
        if not ids:
            return dropped
        after = ids[-1]
        gone = [(image_id,) for image_id in ids if not os.path.exists(root / f"{image_id}.json")]
        if gone:
            with transaction(conn):
                conn.executemany("DELETE FROM images WHERE image_id = ?", gone)
            dropped += len(gone)
