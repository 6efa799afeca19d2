"""The SQLite file behind `ImageIndex` (`index.py`): opening it (WAL mode, a busy timeout), checking that it is an
index of this schema version, replacing it when it is not or is damaged, and one connection per thread.

Several threads and processes may use one file at once; SQLite's own locking orders them. A file this process
cannot keep in the output directory (a read-only directory) is kept in a private temporary directory instead,
for as long as the process runs: the listing stays right, only its index is not shared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

INDEX_NAME: Final = ".index.sqlite3"
"""Hidden, and not `img-*`: a listing of the directory's images never matches it."""
SCHEMA_VERSION: Final = 1
APPLICATION_ID: Final = 0x46494D58  # "FIMX": this file is a foundry-image-mcp index
BUSY_TIMEOUT_S: Final = 30.0
SCHEMA: Final = (
    "CREATE TABLE images (image_id TEXT PRIMARY KEY, record TEXT NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
DAMAGED: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class NotOurs(sqlite3.DatabaseError):
    """The file is an SQLite database, but not an image index of this schema version."""


def damaged(exc: sqlite3.Error) -> bool:
    """Whether `exc` says the file is not a usable index (rather than busy, or the disk full): replace it."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, NotOurs) or (code is not None and code & 0xFF in DAMAGED)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taken at once (`BEGIN IMMEDIATE`), so that writers queue on the busy timeout."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the index at `path`, created when missing. Raises `NotOurs`, or the error of a file that
    is not a database, or of one SQLite cannot open."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a lost last commit costs a re-read of some sidecars, no more
        _check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _identity(conn: sqlite3.Connection) -> tuple[int, int]:
    app, version = (conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("application_id", "user_version"))
    return int(app), int(version)


def _check_schema(conn: sqlite3.Connection) -> None:
    if _identity(conn) == (APPLICATION_ID, SCHEMA_VERSION):
        return
    with transaction(conn):
        app, version = _identity(conn)
        if (app, version) == (APPLICATION_ID, SCHEMA_VERSION):
            return  # another connection made it meanwhile
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        if app or version or tables:
            raise NotOurs(f"application id {app:#x}, schema version {version}; this server uses {SCHEMA_VERSION}")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def remove(path: Path) -> None:
    """Delete an index file with its WAL and shared-memory files (a WAL left beside a new file would be replayed
    into it)."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)


def file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class Connections:
    """One connection per thread to the index of `root`, opened on first use; a connection made before the file
    was replaced (here or by another process) is closed and reopened by its thread on its next use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._generation = 0
        self._path = root / INDEX_NAME
        self._private: Path | None = None
        self._file: tuple[int, int] | None = None
        """The file this process's connections were opened on (None before, and once it was found damaged)."""
        self._opened = False
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def opened(self) -> bool:
        return self._opened

    def get(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation:
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the image index of {self.root} is closed")
            if conn is not None:
                self._open.remove(conn)
                conn.close()
                local.conn = None
            conn = self._connect()
            self._open.append(conn)
            local.conn, local.generation = conn, self._generation
            return conn

    def replaced(self) -> bool:
        """Whether the file at the index's path is no longer the one this process opened (another process replaced
        it, or deleted it); then every thread reconnects."""
        if self._file is None or file_id(self._path) == self._file:
            return False
        with self._lock:
            self._generation += 1
        return True

    def discard(self, exc: sqlite3.Error) -> None:
        """This thread's connection found its file damaged: delete the file (unless it was replaced meanwhile), and
        let every thread reconnect."""
        with self._lock:
            if getattr(self._local, "generation", None) != self._generation:
                return  # another thread handled it, or this one never connected
            self._generation += 1
            if file_id(self._path) == self._file:
                logger.warning(
                    "The image index %s is unusable (%s); rebuilding it from the image files", self._path, exc
                )
                remove(self._path)
            self._file = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._generation += 1
            for conn in self._open:
                conn.close()
            self._open.clear()
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open_or_replace(self._path)
        except (sqlite3.Error, OSError) as exc:
            if self._private is not None or (isinstance(exc, sqlite3.OperationalError) and _busy(exc)):
                raise
            self._private = Path(tempfile.mkdtemp(prefix="foundry-image-index-"))
            logger.warning(
                "Cannot keep the image index in %s (%s); this process keeps its own in %s",
                self.root,
                exc,
                self._private,
            )
            self._path = self._private / INDEX_NAME
            return self._open_or_replace(self._path)

    def _open_or_replace(self, path: Path) -> sqlite3.Connection:
        try:
            conn = connect(path)
        except sqlite3.DatabaseError as exc:
            if not damaged(exc):
                raise
            logger.warning("The image index %s is unusable (%s); rebuilding it from the image files", path, exc)
            remove(path)
            conn = connect(path)
        self._file = file_id(path)
        self._opened = True
        return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
