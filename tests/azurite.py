"""Azurite, the Azure Storage emulator (npm package `azurite`, pinned to AZURITE_VERSION), for the tests of the
Azure Blob Storage store: its blob service alone, in memory, on a free loopback port, without telemetry. It is
started by `benchmarks/azurite.py`, which the figures of the blob store share.

The executable is `$AZURITE`, else `node_modules/.bin/azurite-blob` (or `azurite`) in the project root, else
one on PATH; install it with `npm install --no-save azurite@3.37.0`. Without it the tests that need it are
skipped, unless FOUNDRY_IMAGE_MCP_REQUIRE_AZURITE=1 (as `.ci/run` sets): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

import pytest

from benchmarks.azurite import (
    ACCOUNT,
    ACCOUNT_KEY,
    AZURITE_VERSION,
    Azurite,
    AzuriteUnavailable,
    azurite_running,
)

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "AZURITE_VERSION", "ROOT", "Azurite", "running_azurite"]

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_VAR: Final = "FOUNDRY_IMAGE_MCP_REQUIRE_AZURITE"


def unavailable(reason: str) -> None:
    """Skip, or fail when the run requires Azurite."""
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VAR}=1)", pytrace=False)
    pytest.skip(f"{reason}; install it with `npm install --no-save azurite@{AZURITE_VERSION}` or set AZURITE")


@contextmanager
def running_azurite() -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port until the block ends (skips or fails without it)."""
    with ExitStack() as stack:
        try:
            running = stack.enter_context(azurite_running())
        except AzuriteUnavailable as exc:
            unavailable(str(exc))
            raise
        yield running
