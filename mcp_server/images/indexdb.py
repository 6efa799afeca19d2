"""The SQLite file behind `ImageIndex` (`index.py`): opening it (WAL mode, a busy timeout), checking that it is an
index of this schema version, replacing it when it is not or is damaged, and a few connections to lend.

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
MAX_IDLE: Final = 4
"""Connections kept open between operations; each may hold up to 2 MiB of SQLite's page cache."""
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
    """Connections to the index of `root`, lent one per operation and kept for reuse (a few), opened on first use.
    A connection made before the file was replaced (here or by another process) is closed rather than reused.

    Not one per thread: worker threads come and go (anyio retires idle ones), and their connections would stay."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._generation_of: dict[sqlite3.Connection, int] = {}
        """Every open connection, lent or idle, and the generation of the file it was opened on."""
        self._generation = 0
        self._path = root / INDEX_NAME
        self._private: Path | None = None
        self._file: tuple[int, int] | None = None
        """The file the current connections are open on (None before, and once it was found damaged)."""
        self._opened = False
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def opened(self) -> bool:
        return self._opened

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def replaced(self) -> bool:
        """Whether the file at the index's path is no longer the one this process opened (another process replaced
        it, or deleted it); then connections are opened anew."""
        if self._file is None or file_id(self._path) == self._file:
            return False
        with self._lock:
            self._generation += 1
            self._file = None
        return True

    def discard(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        """`conn` found its file damaged: delete the file (unless that was done, or it was replaced, meanwhile), and
        open connections anew."""
        with self._lock:
            if self._generation_of.get(conn) != self._generation:
                return  # another operation handled it
            self._generation += 1
            if file_id(self._path) == self._file:
                logger.warning(
                    "The image index %s is unusable (%s); rebuilding it from the image files", self._path, exc
                )
                remove(self._path)
            self._file = None

    def close(self) -> None:
        """Close the idle connections now, and those lent when they come back."""
        with self._lock:
            self._closed = True
            for conn in self._idle:
                self._close(conn)
            self._idle.clear()
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the image index of {self.root} is closed")
            while self._idle:
                conn = self._idle.pop()
                if self._generation_of[conn] == self._generation:
                    return conn
                self._close(conn)
            conn = self._connect()
            self._generation_of[conn] = self._generation
            return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            stale = self._closed or self._generation_of[conn] != self._generation
            if stale or len(self._idle) >= MAX_IDLE or conn.in_transaction:
                self._close(conn)
            else:
                self._idle.append(conn)

    def _close(self, conn: sqlite3.Connection) -> None:
        del self._generation_of[conn]
        conn.close()

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
