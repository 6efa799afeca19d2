"""What the output directory can take: explained `StorageError`s, and the free-space check made before paying."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Final

from mcp_server.errors import StorageError

NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY: Final = frozenset({errno.EROFS})
NO_PERMISSION: Final = frozenset({errno.EACCES, errno.EPERM})
MIB: Final = 1024 * 1024
OUTPUT_DIR_HINT: Final = "or point FOUNDRY_IMAGE_MCP_OUTPUT_DIR at a directory this server can write to"


NO_SPACE_REASON: Final = "no space left on the device"


def reason_of(exc: OSError) -> str:
    """Why the disk refused, in a few words."""
    if exc.errno in NO_SPACE:
        return NO_SPACE_REASON
    if exc.errno in READ_ONLY:
        return "the file system is read-only"
    if exc.errno in NO_PERMISSION:
        return "permission denied"
    return exc.strerror or type(exc).__name__


def storage_error(reason: str, where: str, *, before: bool, no_space: bool) -> StorageError:
    """The refusal of the store at `where` to take a write; `before` when nothing was sent to the service yet."""
    fix = "free some space" if no_space else "make it writable"
    message = f"Cannot save images in {where}: {reason}."
    if before:
        message += " Nothing was sent to Foundry, so nothing was charged."
    return StorageError(message, hint=f"{fix.capitalize()}, {OUTPUT_DIR_HINT}; then try again.")


def check_free_space(root: Path, needed: int) -> None:
    """Refuse, before paying for a generation, when `root`'s file system has less than `needed` bytes free."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: the record written next will show whether the disk takes writes
    if free < needed:
        raise StorageError(
            f"Cannot save images in {root}: {free / MIB:.1f} MiB free, and this image needs up to "
            f"{needed / MIB:.0f} MiB. Nothing was sent to Foundry, so nothing was charged.",
            hint=f"Free some space, {OUTPUT_DIR_HINT}; then try again.",
        )


def room_for(width: int, height: int) -> int:
    """An upper bound of the stored size of a `width` x `height` image (RGBA, uncompressed) plus its records."""
    return width * height * 4 + MIB
