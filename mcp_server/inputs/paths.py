"""Local paths and `file:` URIs: parsing, confinement to the allowed directories, safe reading.

A path is readable only if its real path (symlinks followed, `..` collapsed) lies inside the
real path of an allowed directory. Existence is checked only after confinement, so refusals
never reveal whether a file outside those directories exists.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Final
from urllib.parse import unquote, urlsplit

import mcp.types

from mcp_server.inputs.checks import MAX_INPUT_BYTES, check_byte_size
from mcp_server.inputs.messages import refusal

ON_WINDOWS: Final = sys.platform == "win32"
_DRIVE: Final = re.compile(r"^[A-Za-z]:[\\/]")
_URI_DRIVE: Final = re.compile(r"^/[A-Za-z][:|]/")


class PathSyntaxError(ValueError):
    """A path or `file:` URI that cannot name a file on this machine; str() is the reason."""


def is_windows_form(text: str) -> bool:
    """`C:\\x`, `C:/x` or `\\\\server\\share\\x`: only meaningful on Windows."""
    return bool(_DRIVE.match(text)) or text.startswith("\\\\")


def is_file_uri(text: str) -> bool:
    return text[:5].lower() == "file:"


def to_local_path(reference: str, *, windows: bool = ON_WINDOWS) -> PurePath:
    """Parse a path or `file:` URI; Windows forms come back as `PureWindowsPath` on any platform.

    Raises:
        PathSyntaxError: a relative `file:` URI, one with a query or fragment, or a NUL character.
    """
    text = reference.strip()
    if is_file_uri(text):
        text = _file_uri_to_path(text)
    if "\x00" in text:
        raise PathSyntaxError("a path must not contain a NUL character.")
    if windows or is_windows_form(text):
        return PureWindowsPath(text)
    return PurePosixPath(text)


def _file_uri_to_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise PathSyntaxError("a file: URI must not have a query or fragment (write '#' and '?' as %23 and %3F).")
    path = unquote(parts.path)
    if parts.netloc.lower() not in ("", "localhost"):
        return "\\\\" + parts.netloc + path.replace("/", "\\")  # file://server/share/x is a UNC path
    if not path.startswith("/"):
        raise PathSyntaxError("a file: URI must hold an absolute path, such as file:///home/me/image.png.")
    if _URI_DRIVE.match(path):
        return path[1].upper() + ":" + path[3:]  # file:///C:/x -> C:/x (and the old C|/x form)
    return path


def roots_to_dirs(roots: mcp.types.ListRootsResult | None) -> list[Path]:
    """The directories behind a client's `file://` roots; other roots and unusable ones are skipped."""
    if roots is None:
        return []
    dirs: list[Path] = []
    for root in roots.roots:
        uri = str(root.uri)
        if not is_file_uri(uri):
            continue
        try:
            pure = to_local_path(uri)
        except PathSyntaxError:
            continue
        if isinstance(pure, PureWindowsPath) and not ON_WINDOWS:
            continue
        dirs.append(Path(pure))
    return dirs


def locate(pure: PurePath, label: str, reference: str, allowed_dirs: Sequence[Path]) -> Path:
    """The real path of `pure` if it lies inside an allowed directory; blocking (stats the file system).

    Absolute paths (and `~`) are taken as they are; a relative path is looked up inside each
    allowed directory in order, and the first that has it wins.
    """
    if isinstance(pure, PureWindowsPath) and not ON_WINDOWS:
        raise refusal(
            label,
            reference,
            f"is a Windows path but the server runs on {sys.platform}; "
            "pass a path on the server's machine or a resource URI/data URL.",
            "The server cannot see the client's disk: pass the image as a data URL, an https URL, "
            "or a foundry-image:// resource URI instead.",
        )
    roots = [Path(os.path.realpath(d)) for d in allowed_dirs]
    path = Path(pure).expanduser()
    candidates = [path] if path.is_absolute() else [Path(d) / path for d in allowed_dirs]
    escaped = False
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))
        if not any(real.is_relative_to(root) for root in roots):
            escaped = True  # whether it exists out there is none of the caller's business
        elif os.path.exists(real):
            return real
    if escaped:
        raise refusal(label, reference, "is outside the directories this server may read.", _where_hint(allowed_dirs))
    raise refusal(label, reference, "does not exist.", _where_hint(allowed_dirs))


def read_confined(real: Path, label: str, reference: str, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Read a regular file found by `locate`, refusing directories, FIFOs and devices unopened; blocking."""
    try:
        before = os.stat(real)
    except FileNotFoundError:
        raise refusal(label, reference, "does not exist.", "Check the path, or pass the image another way.") from None
    except OSError as exc:
        raise refusal(label, reference, f"cannot be read ({exc.strerror or type(exc).__name__}).") from None
    if stat.S_ISDIR(before.st_mode):
        raise refusal(label, reference, "is a directory, not an image file.", "Name one image file inside it.")
    if not stat.S_ISREG(before.st_mode):
        # Opening a FIFO would block until a writer appears: refuse before touching it.
        raise refusal(label, reference, "is not a regular file (a FIFO, device or socket).")
    check_byte_size(before.st_size, label, reference, max_bytes=max_bytes)
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the stat, open returns at once.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise refusal(label, reference, f"cannot be opened ({exc.strerror or type(exc).__name__}).") from None
    with open(fd, "rb", buffering=0) as handle:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise refusal(label, reference, "changed while it was being opened; try again.")
        data = handle.read(max_bytes)
    check_byte_size(len(data), label, reference, max_bytes=max_bytes)
    return data


def _where_hint(allowed_dirs: Sequence[Path]) -> str:
    places = ", ".join(str(d) for d in allowed_dirs) or "(none configured)"
    return (
        f"Put the file in one of the readable directories ({places}; the output directory, "
        "FOUNDRY_IMAGE_MCP_INPUT_DIRS and the client's roots), or pass the image as a resource URI or data URL."
    )
