"""Every retry branch of `FoundryHttp.send`, against `httpx2.MockTransport`, with injected time.

Nothing here waits: the policy's `sleep` records each delay and moves a fake clock, so each test
asserts the exact delays chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio.lowlevel
import httpx2
import pytest

from mcp_server.errors import RateLimitedError, ServiceRefusedError, ServiceUnreachableError
from mcp_server.foundry.http import AmbiguousRequestError, FoundryHttp
from mcp_server.foundry.retry import RetryPolicy, backoff, server_delay

pytestmark = pytest.mark.anyio

WALL = datetime(2026, 3, 4, 7, 37, 0, tzinfo=UTC)
SERVER_ERROR = {"error": {"code": "server_error", "message": "boom", "type": "server_error", "param": None}}


@dataclass
class FakeTime:
    """A monotonic clock that moves only when someone sleeps on it."""

    now: float = 100.0
    waits: list[float] = field(default_factory=list[float])

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()

    def policy(self, jitter: float = 0.0, **overrides: Any) -> RetryPolicy:
        return RetryPolicy(
            sleep=self.sleep,
            clock=self.clock,
            wall_clock=WALL.timestamp,
            jitter=lambda: jitter,
            **overrides,
        )


Reply = httpx2.Response | Exception
Handler = Callable[[httpx2.Request], httpx2.Response]


def scripted(replies: list[Reply], seen: list[httpx2.Request]) -> Handler:
    """A handler that answers with `replies` in turn (an exception is raised), then 200 `{}` forever."""
    queue: Iterator[Reply] = iter(replies)

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        reply = next(queue, httpx2.Response(200, json={"ok": True}))
        if isinstance(reply, Exception):
            raise reply
        return reply

    return handle


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


async def send(
    replies: list[Reply], policy: RetryPolicy, *, method: str = "GET", idempotent: bool = True
) -> tuple[dict[str, Any], list[httpx2.Request]]:
    seen: list[httpx2.Request] = []
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(scripted(replies, seen)), base_url="http://foundry/")
    http = FoundryHttp(client, image_deployment="gpt-image-1", retry=policy)
    try:
        body = await http.request_json(method, "openai/v1/responses", idempotent=idempotent, what="test")
    finally:
        await http.aclose()
    return body, seen


def error(status: int, headers: dict[str, str] | None = None, body: Any = SERVER_ERROR) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, json=body)


# ------------------------------------------------------------------ the server's own delay


async def test_429_waits_the_retry_after_seconds(time_: FakeTime) -> None:
    body, seen = await send([error(429, {"retry-after": "3"})], time_.policy())
    assert body == {"ok": True} and len(seen) == 2
    assert time_.waits == [3.0]


async def test_retry_after_ms_wins_over_retry_after(time_: FakeTime) -> None:
    await send([error(429, {"retry-after": "1", "retry-after-ms": "150"})], time_.policy())
    assert time_.waits == [0.15]


async def test_x_ms_retry_after_ms_is_honoured(time_: FakeTime) -> None:
    await send([error(429, {"x-ms-retry-after-ms": "250"})], time_.policy())
    assert time_.waits == [0.25]


async def test_retry_after_as_an_http_date_is_read_against_the_injected_wall_clock(time_: FakeTime) -> None:
    when = format_datetime(WALL + timedelta(seconds=7), usegmt=True)
    await send([error(429, {"retry-after": when})], time_.policy())
    assert time_.waits == [7.0]


async def test_an_http_date_in_the_past_means_at_once(time_: FakeTime) -> None:
    when = format_datetime(WALL - timedelta(seconds=30), usegmt=True)
    await send([error(503, {"retry-after": when})], time_.policy())
    assert time_.waits == [0.0]


def test_an_unreadable_retry_after_is_no_delay_at_all() -> None:
    assert server_delay(httpx2.Headers({"retry-after": "soon"})) is None
    assert server_delay(httpx2.Headers({"retry-after-ms": "x", "retry-after": "2"})) == 2.0
    assert server_delay(httpx2.Headers({})) is None


async def test_a_server_delay_above_max_server_delay_is_not_waited(time_: FakeTime) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await send([error(429, {"retry-after": "120"})], time_.policy(max_server_delay=60.0, deadline=1000.0))
    assert time_.waits == []
    assert "wait 120 s" in (caught.value.hint or "")


# ------------------------------------------------------------------ backoff


async def test_without_a_header_the_backoff_doubles_up_to_max_delay(time_: FakeTime) -> None:
    policy = time_.policy(attempts=6, base_delay=0.5, max_delay=2.0)
    _, seen = await send([error(503)] * 5, policy)
    assert len(seen) == 6
    assert time_.waits == [0.5, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
async def test_jitter_takes_at_most_a_quarter_off(time_: FakeTime, jitter: float) -> None:
    await send([error(500), error(500)], time_.policy(jitter=jitter, base_delay=1.0))
    assert time_.waits == pytest.approx([1.0 * (1 - 0.25 * jitter), 2.0 * (1 - 0.25 * jitter)])


def test_the_default_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    delays = {backoff(3, policy) for _ in range(200)}
    assert all(3.0 <= delay <= 4.0 for delay in delays)
    assert len(delays) > 1, "the jitter is random"


# ------------------------------------------------------------------ what is retried


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(time_: FakeTime, status: int) -> None:
    body, seen = await send([error(status)], time_.policy())
    assert body == {"ok": True} and len(seen) == 2 and time_.waits == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_client_errors_are_not_retried(time_: FakeTime, status: int) -> None:
    with pytest.raises(Exception) as caught:
        await send([error(status)], time_.policy())
    assert getattr(caught.value, "status", None) == status
    assert time_.waits == []


async def test_x_should_retry_true_retries_a_400(time_: FakeTime) -> None:
    body, seen = await send([error(400, {"x-should-retry": "true"})], time_.policy())
    assert body == {"ok": True} and len(seen) == 2


async def test_x_should_retry_false_stops_a_503(time_: FakeTime) -> None:
    replies: list[Reply] = [error(503, {"x-should-retry": "false", "retry-after": "1"})]
    with pytest.raises(ServiceRefusedError) as caught:
        await send(replies, time_.policy())
    assert caught.value.status == 503 and time_.waits == []


async def test_attempts_bound_the_tries(time_: FakeTime) -> None:
    with pytest.raises(ServiceRefusedError):
        await send([error(500)] * 10, time_.policy(attempts=3))
    assert len(time_.waits) == 2


async def test_the_per_request_deadline_stops_retrying_before_it_would_be_passed(time_: FakeTime) -> None:
    policy = time_.policy(attempts=10, deadline=10.0)
    with pytest.raises(ServiceRefusedError):
        await send([error(503, {"retry-after": "4"})] * 10, policy)
    # Waited 4 + 4; a third wait would end at 12 s, past the 10 s deadline.
    assert time_.waits == [4.0, 4.0]


async def test_time_spent_in_requests_counts_against_the_deadline(time_: FakeTime) -> None:
    seen: list[httpx2.Request] = []

    def slow(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        time_.now += 6.0  # each answer takes 6 s
        return error(500)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(slow), base_url="http://foundry/")
    http = FoundryHttp(client, image_deployment="gpt-image-1", retry=time_.policy(attempts=10, deadline=10.0))
    with pytest.raises(ServiceRefusedError):
        await http.request_json("GET", "x", what="test")
    assert len(seen) == 2 and time_.waits == [0.5]


# ------------------------------------------------------------------ transport failures


@pytest.mark.parametrize("failure", [httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout])
async def test_a_request_that_never_left_is_retried_even_when_not_idempotent(
    time_: FakeTime, failure: type[httpx2.TransportError]
) -> None:
    body, seen = await send([failure("refused")], time_.policy(), method="POST", idempotent=False)
    assert body == {"ok": True} and len(seen) == 2 and time_.waits == [0.5]


async def test_connect_errors_give_up_as_unreachable_after_the_attempts(time_: FakeTime) -> None:
    with pytest.raises(ServiceUnreachableError) as caught:
        await send([httpx2.ConnectError("refused")] * 4, time_.policy())
    assert not isinstance(caught.value, AmbiguousRequestError)
    assert "AZURE_AI_PROJECT_ENDPOINT" in (caught.value.hint or "")


@pytest.mark.parametrize("failure", [httpx2.ReadError, httpx2.RemoteProtocolError, httpx2.ReadTimeout])
async def test_a_create_that_failed_after_it_was_sent_is_not_retried(
    time_: FakeTime, failure: type[httpx2.TransportError]
) -> None:
    seen: list[httpx2.Request] = []
    client = httpx2.AsyncClient(
        transport=httpx2.MockTransport(scripted([failure("cut")], seen)), base_url="http://foundry/"
    )
    http = FoundryHttp(client, image_deployment="gpt-image-1", retry=time_.policy())
    with pytest.raises(AmbiguousRequestError) as caught:
        await http.request_json("POST", "openai/v1/responses", json_body={}, idempotent=False, what="create")
    assert len(seen) == 1 and time_.waits == []
    assert caught.value.code == "ambiguous"


async def test_an_idempotent_request_that_failed_after_it_was_sent_is_retried(time_: FakeTime) -> None:
    body, seen = await send([httpx2.ReadError("cut")], time_.policy())
    assert body == {"ok": True} and len(seen) == 2


# ------------------------------------------------------------------ the caller's own deadline


async def test_a_429_asking_longer_than_the_caller_has_left_is_raised_at_once(time_: FakeTime) -> None:
    with anyio.move_on_after(5) as scope, pytest.raises(RateLimitedError) as caught:
        await send([error(429, {"retry-after": "30"})], time_.policy())
    assert time_.waits == [] and not scope.cancelled_caught, "no wait started, nothing cut short"
    rate_limited = caught.value
    assert rate_limited.code == "rate_limited" and rate_limited.retry_after == 30.0
    assert "Foundry asked to wait 30 s before retrying" in str(rate_limited)
    assert rate_limited.to_dict()["retry_after_seconds"] == 30.0


async def test_a_429_is_waited_when_the_caller_has_time_for_it(time_: FakeTime) -> None:
    with anyio.move_on_after(60):
        body, seen = await send([error(429, {"retry-after": "30"})], time_.policy())
    assert body == {"ok": True} and len(seen) == 2 and time_.waits == [30.0]


async def test_the_nearest_enclosing_deadline_counts(time_: FakeTime) -> None:
    with anyio.fail_after(10), anyio.move_on_after(600), pytest.raises(RateLimitedError):
        await send([error(429, {"retry-after-ms": "20000"})], time_.policy())
    assert time_.waits == []


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (error(503, {"retry-after": "2"}), ServiceRefusedError),
        (error(500), ServiceRefusedError),
        (httpx2.ConnectError("refused"), ServiceUnreachableError),
    ],
)
async def test_no_retry_wait_starts_that_cannot_end_in_time(
    time_: FakeTime, reply: Reply, raised: type[Exception]
) -> None:
    # The backoff after a 500 or a refused connection is 0.5 s; the 503 asks for 2 s: none fits in 0.3 s.
    with anyio.move_on_after(0.3) as scope, pytest.raises(raised):
        await send([reply], time_.policy())
    assert time_.waits == [] and not scope.cancelled_caught


async def test_retries_go_on_while_each_wait_fits(time_: FakeTime) -> None:
    with anyio.move_on_after(30):
        body, seen = await send([error(503, {"retry-after": "2"}), error(500)], time_.policy())
    assert body == {"ok": True} and len(seen) == 3 and time_.waits == [2.0, 1.0]


# ------------------------------------------------------------------ the wait, machine-readable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "1"}, 1.0), ({"retry-after-ms": "100", "retry-after": "1"}, 0.1), ({}, None)],
)
async def test_the_asked_wait_is_kept_on_the_final_error(
    time_: FakeTime, headers: dict[str, str], expected: float | None
) -> None:
    with pytest.raises(ServiceRefusedError) as caught:
        await send([error(503, headers)] * 4, time_.policy())
    assert caught.value.retry_after == expected
    assert caught.value.to_dict()["retry_after_seconds"] == expected
    said = "Foundry asked to wait" in (caught.value.hint or "")
    assert said is (expected is not None)


async def test_a_429_without_a_delay_says_to_wait_a_minute(time_: FakeTime) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await send([error(429)] * 4, time_.policy())
    assert caught.value.retry_after is None and "Wait a minute" in (caught.value.hint or "")
