from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorConfig()) as running:
        yield running
