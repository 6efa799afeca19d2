"""The names of the emulator's injectable faults, and the `NAME[:COUNT]` spec the CLI takes.

Dependency-free, so that the configuration and the state can check names without importing the
faults' behaviour (`faults.py`, which documents each fault).
"""

from __future__ import annotations

from typing import Final

FAULTS: Final[tuple[str, ...]] = (
    "429",
    "429-bare",
    "429-long",
    "500",
    "502",
    "503",
    "reset",
    "reset-after-accept",
    "json-reset-after-accept",
    "not-json-after-accept",
    "event-not-json-after-accept",
    "stall",
    "truncate-body",
    "truncate-stream",
    "filter-400",
    "filter-400-array",
    "moderation-blocked",
    "image-header-missing",
    "agent-field",
    "filter-failed",
    "filter-call",
    "filter-incomplete",
    "token-expired",
    "forbidden-preview",
    "deployment-missing",
)
PROCESSED_FILTERS: Final = frozenset({"filter-failed", "filter-call", "filter-incomplete"})
"""Content-filter faults that shape a generated response rather than refusing the request."""
UNREADABLE_AFTER_ACCEPT: Final = frozenset(
    {"json-reset-after-accept", "not-json-after-accept", "event-not-json-after-accept"}
)
"""Faults that let a responses create be processed, then answer it with something the client cannot read."""
BUFFERED_ANSWERS: Final = frozenset({"json-reset-after-accept", "not-json-after-accept"})
"""Of those, the ones whose streamed create is answered, as a buffering proxy would, only once the response ended."""


def check_fault(name: str) -> str:
    if name not in FAULTS:
        raise ValueError(f"unknown emulator fault {name!r}; known faults: {', '.join(FAULTS)}")
    return name


def parse_fault_spec(spec: str) -> tuple[str, int]:
    """`NAME[:COUNT]` (the CLI's `--fault`), COUNT defaulting to 1."""
    name, colon, count = spec.partition(":")
    times = 1
    if colon:
        try:
            times = int(count)
        except ValueError:
            raise ValueError(f"invalid fault count {count!r} in {spec!r}") from None
    if times < 1:
        raise ValueError(f"the fault count must be at least 1, not {times}")
    return check_fault(name), times
