"""The doctor's `store` check: the image store the server will use takes a file, and what to do when it does not.

The local store: the output directory is created if missing and a test file written to it and removed. Azure
Blob Storage: a test blob is written (creating a missing container, as the server does), read back, listed and
deleted, through the server's own `BlobBackend`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from mcp_server.cli.doctor_table import FAIL, PASS, STORE, Row
from mcp_server.config import BLOB_CONNECTION_VAR, BLOB_CONTAINER_VAR, BLOB_URL_VAR, OUTPUT_DIR_VAR, Settings
from mcp_server.errors import ConfigurationError
from mcp_server.images.base import StoreWriteError

ROLE: Final = "Storage Blob Data Contributor"
FIXES: Final = {
    "permission": f"Give this identity the {ROLE} role on the storage account (az role assignment create "
    f"--role '{ROLE}' --assignee <identity> --scope <the account's resource id>).",
    "container": f"Create the container {BLOB_CONTAINER_VAR} names (az storage container create --name <name>), "
    f"or give this identity the {ROLE} role so that the server creates it; or check the name.",
    "network": f"Check {BLOB_URL_VAR} (or the connection string's BlobEndpoint), and that the storage account's "
    "firewall (Networking) lets this machine in.",
    "busy": "The storage account is busy or failing; try again in a moment.",
    "refused": "See the status and error code in the detail.",
}
KEY_FIX: Final = (
    f"Check the account key (or SAS) in {BLOB_CONNECTION_VAR}, and that the storage account's firewall "
    "(Networking) lets this machine in."
)
ENTRA_FIX: Final = (
    "az login / managed identity (or a service principal) for the storage account, and check that its firewall "
    "(Networking) lets this machine in."
)


async def check_store(settings: Settings) -> Row:
    if settings.store == "azure-blob":
        return await _blob(settings)
    problem = unwritable(settings.output_dir)
    if problem is not None:
        return Row(
            STORE,
            FAIL,
            f"local: the output directory {settings.output_dir} is not writable: {problem}",
            f"Set {OUTPUT_DIR_VAR} (or --output-dir) to a directory this user can write to.",
        )
    return Row(STORE, PASS, f"local: {settings.output_dir} (writable)")


def unwritable(directory: Path) -> str | None:
    """Why `directory` cannot hold images (created if missing), or None when a file can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".doctor-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"foundry-image-mcp doctor\n")
        finally:
            os.unlink(name)
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__} ({exc.filename or directory})"
    return None


async def _blob(settings: Settings) -> Row:
    from mcp_server.images.blob import open_backend

    try:
        backend = open_backend(settings, retries=1)
    except ConfigurationError as exc:
        return Row(STORE, FAIL, f"azure-blob: {exc.message}", exc.hint or "")
    try:
        done = await backend.probe()
    except StoreWriteError as exc:
        kind = getattr(exc, "kind", "refused")
        fix = FIXES.get(kind, FIXES["refused"])
        if kind == "credentials":
            fix = KEY_FIX if settings.blob_connection_string is not None else ENTRA_FIX
        return Row(STORE, FAIL, f"azure-blob {backend.url}: {exc.reason}", fix)
    finally:
        await backend.aclose()
    return Row(STORE, PASS, f"azure-blob {backend.url}: {done}")
