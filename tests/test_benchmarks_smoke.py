"""The benchmark suite stays runnable: a smoke run (one repetition, small workloads), no assertion on times.

`--repeat 1` on top of `--smoke` measures each figure once (the cold start: one pair of launches after the
warm-up pair), enough to prove that every figure still runs end to end and reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from azurite import unavailable

from benchmarks.azurite import missing

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {
    "cold_start": "1. Cold start",
    "per_call": "2. Per-call overhead",
    "memory": "3. Memory",
    "streaming": "4. Streaming",
    "throughput": "5. Throughput under load",
    "listing": "6. Listing",
    "blob_listing": "7. Blob listing",
    "replicas": "8. Two replicas",
}
AZURITE_FIGURES = ("blob_listing", "replicas")
"""Figures on Azurite: each skips itself (one INFO row) without it; here they skip, or fail where it is required."""


@pytest.mark.parametrize("key", FIGURES)
def test_the_benchmark_suite_runs_every_figure_in_smoke_mode(tmp_path: Path, key: str) -> None:
    """One figure per test (`--only`), so that the figures spread over the test workers."""
    if key in AZURITE_FIGURES and (reason := missing()) is not None:
        unavailable(reason)
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--repeat", "1", "--only", key, "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Machine: "), done.stdout
    assert FIGURES[key] in done.stdout, (key, done.stdout)
    if key == "throughput":
        assert "failures: 0; images whose bytes differ from the emulator's: 0" in done.stdout
    if key == "replicas":
        for replicas in ("one replica", "two replicas"):
            assert f"{replicas}: failures: 0; images whose bytes differ from the emulator's: 0" in done.stdout
    assert "skipped: " not in done.stdout, done.stdout
    (figure,) = json.loads(report.read_text())["figures"]
    assert figure["key"] == key
    assert figure["status"] in ("PASS", "FAIL", "INFO")
    assert figure["rows"], "the figure measured something"


def test_every_figure_has_a_smoke_test() -> None:
    from benchmarks.__main__ import FIGURES as SUITE

    assert list(SUITE) == list(FIGURES)
