"""How a refused input is reported: `<label> (<reference, shortened>): <why>.` plus a hint.

References can be megabytes of base64 or URLs carrying access tokens, so what goes into a
message is always shortened: data URLs and base64 keep only their head and length, URLs lose
their credentials and query string.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from mcp_server.errors import InvalidInputError

SHOWN_CHARS: Final = 120
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/= ]+")


def shorten(reference: str) -> str:
    """The reference as it may appear in a message: short, one line, without secrets."""
    text = _CONTROL.sub(" ", reference.strip())
    lowered = text[:8].lower()
    if lowered.startswith("data:"):
        head, comma, body = text.partition(",")
        if len(text) <= SHOWN_CHARS:
            return text
        return f"{head[:60]}{comma}{body[:4]}…({len(text)} chars)"
    if lowered.startswith(("http://", "https://")):
        return _shorten_url(text)
    if len(text) <= SHOWN_CHARS:
        return text
    if _BASE64.fullmatch(text):
        return f"{text[:8]}…({len(text)} chars)"  # base64: its head says which format it is
    return f"{text[:SHOWN_CHARS]}…({len(text)} chars)"


def _shorten_url(url: str) -> str:
    # Signed URLs (SAS tokens, presigned S3 links) carry their secret in the query string.
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<malformed URL>"
    shown = f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")
    return shown if len(shown) <= SHOWN_CHARS else f"{shown[:SHOWN_CHARS]}…"


def refusal(label: str, reference: str, reason: str, hint: str | None = None) -> InvalidInputError:
    """The error for input `label`: its message names the input, the reference and why it is refused."""
    return InvalidInputError(f"{label} ({shorten(reference)}): {reason}", hint=hint)
