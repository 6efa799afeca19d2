"""What every figure shares: statistics, the machine description, the table printer, server launch settings."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp import StdioServerParameters

Status = Literal["PASS", "FAIL", "INFO"]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_DEPLOYMENT = "gpt-4.1"
API_KEY = "bench"


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no samples")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, unit: str, digits: int = 1) -> str:
        return f"{self.median:.{digits}f} {unit} ({self.min:.{digits}f}–{self.max:.{digits}f}, n={self.n})"


@dataclass(frozen=True)
class Row:
    """One line of a figure: ours, the baseline it is compared with, and the comparison."""

    label: str
    measured: Stats | None
    baseline: Stats | None
    comparison: Stats | None
    unit: str
    comparison_unit: str
    target: str
    status: Status
    digits: int = 1


@dataclass
class Figure:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list[Row])
    notes: list[str] = field(default_factory=list[str])

    @property
    def status(self) -> Status:
        statuses = {row.status for row in self.rows}
        if "FAIL" in statuses:
            return "FAIL"
        return "PASS" if "PASS" in statuses else "INFO"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor() or platform.machine(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return info


def format_machine(info: dict[str, Any]) -> str:
    ram = f", {info['ram_gib']} GiB RAM" if "ram_gib" in info else ""
    return f"Machine: {info['platform']}; {info['python']}; {info['cpu_count']} CPUs ({info['cpu_model']}){ram}"


def _cell(stats: Stats | None, unit: str, digits: int) -> str:
    return "—" if stats is None else stats.show(unit, digits)


def format_figure(figure: Figure) -> str:
    header = ("", "measured", "baseline", "comparison", "target", "")
    lines = [
        (
            row.label,
            _cell(row.measured, row.unit, row.digits),
            _cell(row.baseline, row.unit, row.digits),
            _cell(row.comparison, row.comparison_unit, 2 if row.comparison_unit == "x" else row.digits),
            row.target,
            row.status,
        )
        for row in figure.rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = [f"== {figure.title} [{figure.status}]"]
    if lines:
        out.extend(
            "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [header, *lines]
        )
    out.extend(f"  {note}" for note in figure.notes)
    if lines:
        out.append("  (cells: median (min–max, n))")
    return "\n".join(out)


def server_params(endpoint: str, output_dir: Path) -> StdioServerParameters:
    """The real server over stdio, launched as a client would: `python -m mcp_server serve`."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "serve", "--log-level", "WARNING"],
        env=server_env(endpoint, output_dir),
        cwd=str(PROJECT_ROOT),
    )


def server_env(endpoint: str, output_dir: Path) -> dict[str, str]:
    return {
        "AZURE_AI_PROJECT_ENDPOINT": endpoint,
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": MODEL_DEPLOYMENT,
        "AZURE_AI_API_KEY": API_KEY,
        "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(output_dir),
    }


def children_running(module: str) -> list[int]:
    """Pids of this process's children whose command line runs `module` (Linux /proc; no psutil)."""
    me = os.getpid()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and module.encode() in cmdline:
            found.append(int(entry.name))
    return found


def proc_status_kib(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-style line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(f"{key} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far, all its threads (`/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset `VmHWM` of `pid` to its current RSS (`/proc/<pid>/clear_refs` ← 5); False where that is refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def ms(seconds: float) -> float:
    return seconds * 1000.0
