"""Figure 2: what a `generate_image` call through the stdio server adds to the bare HTTP request.

The baseline is the very request the server sent (body and headers as the emulator recorded
them after a warm-up call: `agent_reference`, `background: true`, `stream: true`), posted with
`httpx2.AsyncClient` to the same emulator with its whole SSE body read. The tool call and the
direct POST alternate, order flipping each pair; the comparison is the per-pair difference, so
it holds the server's parsing, decoding, atomic save, preview and the MCP round trip.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx2

from .common import Figure, Row, Stats, ms
from .harness import RESPONSES_SUFFIX, Served, generate, last_responses_post, replayable_headers, served

TARGET_ADDED_MS = 30.0
TARGET_SIZE = "1024x1024"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


async def _direct(http: httpx2.AsyncClient, url: str, body: object, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await http.post(url, json=body, headers=headers)
    response.raise_for_status()
    if b"response.completed" not in response.content:
        raise RuntimeError("the direct stream ended without response.completed")
    return time.perf_counter() - started


async def _tool(served_: Served, size: str) -> float:
    started = time.perf_counter()
    await generate(served_.client, PROMPT, size)
    return time.perf_counter() - started


async def _measure_size(
    served_: Served, http: httpx2.AsyncClient, size: str, repeat: int
) -> tuple[list[float], list[float]]:
    await generate(served_.client, PROMPT, size)  # warm-up: creates the agent version for this size
    sent = last_responses_post(served_.emulator)
    headers = replayable_headers(sent)
    url = served_.emulator.endpoint + RESPONSES_SUFFIX
    await _direct(http, url, sent.json, headers)  # warm-up: opens the keep-alive connection
    tool: list[float] = []
    direct: list[float] = []
    for i in range(repeat):
        if i % 2:
            tool.append(await _tool(served_, size))
            direct.append(await _direct(http, url, sent.json, headers))
        else:
            direct.append(await _direct(http, url, sent.json, headers))
            tool.append(await _tool(served_, size))
    return tool, direct


async def run(repeat: int, sizes: Sequence[str] = (TARGET_SIZE, "1536x1024")) -> Figure:
    figure = Figure("per_call", "2. Per-call overhead: generate_image over stdio vs direct httpx2 POST (PNG)")
    async with served() as served_, httpx2.AsyncClient(timeout=60) as http:
        for size in sizes:
            tool, direct = await _measure_size(served_, http, size, repeat)
            added = Stats.of([ms(t - d) for t, d in zip(tool, direct, strict=True)])
            target = size == TARGET_SIZE
            figure.rows.append(
                Row(
                    label=size,
                    measured=Stats.of([ms(v) for v in tool]),
                    baseline=Stats.of([ms(v) for v in direct]),
                    comparison=added,
                    unit="ms",
                    comparison_unit="ms added",
                    target=f"≤ {TARGET_ADDED_MS:.0f} ms added" if target else "—",
                    status=("PASS" if added.median <= TARGET_ADDED_MS else "FAIL") if target else "INFO",
                )
            )
    figure.notes.append("comparison: per-pair difference tool call − direct POST (same body, same emulator)")
    figure.notes.append("the tool call includes SSE parsing, base64 decoding, atomic save, preview and MCP framing")
    return figure
