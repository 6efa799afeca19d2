"""The doctor's table: its checks, one row per outcome, and the plain-text rendering."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

PASS: Final = "PASS"
WARN: Final = "WARN"
"""Works today but needs attention soon (e.g. an image model about to retire); counts as passed."""
FAIL: Final = "FAIL"
SKIP: Final = "SKIP"

CONFIGURATION: Final = "configuration"
STORE: Final = "store"
CREDENTIALS: Final = "credentials"
ENDPOINT: Final = "endpoint"
DEPLOYMENTS: Final = "deployments"
AGENT: Final = "agent"
IMAGE_DEPLOYMENT: Final = "image deployment"
LIVE: Final = "live generation"
CHECKS: Final = (CONFIGURATION, STORE, CREDENTIALS, ENDPOINT, DEPLOYMENTS, AGENT, IMAGE_DEPLOYMENT, LIVE)

HEADERS: Final = ("check", "result", "detail", "fix")
GAP: Final = "  "


@dataclass(frozen=True)
class Row:
    check: str
    result: str
    detail: str
    fix: str = ""
    blocked: bool = False
    """A SKIP because an earlier check failed: counts as not passed."""

    @property
    def ok(self) -> bool:
        return self.result in (PASS, WARN) or (self.result == SKIP and not self.blocked)


def after(check: str) -> tuple[str, ...]:
    """The checks that come after `check` in the table."""
    return CHECKS[CHECKS.index(check) + 1 :]


def blocked(checks: Iterable[str], by: str, *, live: bool) -> list[Row]:
    """The rows of checks that cannot run because `by` failed; the live check without --live is a plain SKIP."""
    rows = []
    for check in checks:
        if check == LIVE and not live:
            rows.append(Row(LIVE, SKIP, "run with --live"))
        else:
            rows.append(Row(check, SKIP, f"not run: {by} failed", blocked=True))
    return rows


def safe_url(url: str) -> str:
    """`url` without any user:password part, so that the table never shows one."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def render(rows: list[Row], width: int | None = None) -> str:
    """The rows as a plain-text table; detail and fix wrap to fit `width` (the terminal's, or 160)."""
    total = width or shutil.get_terminal_size((160, 24)).columns
    check_w = max(len(HEADERS[0]), *(len(row.check) for row in rows))
    result_w = max(len(HEADERS[1]), *(len(row.result) for row in rows))
    room = max(total - check_w - result_w - 3 * len(GAP), 70)
    fix_w = max(30, room * 2 // 5, _longest_word(row.fix for row in rows))
    detail_w = max(room - fix_w, _longest_word(row.detail for row in rows))
    widths = (check_w, result_w, detail_w, fix_w)
    lines = [_line(HEADERS, widths), _line(tuple("-" * w for w in widths), widths)]
    for row in rows:
        detail = _wrap(row.detail, detail_w)
        fix = _wrap(row.fix, fix_w)
        for index in range(max(len(detail), len(fix))):
            first = index == 0
            cells = (
                row.check if first else "",
                row.result if first else "",
                detail[index] if index < len(detail) else "",
                fix[index] if index < len(fix) else "",
            )
            lines.append(_line(cells, widths))
    return "\n".join(lines)


def _longest_word(texts: Iterable[str]) -> int:
    """Columns grow to hold their longest word, so that a URL or a path is never cut in two."""
    return max((len(word) for text in texts for word in text.split()), default=0)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
