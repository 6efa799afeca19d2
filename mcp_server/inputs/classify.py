"""Which kind of reference a string is: the one place that decides, so the tool and `looks_like_path` agree.

Almost any string is a valid relative path, so a bare string counts as a path only when it
looks like one (a separator, a leading `/`, `~` or `.`, or a file extension). Bare base64 is
recognised before paths because JPEG base64 starts with `/9j/`.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import PurePosixPath
from typing import Final, Literal

from mcp_server.images.records import URI_SCHEME
from mcp_server.inputs.paths import is_file_uri, is_windows_form

Kind = Literal["resource", "path", "data_url", "base64", "url", "file_id"]
Classified = Kind | Literal["other_url", "unknown"]

FILE_ID: Final = re.compile(r"^(assistant|file)-[A-Za-z0-9_-]{1,200}$")
MIN_BASE64_CHARS: Final = 64
_BASE64: Final = re.compile(r"[A-Za-z0-9+/=\s]+")
_WHITESPACE: Final = re.compile(r"\s+")
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SIGNATURES: Final = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def classify(reference: str) -> Classified:
    """The kind of `reference` (already stripped), by the first rule that matches."""
    lowered = reference[:16].lower()
    if lowered.startswith(URI_SCHEME + ":"):
        return "resource"
    if lowered.startswith("data:"):
        return "data_url"
    if lowered.startswith(("https://", "http://")):
        return "url"
    if is_file_uri(reference) or is_windows_form(reference):
        return "path"
    if _SCHEME.match(reference):
        return "other_url"
    if FILE_ID.match(reference):
        return "file_id"
    if _is_base64_image(reference):
        return "base64"
    if _path_shaped(reference):
        return "path"
    if len(reference) >= MIN_BASE64_CHARS and _BASE64.fullmatch(reference):
        return "base64"  # not an image signature, but clearly meant as base64: say so when it fails
    return "unknown"


def looks_like_path(reference: str) -> bool:
    """True if resolving `reference` would touch the file system (a path or `file:` URI)."""
    text = reference.strip()
    return bool(text) and classify(text) == "path"


def decode_base64(text: str) -> bytes:
    """Strict base64 (standard alphabet, padded); whitespace such as line breaks is ignored.

    Raises:
        binascii.Error: not valid base64.
    """
    return base64.b64decode(_WHITESPACE.sub("", text), validate=True)


def decoded_size(text: str) -> int:
    """How many bytes `decode_base64(text)` would give, without decoding (to refuse huge inputs first)."""
    chars = len(text) - sum(text.count(c) for c in " \t\r\n")
    return chars * 3 // 4 - text.rstrip()[-2:].count("=")


def _is_base64_image(text: str) -> bool:
    if len(text) < MIN_BASE64_CHARS or not _BASE64.fullmatch(text):
        return False
    head = _WHITESPACE.sub("", text[:128])[:64]
    try:
        return base64.b64decode(head, validate=True).startswith(_SIGNATURES)
    except binascii.Error:
        return False


def _path_shaped(text: str) -> bool:
    if text.startswith(("/", "~", ".")) or "/" in text or "\\" in text:
        return True
    suffix = PurePosixPath(text).suffix
    return 1 < len(suffix) <= 6 and suffix[1:].isalnum()
