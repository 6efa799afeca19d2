"""Figure 4: partial-image event leaving the emulator → the client's progress notification.

`generate_image` runs with `partial_images=3` against an emulator that spaces partial images
by `partial_interval`. The client stamps `time.monotonic()` in its progress callback for each
"Partial image k of n: <uri>" message; the emulator stamped, in the same process, when it wrote
the partial event with `partial_image_index == k-1` to the stream (`sent_at`). The baseline is
the same latency for a direct `httpx2` SSE reader of the same request: the part that is
loopback HTTP and SSE framing, not the server.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx2

from mcp_server.emulator import RunningEmulator
from mcp_server.emulator.config import EmulatorConfig

from .common import Figure, Row, Stats, ms
from .harness import RESPONSES_SUFFIX, Served, generate, last_responses_post, replayable_headers, served

TARGET_MS = 20.0
PARTIALS = 3
PARTIAL_INTERVAL = 0.05
PARTIAL_EVENT = "response.image_generation_call.partial_image"
PROMPT = "a paper boat on a pond, watercolour"
MESSAGE = re.compile(r"^Partial image (\d+) of (\d+): (\S+)")


def _partial_sent_at(emulator: RunningEmulator, response_id: str) -> dict[int, float]:
    """partial_image_index → when the emulator wrote that event to the stream."""
    stored = emulator.state.responses[response_id]
    return {
        event["partial_image_index"]: stored.sent_at[event["sequence_number"]]
        for event in stored.events
        if event.get("type") == PARTIAL_EVENT
    }


async def _through_server(served_: Served, size: str) -> list[float]:
    received: dict[int, float] = {}

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        now = time.monotonic()
        match = MESSAGE.match(message or "")
        if match:
            received[int(match.group(1))] = now

    meta = await generate(served_.client, PROMPT, size, progress, partial_images=PARTIALS)
    sent = _partial_sent_at(served_.emulator, meta["response_id"])
    if sorted(received) != list(range(1, PARTIALS + 1)) or len(sent) != PARTIALS:
        raise RuntimeError(
            f"expected {PARTIALS} partial images, got progress {sorted(received)}, events {sorted(sent)}"
        )
    return [received[k] - sent[k - 1] for k in received]


async def _direct(
    http: httpx2.AsyncClient, emulator: RunningEmulator, body: Any, headers: dict[str, str]
) -> list[float]:
    received: dict[int, float] = {}
    response_id = ""
    async with http.stream("POST", emulator.endpoint + RESPONSES_SUFFIX, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            now = time.monotonic()
            event = json.loads(line[5:])
            if not response_id and isinstance(event.get("response"), dict):
                response_id = event["response"]["id"]
            if event.get("type") == PARTIAL_EVENT:
                received[event["partial_image_index"]] = now
    sent = _partial_sent_at(emulator, response_id)
    return [received[k] - sent[k] for k in received]


async def run(repeat: int, size: str = "1024x1024") -> Figure:
    config = EmulatorConfig(partial_interval=PARTIAL_INTERVAL)
    server: list[float] = []
    direct: list[float] = []
    async with served(config) as served_, httpx2.AsyncClient(timeout=60) as http:
        await _through_server(served_, size)  # warm-up: creates the agent version
        sent = last_responses_post(served_.emulator)
        headers = replayable_headers(sent)
        await _direct(http, served_.emulator, sent.json, headers)
        for _ in range(repeat):
            server.extend(await _through_server(served_, size))
            direct.extend(await _direct(http, served_.emulator, sent.json, headers))
    measured = Stats.of([ms(v) for v in server])
    figure = Figure("streaming", f"4. Streaming: partial image event → client progress notification ({size})")
    figure.rows.append(
        Row(
            label=f"{PARTIALS} partials, {PARTIAL_INTERVAL * 1000:.0f} ms apart",
            measured=measured,
            baseline=Stats.of([ms(v) for v in direct]),
            comparison=Stats.of([ms(s - d) for s, d in zip(server, direct, strict=True)]),
            unit="ms",
            comparison_unit="ms added",
            target=f"measured < {TARGET_MS:.0f} ms median",
            status="PASS" if measured.median < TARGET_MS else "FAIL",
        )
    )
    figure.notes.append("measured: emulator wrote the event → client progress callback ran (one monotonic clock)")
    figure.notes.append("baseline: the same event → a direct httpx2 SSE reader; comparison: paired difference")
    return figure
