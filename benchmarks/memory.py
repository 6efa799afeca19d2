"""Figure 3: peak RSS of the server with N concurrent generations in flight over one stdio session.

Each repetition runs a fresh server: one warm-up generation (imports Pillow, creates the agent
version), then its idle `VmRSS`, then its peak is reset (`/proc/<pid>/clear_refs` ← 5, so the
warm-up does not count) and N `generate_image` calls go out at once; the peak is `VmHWM`
afterwards. The budget is idle + 3x the bytes of the N images returned.
"""

from __future__ import annotations

import statistics

import anyio

from mcp_server.emulator import EmulatorConfig

from .common import Figure, Row, Stats, proc_status_kib, reset_peak
from .harness import generate, served

TARGET_FACTOR = 3.0
MIB = 1024 * 1024
PHOTO_GRAIN = 40


async def _one_run(concurrency: int, size: str, grain: int) -> tuple[float, float, int, bool]:
    """(idle bytes, peak bytes, image bytes in flight, whether the peak could be reset) for one fresh server."""
    async with served(EmulatorConfig(grain=grain)) as served_:
        await generate(served_.client, "warm-up: a quiet harbour", size)
        idle = proc_status_kib(served_.pid, "VmRSS") * 1024.0
        reset = reset_peak(served_.pid)
        sizes: list[int] = []

        async def one(index: int) -> None:
            meta = await generate(served_.client, f"picture {index}: a busy market street in the rain", size)
            sizes.append(int(meta["bytes"]))

        async with anyio.create_task_group() as tg:
            for index in range(concurrency):
                tg.start_soon(one, index)
        peak = proc_status_kib(served_.pid, "VmHWM") * 1024.0
    return idle, peak, sum(sizes), reset


async def run(repeat: int, concurrency: int = 16, size: str = "1536x1024", *, judged_only: bool = False) -> Figure:
    """`judged_only` (smoke runs) measures only the judged row, the photo-like images."""
    figure = Figure("memory", f"3. Memory: peak RSS with {concurrency} concurrent {size} generations (stdio)")
    rows = (("flat emulator images", 0), ("photo-like images (grain)", PHOTO_GRAIN))
    for label, grain in rows[1:] if judged_only else rows:
        runs = [await _one_run(concurrency, size, grain) for _ in range(repeat)]
        _add_row(figure, label, runs, size, judged=grain > 0)
    figure.notes.append("comparison: (peak − idle) / image bytes in flight")
    figure.notes.append(
        "photo-like: the emulator adds film grain so PNGs weigh megabytes, as gpt-image-1's do; flat pictures "
        "compress to kilobytes, and one decoded bitmap then outweighs all the images in flight"
    )
    return figure


def _add_row(
    figure: Figure, label: str, runs: list[tuple[float, float, int, bool]], size: str, *, judged: bool
) -> None:
    """One row; only photo-like images are judged: with flat ones the budget is smaller than one bitmap."""
    idle = [r[0] for r in runs]
    peak = [r[1] for r in runs]
    in_flight = [r[2] for r in runs]
    factors = [(p - i) / b for i, p, b, _ in runs]
    passed = all(p < i + TARGET_FACTOR * b for i, p, b, _ in runs)
    figure.rows.append(
        Row(
            label=label,
            measured=Stats.of([p / MIB for p in peak]),
            baseline=Stats.of([i / MIB for i in idle]),
            comparison=Stats.of(factors),
            unit="MiB",
            comparison_unit="x image bytes",
            target=f"peak < idle + {TARGET_FACTOR:.0f}x image bytes",
            status=("PASS" if passed else "FAIL") if judged else "INFO",
        )
    )
    budget = Stats.of([(i + TARGET_FACTOR * b) / MIB for i, _, b, _ in runs])
    figure.notes.append(
        f"{label}: bytes in flight {Stats.of([b / MIB for b in in_flight]).show('MiB', 2)}; "
        f"budget (idle + {TARGET_FACTOR:.0f}x bytes) {budget.show('MiB')}"
    )
    width, height = (int(side) for side in size.split("x"))
    bitmap = width * height * 4  # Pillow keeps RGB and RGBA pixels in 4 bytes
    if bitmap > statistics.median(in_flight):
        figure.notes.append(
            f"{label}: one decoded {size} bitmap ({bitmap / MIB:.1f} MiB) outweighs all the image bytes in flight"
        )
    if not all(r[3] for r in runs):
        figure.notes.append("could not reset VmHWM after the warm-up: the peak may include it")
