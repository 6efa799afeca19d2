"""Generations in flight, on disk, each claimed by exactly one live process.

A record is written to `<root>/.pending/<tag>.json` BEFORE its create is sent: the request's
tag (the metadata by which the service's response can be found again), the image id the image
will be stored under, and the provenance of the call. The response id is added once the service
names it. The record is removed when the image is stored or the generation is known to have
ended without one.

Several server processes may share one output directory (every stdio client on a machine uses
the default one). Each record has a lock file beside it, `<tag>.lock`, held (an OS file lock,
through `filelock`) by the process that owns the record for as long as it does. The OS drops the
lock when the owner exits, however it exits, so a record whose lock can be taken has no live
owner: `InFlight.orphans` claims exactly those, and two processes can never both own one.

Blocking (file system and fsync): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from mcp_server.images.records import KEY_PATTERN, InFlightRecord
from mcp_server.images.store import write_atomic

if TYPE_CHECKING:  # imported when the first lock is taken: a cold start without records never needs it
    import filelock

logger = logging.getLogger(__name__)

PENDING_DIR: Final = ".pending"
ABANDONED_DIR: Final = "abandoned"


def _read_record(path: Path) -> InFlightRecord | None:
    try:
        body = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    if "key" not in body:  # the flat layout of earlier versions: {"response_id", "recorded_at", **provenance}
        plain = {k: v for k, v in body.items() if k not in ("response_id", "recorded_at")}
        body = {"key": path.stem, "response_id": body.get("response_id"), "recorded_at": body.get("recorded_at", "")}
        body["provenance"] = plain
    try:
        record = InFlightRecord.model_validate(body)
    except ValidationError:
        return None
    if record.key != path.stem or not KEY_PATTERN.match(record.key):
        return None
    return record


class Claim:
    """A record owned by this process: its lock is held until `finish`, `release` or `abandon`."""

    def __init__(self, folder: Path, record: InFlightRecord, lock: filelock.BaseFileLock) -> None:
        self.folder = folder
        self.record = record
        self._lock = lock

    @property
    def path(self) -> Path:
        return self.folder / f"{self.record.key}.json"

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def write(self) -> None:
        """Save the record as it is now (raises OSError when the disk refuses)."""
        write_atomic(self.path, self.record.model_dump_json(indent=2).encode())

    def update(self, **changes: Any) -> None:
        """Change the record and save it; a disk that refuses now only costs the change (logged)."""
        self.record = self.record.model_copy(update=changes)
        try:
            self.write()
        except OSError as exc:
            logger.warning("Could not update the in-flight record %s: %s", self.path, exc)

    def finish(self) -> None:
        """The generation is settled (stored, or ended without an image): remove the record."""
        self.path.unlink(missing_ok=True)
        self._unlock(remove=True)

    def release(self) -> None:
        """Stop owning the record without settling it: another process (or a later start) takes it over."""
        self._unlock(remove=False)

    def abandon(self) -> None:
        """Give up on the record for good, keeping it in `.pending/abandoned/` for the person to look at."""
        target = self.folder / ABANDONED_DIR
        try:
            target.mkdir(exist_ok=True)
            os.replace(self.path, target / self.path.name)
        except OSError as exc:
            logger.warning("Could not move %s aside (%s); removing it", self.path, exc)
            self.path.unlink(missing_ok=True)
        self._unlock(remove=True)

    def _unlock(self, *, remove: bool) -> None:
        if not self._lock.is_locked:
            return
        if remove:  # while still held: nobody can be between reading the record and locking it
            with contextlib.suppress(OSError):  # Windows refuses to delete an open file; filelock deletes it there
                Path(self._lock.lock_file).unlink(missing_ok=True)
        self._lock.release()


class InFlight:
    """The in-flight records of one image store."""

    def __init__(self, root: Path) -> None:
        self.folder = root / PENDING_DIR

    def begin(self, record: InFlightRecord) -> Claim:
        """Record a generation about to be sent, owned by this process. Raises OSError when the disk refuses:
        the caller must not send the create then, since its image could not be kept."""
        if not KEY_PATTERN.match(record.key):
            raise ValueError(f"unexpected in-flight key {record.key!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = _lock_for(self.folder / f"{record.key}.lock")
        lock.acquire()  # a fresh random tag: nobody else can hold it
        claim = Claim(self.folder, record, lock)
        try:
            claim.write()
        except BaseException:
            claim.finish()
            raise
        return claim

    def keys(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if KEY_PATTERN.match(p.stem))

    def records(self) -> list[InFlightRecord]:
        """Every readable record, owned or not (to look at, not to act on: claim first)."""
        return [r for key in self.keys() if (r := _read_record(self.folder / f"{key}.json")) is not None]

    def orphans(self) -> list[Claim]:
        """Claim every record whose owner is gone (its lock is free); records a live process owns are skipped."""
        claims: list[Claim] = []
        for key in self.keys():
            claim = self.try_claim(key)
            if claim is not None:
                claims.append(claim)
        return claims

    def try_claim(self, key: str) -> Claim | None:
        import filelock

        lock = _lock_for(self.folder / f"{key}.lock")
        try:
            lock.acquire()
        except filelock.Timeout:
            return None  # a live process owns it
        except OSError as exc:
            logger.warning("Cannot lock the in-flight record %s: %s", key, exc)
            return None
        record = _read_record(self.folder / f"{key}.json")
        if record is None:  # settled meanwhile, or unreadable (then it is left for a person to look at)
            with contextlib.suppress(OSError):
                if not (self.folder / f"{key}.json").exists():
                    Path(lock.lock_file).unlink(missing_ok=True)
            lock.release()
            return None
        return Claim(self.folder, record, lock)

    def has_image(self, image_id: str) -> bool:
        return (self.folder.parent / f"{image_id}.json").is_file()


def _lock_for(path: Path) -> filelock.BaseFileLock:
    import filelock

    # thread_local=False: a claim is taken in one worker thread and released in another.
    return filelock.FileLock(path, timeout=0, thread_local=False)
