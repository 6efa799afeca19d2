from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from azurite import Azurite, running_azurite
from helpers import TokenEndpoint, emulator_running, finish_stopping, token_endpoint

from mcp_server.emulator import RunningEmulator

CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than there are CPUs. Many tests wait on a subprocess or the emulator's
    latency rather than compute, so a third worker on a 2-CPU machine keeps both busy (about 100 s -> 80 s)."""
    return (os.cpu_count() or 1) + 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _emulators_stopped() -> Iterator[None]:
    """Emulators stop in the background (see `helpers.stop_later`); the session waits for the last ones."""
    yield
    finish_stopping()


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with emulator_running() as running:
        yield running


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    """A loopback App Service managed-identity endpoint, the only credential azure-identity finds in this
    process's environment (which in-process servers share) until the test ends."""
    with token_endpoint() as identity:
        for name in CREDENTIAL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        yield identity


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's blob service, one per test process (skipped without Azurite; see tests/azurite.py)."""
    with running_azurite() as running:
        yield running
