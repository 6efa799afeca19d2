"""Reading a request's top-level `"id"` from a line no JSON parser accepts.

A line can hold a request whose id is plain to see and still not parse: it is cut short, or nested
deeper than the parser recurses (100000 arrays in its arguments). `scan_top_level_id` walks such a
line once, tracking string boundaries and nesting depth without building anything, and returns
the value of the `"id"` member of the outermost object when it is an integer or a string.
"""

from __future__ import annotations

import json
import re
from typing import Final

from mcp_types import RequestId

_TOKENS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[{]+|[\]}]+|,', re.DOTALL)
"""A whole string, or a lone quote (a string the line cuts short), a run of openings, a run of closings, a comma."""
MAX_TOKENS: Final = 250_000
"""The scan gives up (no id) after this many tokens (a quarter of a second): a run of brackets is one token,
so only a line that alternates them ("[][][]...") hundreds of thousands of times reaches it."""
_ID_VALUE: Final = re.compile(r'\s*:\s*(?:(-?(?:0|[1-9][0-9]*))|("[^"\\]*(?:\\.[^"\\]*)*"))\s*(?:[,}]|$)', re.DOTALL)
_SURROGATE: Final = re.compile("[\\ud800-\\udfff]")
_LONGEST_ID_KEY: Final = len('"\\u0069\\u0064"')


def holds_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a surrogate code point on its own: not Unicode text, and not sendable as UTF-8."""
    return _SURROGATE.search(text) is not None


def as_request_id(value: object) -> RequestId | None:
    """`value` if it is a valid MCP request id (an integer, not a boolean, or a string of Unicode text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and not holds_lone_surrogate(value):
        return value
    return None


def scan_top_level_id(text: str) -> RequestId | None:
    """The outermost object's `"id"` in `text` (which need not parse), or None when there is none to read.

    Linear in the length of `text`, with no recursion: strings are skipped whole, and only the depth
    of brackets is counted. Keys are looked at only in the outermost object, so an `"id"` inside
    `params` is never taken for the request's.
    """
    start = len(text) - len(text.lstrip())
    if not text.startswith("{", start):
        return None
    depth = 0
    expect_key = False
    for count, token in enumerate(_TOKENS.finditer(text, start)):
        begin, end = token.span()
        kind = text[begin]
        if count == MAX_TOKENS or (kind == '"' and end - begin == 1):
            return None  # too many tokens, or the line ends inside a string
        if kind == '"':
            if expect_key and depth == 1 and end - begin <= _LONGEST_ID_KEY and _is_id_key(text[begin:end]):
                value = _ID_VALUE.match(text, end)
                return _id_of(value) if value is not None else None
            expect_key = False
        elif kind in "[{":
            depth += end - begin
            expect_key = depth == 1
        elif kind in "]}":
            depth -= end - begin
            if depth <= 0:
                return None  # the outermost object closed without an id
        else:  # ","
            expect_key = depth == 1
    return None


def _is_id_key(literal: str) -> bool:
    if literal == '"id"':
        return True
    if "\\" not in literal:
        return False
    try:
        return bool(json.loads(literal) == "id")
    except ValueError:
        return False


def _id_of(value: re.Match[str]) -> RequestId | None:
    number, string = value.groups()
    try:
        return as_request_id(int(number) if number is not None else json.loads(string))
    except ValueError:  # more digits than int() converts, or a bad escape
        return None
