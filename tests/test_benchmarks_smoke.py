"""The benchmark suite stays runnable: a smoke run (one repetition, small workloads), no assertion on times.

`--repeat 1` on top of `--smoke` measures each figure once (the cold start: one pair of launches after the
warm-up pair), enough to prove that every figure still runs end to end and reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE_TITLES = [
    "1. Cold start",
    "2. Per-call overhead",
    "3. Memory",
    "4. Streaming",
    "5. Throughput under load",
]


def test_the_benchmark_suite_runs_every_figure_in_smoke_mode(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--repeat", "1", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Machine: "), done.stdout
    for title in FIGURE_TITLES:
        assert title in done.stdout, (title, done.stdout)
    assert "failures: 0; images whose bytes differ from the emulator's: 0" in done.stdout
    figures = json.loads(report.read_text())["figures"]
    assert [f["key"] for f in figures] == ["cold_start", "per_call", "memory", "streaming", "throughput"]
    assert all(f["status"] in ("PASS", "FAIL", "INFO") for f in figures)
    assert all(f["rows"] for f in figures), "every figure measured something"
