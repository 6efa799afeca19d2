"""How long an in-flight record's blob lease lasts, and how often its owner renews it (no Azure import, so
that tests and the server's wiring can name it without loading the storage SDK)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

MIN_LEASE: Final = 15
MAX_LEASE: Final = 60
"""The finite lease durations the service accepts, in seconds."""


@dataclass(frozen=True)
class LeaseTiming:
    """A lease of `seconds` (15 to 60), renewed every `renew_every` seconds (a third of it by default), waiting
    with `sleep` and measuring with `clock`. Tests pass their own `sleep` and `clock`, so that no test waits
    for a lease to run out."""

    seconds: int = MAX_LEASE
    renew_every: float = MAX_LEASE / 3
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def __post_init__(self) -> None:
        if not MIN_LEASE <= self.seconds <= MAX_LEASE:
            raise ValueError(f"a lease lasts {MIN_LEASE} to {MAX_LEASE} seconds, not {self.seconds}")
        if not 0 < self.renew_every < self.seconds:
            raise ValueError("renew_every must be shorter than the lease")
