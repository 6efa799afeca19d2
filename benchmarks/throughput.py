"""Figure 5: throughput under load, which needs the HTTP transport; until it exists, a placeholder."""

from __future__ import annotations

from .common import Figure


def run() -> Figure:
    figure = Figure("throughput", "5. Throughput under load")
    figure.notes.append("not yet available: it needs the HTTP transport, which the server does not have yet")
    return figure
