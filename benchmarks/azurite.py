"""Azurite, the Azure Storage emulator (npm package `azurite`, pinned to AZURITE_VERSION): its blob service alone,
in memory, on a free loopback port, without telemetry. The figures of the Azure Blob Storage store start it here,
and so do the tests (`tests/azurite.py`, which skips or fails where this raises `AzuriteUnavailable`).

The executable is `$AZURITE`, else `node_modules/.bin/azurite-blob` (or `azurite`) in the project root, else
one on PATH; install it with `npm install --no-save azurite@3.37.0`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mcp_server.images.blob import INSTALL_HINT, missing_extra

from .common import PROJECT_ROOT, Figure, Row

AZURITE_VERSION: Final = "3.37.0"
ACCOUNT: Final = "devstoreaccount1"
ACCOUNT_KEY: Final = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account key (public, the same for every Azurite)."""
START_TIMEOUT: Final = 30.0
NOT_INSTALLED: Final = "Azurite not installed"


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed, cannot be run, or did not start; the message says which."""


@dataclass(frozen=True)
class Azurite:
    port: int
    pid: int = 0

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = ACCOUNT_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={self.blob_endpoint};"
        )


def find_executable() -> str | None:
    """`$AZURITE`, else the project's node_modules, else PATH; the blob service alone when there is one."""
    given = os.environ.get("AZURITE")
    if given:
        sibling = Path(given).with_name("azurite-blob")
        return str(sibling) if Path(given).name == "azurite" and sibling.is_file() else given
    for name in ("azurite-blob", "azurite"):
        local = PROJECT_ROOT / "node_modules" / ".bin" / name
        if local.is_file():
            return str(local)
    return shutil.which("azurite-blob") or shutil.which("azurite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(executable: str, port: int) -> list[str]:
    args = [executable, "--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"]
    args += ["--blobHost", "127.0.0.1", "--blobPort", str(port)]
    if Path(executable).name == "azurite":  # the full emulator: keep its queue and table services off shared ports
        args += ["--queueHost", "127.0.0.1", "--queuePort", str(free_port())]
        args += ["--tableHost", "127.0.0.1", "--tablePort", str(free_port())]
    return args


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def azurite_running() -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port until the block ends; `AzuriteUnavailable` without it."""
    executable = find_executable()
    if executable is None:
        raise AzuriteUnavailable(NOT_INSTALLED)
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        port = free_port()
        log = Path(workdir) / "azurite.log"
        try:
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command(executable, port), cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
        except OSError as exc:
            raise AzuriteUnavailable(f"Azurite ({executable}) cannot be run: {exc.strerror or exc}") from exc
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AzuriteUnavailable(f"Azurite did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)
            yield Azurite(port, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def missing() -> str | None:
    """Why the figures of the Blob Storage store cannot run on this machine, or None when they can."""
    if find_executable() is None:
        return NOT_INSTALLED
    module = missing_extra()
    return f"{module} not installed ({INSTALL_HINT})" if module else None


def skipped(figure: Figure, reason: str) -> Figure:
    """`figure` with one INFO row saying why it measured nothing."""
    figure.rows.append(Row(f"skipped: {reason}", None, None, None, "", "", "—", "INFO"))
    figure.notes.append(f"install Azurite with `npm install --no-save azurite@{AZURITE_VERSION}`, or set AZURITE")
    return figure
