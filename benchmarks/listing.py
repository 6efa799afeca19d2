"""Figure 6: listing and looking up stored images at N images (100,000 by default): the SQLite index
(`mcp_server/images/index.py`) against today's `DiskFiles`, which parses every sidecar on every listing.

A temporary directory is filled with N images the way the store lays them out, written fast: each sidecar is one
fixed record (a realistic prompt, revised prompt and options) dumped with its own id by `json.dumps` and written
with `os.write`, beside a 4-byte image file (the store only checks that the file exists); ids one second apart.

With the index built and in step with the directory: the first page (`page(None, 100)`, including the `sync` a
listing starts with), a deep page (page 500, reached once through the successive cursors, then timed alone,
repeatedly) and `get(id)` of ids spread over the directory; each the median over the repetitions. The baseline,
in the same run, is today's code: `DiskFiles(root).records()` sliced to the same page, and `DiskFiles(root).get`
of the same ids. Peak RSS growth while listing every page is measured in a fresh process, at N and at N/10: ours
must not grow with N.

`python -m benchmarks.listing index|baseline DIR` is that fresh process: it prints its RSS before and its peak
while listing every page of DIR, as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_server.images.index import ImageIndex
from mcp_server.images.records import ImageRecord, new_record
from mcp_server.images.store import DiskFiles

from .common import PROJECT_ROOT, Figure, Row, Stats, ms, proc_status_kib, reset_peak

TARGET_MS = 20.0
TARGET_RSS_GROWTH_MIB = 4.0
PAGE = 100
DEEP_PAGE = 500
START = datetime(2025, 1, 1, tzinfo=UTC)
TINY_IMAGE = b"\x89PNG"
METADATA: dict[str, Any] = {
    "prompt": "a lighthouse on a cliff at dusk, oil painting, warm light on the rocks, gulls over the water",
    "revised_prompt": "An oil painting of a white lighthouse on a rugged cliff at dusk: warm orange light on the "
    "rocks, a calm sea below, gulls circling, loose visible brushstrokes.",
    "options": {"size": "1024x1024", "quality": "medium", "output_format": "png", "background": "auto"},
    "response_id": "resp_0123456789abcdef0123456789abcdef",
}
"""A realistic record's metadata: every stored image of the listing figures carries it."""


def sample_record(image: str, data: bytes = b"") -> ImageRecord:
    """The record of a 1024x1024 PNG stored under `image` with `METADATA`."""
    return new_record(data, output_format="png", width=1024, height=1024, metadata=METADATA, image_id=image)


TEMPLATE = sample_record("img-20250101-000000-00000000").model_dump(mode="json")


def image_id(n: int) -> str:
    return f"img-{START + timedelta(seconds=n):%Y%m%d-%H%M%S}-{n:08x}"


def populate(root: Path, count: int) -> float:
    """Write `count` images into `root` (a sidecar and a tiny image file each); the seconds it took."""
    root.mkdir(parents=True)
    started = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for n in range(count):
        name = image_id(n)
        sidecar = json.dumps({**TEMPLATE, "image_id": name, "file_name": f"{name}.png"}, indent=2).encode()
        for file_name, data in ((f"{name}.png", TINY_IMAGE), (f"{name}.json", sidecar)):
            fd = os.open(root / file_name, flags, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
    return time.perf_counter() - started


def _timed(call: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append(ms(time.perf_counter() - started))
    return samples


def _timed_each(call: Callable[[str], object], ids: Sequence[str]) -> list[float]:
    samples = []
    for image in ids:
        started = time.perf_counter()
        call(image)
        samples.append(ms(time.perf_counter() - started))
    return samples


def _cursor_of_page(index: ImageIndex, number: int) -> str | None:
    """The cursor page `number` (1-based) is listed with, walking the pages before it."""
    cursor: str | None = None
    for _ in range(number - 1):
        _, cursor = index.page(cursor, PAGE)
    return cursor


def _row(label: str, ours: list[float], today: list[float] | None, *, judged: bool, digits: int = 2) -> Row:
    measured = Stats.of(ours)
    return Row(
        label=label,
        measured=measured,
        baseline=Stats.of(today) if today else None,
        comparison=Stats.of([t / measured.median for t in today]) if today else None,
        unit="ms",
        comparison_unit="x faster",
        target=f"≤ {TARGET_MS:.0f} ms" if judged else "—",
        status=("PASS" if measured.median <= TARGET_MS else "FAIL") if judged else "INFO",
        digits=digits,
    )


def _timings(root: Path, count: int, repeat: int, baseline_repeat: int) -> tuple[list[Row], list[str]]:
    """First page, deep page and lookup (judged); the first page right after a new image (informative)."""
    started = time.perf_counter()
    index = ImageIndex(root)
    build = time.perf_counter() - started
    try:
        started = time.perf_counter()
        index.sync()  # the index's own new file left the directory's mtime too young to trust: compare names once
        rescan = time.perf_counter() - started
        deep = min(DEEP_PAGE, max(1, count // PAGE // 2))
        cursor = _cursor_of_page(index, deep)
        first = _timed(lambda: index.page(None, PAGE), repeat)
        deep_ms = _timed(lambda: index.page(cursor, PAGE), repeat)
        ids = [image_id(n * count // (repeat * 10)) for n in range(repeat * 10)]
        lookups = _timed_each(index.get, ids)
        files = DiskFiles(root)
        offset = (deep - 1) * PAGE
        today_first = _timed(lambda: files.records()[:PAGE], baseline_repeat)
        today_deep = _timed(lambda: files.records()[offset : offset + PAGE], baseline_repeat)
        today_lookups = _timed_each(files.get, ids)
        after_write = []
        for _ in range(min(repeat, 5)):
            index.add(files.save(TINY_IMAGE, output_format="png", width=1, height=1, metadata={}))
            after_write += _timed(lambda: index.page(None, PAGE), 1)
    finally:
        index.close()
    rows = [
        _row(f"first page ({PAGE} of {count:,})", first, today_first, judged=True),
        _row(f"deep page (page {deep}, after {offset:,})", deep_ms, today_deep, judged=True),
        _row("lookup by id", lookups, today_lookups, judged=True, digits=3),
        _row("first page right after a new image", after_write, None, judged=False),
    ]
    notes = [
        f"building the index from {count:,} sidecars (once, when its file is missing): {build:.1f} s; "
        f"comparing every sidecar name with it once more: {rescan:.2f} s",
        "first page right after a new image: the directory's mtime moved, so the listing compares every sidecar "
        "name with the index (os.scandir into a temporary table; only new sidecars are read)",
        f"baseline: DiskFiles(root).records() sliced to the page (runs per page: {baseline_repeat}); "
        f"DiskFiles(root).get(id) of the same {len(ids)} ids",
    ]
    return rows, notes


def _rss_growth(root: Path, mode: str) -> float:
    """Peak RSS growth (MiB) of a fresh process listing every page of `root` (`mode`: index or baseline)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.listing", mode, str(root)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    if not report["reset"]:
        raise RuntimeError("could not reset VmHWM in the listing process")
    return float(report["peak_kib"] - report["idle_kib"]) / 1024.0


def _memory_rows(big: Path, small: Path, count: int) -> list[Row]:
    sizes = ((count // 10, small), (count, big))
    ours = {size: _rss_growth(root, "index") for size, root in sizes}
    today = {size: _rss_growth(root, "baseline") for size, root in sizes}
    growth = ours[count] - ours[count // 10]
    rows = []
    for size, _ in sizes:
        judged = size == count
        rows.append(
            Row(
                label=f"peak RSS growth listing every page, {size:,} images",
                measured=Stats.of([ours[size]]),
                baseline=Stats.of([today[size]]),
                comparison=Stats.of([growth]) if judged else None,
                unit="MiB",
                comparison_unit=f"MiB more than at {count // 10:,}",
                target=f"≤ {TARGET_RSS_GROWTH_MIB:.0f} MiB more than at {count // 10:,}" if judged else "—",
                status=("PASS" if growth <= TARGET_RSS_GROWTH_MIB else "FAIL") if judged else "INFO",
            )
        )
    return rows


def run(repeat: int, count: int = 100_000, baseline_repeat: int = 2) -> Figure:
    figure = Figure("listing", f"6. Listing: {count:,} stored images, SQLite index vs parsing every sidecar")
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        took = populate(big, count)
        populate(small, count // 10)
        ImageIndex(small).close()
        rows, notes = _timings(big, count, repeat, baseline_repeat)
        figure.rows.extend(rows)
        figure.rows.extend(_memory_rows(big, small, count))
    figure.notes.append(f"populating {count:,} images (sidecar + 4-byte file each, os.write, no fsync): {took:.1f} s")
    figure.notes.extend(notes)
    figure.notes.append(
        "peak RSS: a fresh process per cell, VmHWM reset after opening (ours: the index; baseline: DiskFiles), "
        "then every page listed, ours starting with a comparison of every sidecar name (as after a write)"
    )
    return figure


def _list_every_page(mode: str, root: Path) -> dict[str, Any]:
    """In the measuring process: open, reset the peak, list every page; the RSS before and the peak after."""
    index = ImageIndex(root) if mode == "index" else None  # its own new WAL file leaves the next listing a rescan
    files = DiskFiles(root)
    idle = proc_status_kib(os.getpid(), "VmRSS")
    reset = reset_peak(os.getpid())
    pages = 0
    if index is not None:
        records, cursor = index.page(None, PAGE)
        pages = 1
        while cursor is not None:
            records, cursor = index.page(cursor, PAGE)
            pages += 1
    else:
        records = files.records()
        pages = len([records[i : i + PAGE] for i in range(0, len(records), PAGE)])
    peak = proc_status_kib(os.getpid(), "VmHWM")
    return {"idle_kib": idle, "peak_kib": peak, "pages": pages, "reset": reset}


if __name__ == "__main__":
    print(json.dumps(_list_every_page(sys.argv[1], Path(sys.argv[2]))))
