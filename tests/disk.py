"""A small disk for tests: a real tmpfs where the machine allows mounting one, an injected file-system error
otherwise. Either way the server sees what a full or read-only disk gives it: ENOSPC or EROFS from its writes,
and (when full) little free space."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

import mcp_server.images.disk
import mcp_server.images.inflight
import mcp_server.images.store


class Disk(Protocol):
    path: Path

    def fill(self) -> None: ...
    def make_read_only(self) -> None: ...
    def restore(self) -> None: ...


class Tmpfs:
    """A real tmpfs of a few MiB: filled with a filler file, or remounted read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler.bin"

    def fill(self) -> None:
        with contextlib.suppress(OSError), self._filler.open("wb") as handle:
            while True:
                handle.write(b"\0" * 65536)

    def make_read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def restore(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)
        self._filler.unlink(missing_ok=True)


class Injected:
    """No mounting here: the store's writes under `path` raise the error a full or read-only disk would."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self._errno: int | None = None
        real_write = mcp_server.images.store.write_atomic
        real_usage = shutil.disk_usage

        def write_atomic(target: Path, data: bytes) -> None:
            if self._errno is not None and target.is_relative_to(self.path):
                raise OSError(self._errno, os.strerror(self._errno), str(target))
            real_write(target, data)

        def disk_usage(where: Any) -> Any:
            usage = real_usage(where)
            if self._errno == errno.ENOSPC and Path(where).is_relative_to(self.path):
                return usage._replace(free=4096)
            return usage

        monkeypatch.setattr(mcp_server.images.store, "write_atomic", write_atomic)
        monkeypatch.setattr(mcp_server.images.inflight, "write_atomic", write_atomic)
        monkeypatch.setattr(mcp_server.images.disk.shutil, "disk_usage", disk_usage)

    def fill(self) -> None:
        self._errno = errno.ENOSPC

    def make_read_only(self) -> None:
        self._errno = errno.EROFS

    def restore(self) -> None:
        self._errno = None


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_disk(path: Path, size_kib: int, monkeypatch: pytest.MonkeyPatch, *, kind: str) -> Iterator[Disk]:
    """`kind` "tmpfs" (skipped where this machine cannot mount one) or "injected"."""
    path.mkdir(parents=True)
    if kind == "injected":
        yield Injected(path, monkeypatch)
        return
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)]
    if not can_mount() or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the injected-error variant covers this machine")
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
