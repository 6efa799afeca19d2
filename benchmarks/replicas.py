"""Figure 8: two stateless replicas on one Azure Blob Storage container (Azurite) against one.

The load of figure 5 (`http_load.run_load`: 8 clients, each its own principal and MCP session over streamable
HTTP, x 25 concurrent `generate_image` calls, emulator latency 1 s, every image read back and compared with the
emulator's bytes) against `serve --transport http --stateless` with `FOUNDRY_IMAGE_MCP_STORE=azure-blob`:

- one replica, `FOUNDRY_IMAGE_MCP_MAX_CONCURRENT=16`, on a fresh container;
- then that replica and a second one on the same container (started with the first, idle until then: no request
  reaches it, and its first rescan of the store is 60 s away), 16 each, every client's requests alternating
  between them as a load balancer without affinity sends them (`http_load.Alternating`): half the calls go to each
  replica, and the read-backs alternate too (a read-back may reach the replica that did not store the image).

Each is judged as figure 5 is, against its ideal schedule: ceil(200 / 16) x 1 s = 13 s for one replica,
ceil(200 / 32) x 1 s = 7 s for two (at most 1.3x, 0 failures, exact bytes); the ratio two / one is reported beside
its ideal (7 / 13 = 0.54). The emulator, both replicas, Azurite and the clients share this machine's CPUs: the
CPU time each used while the calls ran is reported, with the least wall time that much CPU needs on these CPUs.
"""

from __future__ import annotations

import math
import os
import secrets
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from mcp import Client

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

from .azurite import Azurite, AzuriteUnavailable, azurite_running, missing, skipped
from .common import Figure, Row, Stats, proc_status_kib, reset_peak, server_env
from .http_load import Alternating, HttpServer, Load, auth_tokens, run_load, session, tokens_for, warm_up
from .throughput import MIB, TARGET_RATIO

TITLE = "8. Two replicas"


@dataclass(frozen=True)
class _Measured:
    load: Load
    requests: list[int]
    """HTTP requests each replica received (sessions and read-backs included)."""
    peaks: list[float]
    """Each replica's peak RSS while this load ran (bytes)."""


async def _stop(servers: list[HttpServer]) -> None:
    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(anyio.to_thread.run_sync, server.stop)


async def _measure(
    servers: list[HttpServer], azurite: Azurite, emulator: RunningEmulator, tokens: list[str], calls: int
) -> _Measured:
    """The load, every client's requests alternating between `servers`."""
    ports = [server.port for server in servers]
    transports: list[Alternating] = []

    @asynccontextmanager
    async def connect(token: str) -> AsyncIterator[Client]:
        transport = Alternating(ports)
        transports.append(transport)
        async with session(servers[0].url, token, transport) as client:
            yield client

    for server in servers:
        reset_peak(server.process.pid)
    load = await run_load(connect, emulator, tokens, calls, [*(s.process.pid for s in servers), azurite.pid])
    sent = Counter(port for transport in transports for port in transport.sent_to)
    peaks = [proc_status_kib(server.process.pid, "VmHWM") * 1024.0 for server in servers]
    return _Measured(load, [sent[port] for port in ports], peaks)


async def _one_then_two(
    azurite: Azurite, emulator: RunningEmulator, tokens: list[str], calls: int, cap: int
) -> tuple[_Measured, _Measured]:
    """The load against one replica, then against it and a second one on the same container (started with the
    first, and idle until then)."""
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as out:
        env = {
            **server_env(emulator.endpoint, Path(out)),
            "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT": str(cap),
            "FOUNDRY_IMAGE_MCP_AUTH_TOKENS": auth_tokens(tokens),
            "FOUNDRY_IMAGE_MCP_STORE": "azure-blob",
            "FOUNDRY_IMAGE_MCP_BLOB_CONNECTION_STRING": azurite.connection_string(),
            "FOUNDRY_IMAGE_MCP_BLOB_CONTAINER": f"bench-{secrets.token_hex(6)}",
        }
        servers: list[HttpServer] = []
        try:
            async with anyio.create_task_group() as tg:  # side by side: a start is mostly imports

                async def start() -> None:
                    servers.append(await anyio.to_thread.run_sync(HttpServer, env, ["--stateless"]))
                    await warm_up(servers[-1].url, tokens[0])  # creates or finds the agent version

                for _ in range(2):
                    tg.start_soon(start)
            measured = [await _measure(servers[:n], azurite, emulator, tokens, calls) for n in (1, 2)]
        finally:
            await _stop(servers)
    return measured[0], measured[1]


def _cpu(load: Load) -> str:
    """Where the CPU went while the calls ran (`load.cpu`: this process, the replicas, Azurite)."""
    here, *replicas, azurite = load.cpu
    cpus = os.cpu_count() or 1
    shares = [
        f"clients + emulator {here:.1f} s",
        "replica" + ("s " if len(replicas) > 1 else " ") + " + ".join(f"{cpu:.1f}" for cpu in replicas) + " s",
        f"Azurite {azurite:.1f} s",
    ]
    floor = sum(load.cpu) / cpus
    return (
        f"{', '.join(shares)}: {floor / load.wall:.0%} of {cpus} CPUs x {load.wall:.1f} s "
        f"(that much CPU takes {floor:.1f} s on {cpus} CPUs at best)"
    )


def _row(label: str, load: Load, baseline: float, unit: str, ideal: float) -> Row:
    """PASS/FAIL against the ideal schedule, or INFO when the CPU the whole run needed (clients, emulator, Azurite
    and replicas on this one machine) takes longer than that ideal: the target cannot be judged here."""
    ratio = load.wall / ideal
    correct = load.failures == 0 and load.mismatches == 0
    ok = correct and ratio <= TARGET_RATIO
    cpu_bound = sum(load.cpu) / (os.cpu_count() or 1) > ideal
    return Row(
        label=label,
        measured=Stats.of([load.wall]),
        baseline=Stats.of([baseline]),
        comparison=Stats.of([load.wall / baseline]),
        unit="s",
        comparison_unit=unit,
        target=f"≤ {TARGET_RATIO}x ideal ({ideal:g} s), 0 failures",
        status="PASS" if ok else "INFO" if correct and cpu_bound else "FAIL",
        digits=2,
    )


async def run(clients: int = 8, calls: int = 25, latency: float = 1.0, cap: int = 16) -> Figure:
    figure = Figure("replicas", f"{TITLE}: {clients} clients x {calls} calls, one stateless replica vs two")
    reason = missing()
    if reason is not None:
        return skipped(figure, reason)
    tokens = tokens_for(clients)
    total = clients * calls
    ideal = {n: math.ceil(total / (n * cap)) * latency for n in (1, 2)}
    try:
        with azurite_running() as azurite, start_emulator(EmulatorConfig(latency=latency)) as emulator:
            first, second = await _one_then_two(azurite, emulator, tokens, calls, cap)
    except AzuriteUnavailable as exc:
        return skipped(figure, str(exc))
    one, two = first.load, second.load
    figure.rows.append(_row(f"one replica, cap {cap}, latency {latency:g} s", one, ideal[1], "x ideal", ideal[1]))
    figure.rows.append(_row(f"two replicas, cap {cap} each (vs one)", two, one.wall, "x one replica", ideal[2]))
    figure.notes.append(
        f"ideal schedules: ceil({total} / {cap}) x {latency:g} s = {ideal[1]:g} s (one), "
        f"ceil({total} / {2 * cap}) x {latency:g} s = {ideal[2]:g} s (two); two / one ideally {ideal[2] / ideal[1]:.2f}"
    )
    figure.notes.append(f"two replicas: {two.wall / ideal[2]:.2f}x their ideal")
    for name, load in (("one replica", one), ("two replicas", two)):
        figure.notes.append(f"{name}: {load.verdict}")
    for name, load in (("one replica", one), ("two replicas", two)):
        figure.notes.append(f"CPU during the calls, {name}: {_cpu(load)}")
    figure.notes.append(f"HTTP requests per replica (two; sessions and read-backs included): {second.requests}")
    figure.notes.append(
        f"peak RSS: one replica {first.peaks[0] / MIB:.1f} MiB; two replicas "
        + " and ".join(f"{peak / MIB:.1f}" for peak in second.peaks)
        + " MiB"
    )
    return figure
