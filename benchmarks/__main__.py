"""`python -m benchmarks`: every figure against its baseline, measured in this run, on this machine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from mcp_server.emulator import EmulatorConfig, start_emulator

from . import blob_listing, cold_start, listing, memory, per_call, replicas, streaming, throughput
from .common import Figure, format_figure, format_machine, machine_info


@dataclass(frozen=True)
class Plan:
    """Repetitions per figure, and the workload sizes."""

    cold_start: int
    per_call: int
    memory: int
    streaming: int
    concurrency: int = 16
    memory_size: str = "1536x1024"
    throughput: dict[str, Any] = field(default_factory=dict[str, Any])
    listing: int = 30
    """Repetitions of each listing measurement (the baseline, which parses every sidecar, runs `listing_baseline`)."""
    listing_images: int = 100_000
    listing_baseline: int = 2
    blob_images: int = 10_000
    """Images in the container of the blob listing figure (timed `listing` times each)."""
    replicas: dict[str, Any] = field(default_factory=dict[str, Any])
    """The load of the two-replica figure (figure 5's parameters)."""
    smoke: bool = False
    """A smoke run proves each figure still runs: no warm-up launches, only the judged memory row."""


DEFAULT = Plan(cold_start=15, per_call=30, memory=3, streaming=10)
SMOKE_LOAD: dict[str, Any] = {"clients": 2, "calls": 3, "latency": 0.2, "cap": 4}
SMOKE = Plan(
    cold_start=2,
    per_call=2,
    memory=1,
    streaming=1,
    concurrency=4,
    memory_size="1024x1024",
    throughput=SMOKE_LOAD,
    listing=2,
    listing_images=500,
    listing_baseline=1,
    blob_images=300,
    replicas=SMOKE_LOAD,
    smoke=True,
)
FIGURES = ("cold_start", "per_call", "memory", "streaming", "throughput", "listing", "blob_listing", "replicas")


def _plan(args: argparse.Namespace) -> Plan:
    base = SMOKE if args.smoke else DEFAULT
    if args.repeat is None:
        return base
    n = args.repeat
    return replace(base, cold_start=n, per_call=n, memory=max(1, n // 5), streaming=n, listing=n)


def _cold_start(plan: Plan) -> Figure:
    # The server only needs a reachable endpoint in its configuration; nothing is called before a tool call.
    with start_emulator(EmulatorConfig()) as emulator:
        return cold_start.run(emulator.endpoint, plan.cold_start, warm_up=not plan.smoke)


def _runners(plan: Plan) -> dict[str, Callable[[], Figure]]:
    def in_loop(make: Callable[[], Awaitable[Figure]]) -> Callable[[], Figure]:
        return lambda: anyio.run(make)

    return {
        "cold_start": lambda: _cold_start(plan),
        "per_call": in_loop(lambda: per_call.run(plan.per_call)),
        "memory": in_loop(lambda: memory.run(plan.memory, plan.concurrency, plan.memory_size, judged_only=plan.smoke)),
        "streaming": in_loop(lambda: streaming.run(plan.streaming)),
        "throughput": in_loop(lambda: throughput.run(**plan.throughput)),
        "listing": lambda: listing.run(plan.listing, plan.listing_images, plan.listing_baseline),
        "blob_listing": in_loop(lambda: blob_listing.run(plan.listing, plan.blob_images)),
        "replicas": in_loop(lambda: replicas.run(**plan.replicas)),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeat", type=int, help="repetitions per figure (default: 15 cold starts, 30 calls, ...)")
    parser.add_argument("--smoke", action="store_true", help="1-2 repetitions and small workloads; for CI")
    parser.add_argument("--only", choices=FIGURES, action="append", help="run only this figure (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures and the machine as JSON to this path")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        _parser().error("--repeat must be at least 1")
    plan = _plan(args)
    machine = machine_info()
    print(format_machine(machine), flush=True)
    print("All figures on loopback against the in-process Foundry emulator (latency 0 unless noted).\n", flush=True)
    runners = _runners(plan)
    figures: list[Figure] = []
    started = time.monotonic()
    for name in args.only or FIGURES:
        figure = runners[name]()
        figures.append(figure)
        print(format_figure(figure) + "\n", flush=True)
    elapsed = time.monotonic() - started
    print(f"Done in {elapsed:.0f} s.", flush=True)
    if args.json is not None:
        report = {"machine": machine, "elapsed_seconds": elapsed, "figures": [f.to_json() for f in figures]}
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.strict and any(f.status == "FAIL" for f in figures):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
