"""When and how long to wait before trying a Foundry request again.

Retried: 408, 409, 429 and 5xx answers, and failures to connect (the request never left).
Never retried: other 4xx, and, for a create that is not idempotent, a failure after the
request was sent (the service may have accepted it) -- the caller checks first, by the tag
it put on the request. The server's own delay wins (`retry-after-ms`, then `retry-after` in
seconds or as an HTTP date), within the request's deadline; otherwise capped exponential
backoff with jitter, as the openai SDK does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import httpx2

RETRY_STATUSES: Final = frozenset({408, 409, 429})


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


def retryable_status(response: httpx2.Response) -> bool:
    should = response.headers.get("x-should-retry", "").lower()
    if should in ("true", "false"):
        return should == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def server_delay(headers: httpx2.Headers) -> float | None:
    """The wait the service asked for, in seconds, or None when it did not say."""
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)):
        try:
            return max(0.0, float(headers[name]) / scale)
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
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """Delay before try `attempt + 1` (attempt counts from 1), with up to 25 % jitter taken off."""
    delay: float = min(policy.base_delay * 2.0 ** (attempt - 1), policy.max_delay)
    return delay * (1 - 0.25 * random.random())
