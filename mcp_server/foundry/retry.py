"""When and how long to wait before trying a Foundry request again.

Retried: 408, 409, 429 and 5xx answers, and failures to connect (the request never left).
Never retried: other 4xx, and, for a create that is not idempotent, a failure after the
request was sent (the service may have accepted it) -- the caller checks first, by the tag
it put on the request. The server's own delay wins (`retry-after-ms`, then `retry-after` in
seconds or as an HTTP date), within the request's deadline; otherwise capped exponential
backoff with jitter, as the openai SDK does. No wait is started that would end after the caller's
own deadline (the enclosing anyio cancel scopes: a run's timeout, a `move_on_after` around the call):
the error is raised at once instead, saying how long the service asked to wait.

The waiting itself is injectable: `RetryPolicy.sleep`, `.clock` (the request's deadline),
`.wall_clock` (HTTP-date delays) and `.jitter` default to the real ones, and tests replace them
to run without waiting and to see the exact delays chosen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

import anyio
import httpx2

RETRY_STATUSES: Final = frozenset({408, 409, 429})

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    """Tries in all, the first included."""
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_server_delay: float = 60.0
    """A longer wait asked by the service is not worth holding a tool call for: the error says when to retry."""
    deadline: float = 90.0
    """Seconds one request may take, retries and waits included."""
    sleep: Sleep = field(default=anyio.sleep, compare=False, repr=False)
    """Waits between tries."""
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)
    """Measures the request's `deadline`."""
    wall_clock: Clock = field(default=time.time, compare=False, repr=False)
    """The current Unix time, against which a `retry-after` HTTP date is read."""
    jitter: Clock = field(default=random.random, compare=False, repr=False)
    """A number in [0, 1): the share of the 25 % jitter taken off a backoff delay."""


def retryable_status(response: httpx2.Response) -> bool:
    should = response.headers.get("x-should-retry", "").lower()
    if should in ("true", "false"):
        return should == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def server_delay(headers: httpx2.Headers, now: Clock = time.time) -> float | None:
    """The wait the service asked for, in seconds, or None when it did not say.

    `now` gives the current Unix time, for a `retry-after` written as an HTTP date.
    """
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(headers[name]) / 1000.0)
        except (KeyError, ValueError):
            continue
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None


def scope_time_left() -> float:
    """Seconds until the deadline of the enclosing cancel scopes (`anyio.move_on_after`, `fail_after`); infinite
    without one, negative once it passed. Read on anyio's own clock, whatever `RetryPolicy.clock` is."""
    return anyio.current_effective_deadline() - anyio.current_time()


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """Delay before try `attempt + 1` (attempt counts from 1), with up to 25 % jitter taken off."""
    delay: float = min(policy.base_delay * 2.0 ** (attempt - 1), policy.max_delay)
    return delay * (1 - 0.25 * policy.jitter())
