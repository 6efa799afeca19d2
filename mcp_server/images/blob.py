"""Azure Blob Storage as the image store, for several replicas behind one load balancer (the optional extra
`foundry-image-mcp[azure-blob]`, chosen with `FOUNDRY_IMAGE_MCP_STORE=azure-blob`).

`open_backend(settings)` makes the process's one `BlobBackend`: the async `BlobServiceClient` (Entra ID through
azure-identity's async `DefaultAzureCredential` with the account URL, or a connection string) and the
container. `store_for(prefix)` gives each principal's `ImageStore` (`blob_store`), whose in-flight records are
blob leases (`blob_inflight`); the names are in `blob_names`. Nothing here imports the storage SDK until a
backend is opened, so the local store never loads it.
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
from typing import TYPE_CHECKING, Final

from mcp_server.config import BLOB_CONNECTION_VAR, STORE_VAR, Settings
from mcp_server.errors import ConfigurationError
from mcp_server.images.blob_timing import LeaseTiming

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import BlobServiceClient

    from mcp_server.images.base import ImageStore
    from mcp_server.images.blob_access import BlobAccess
    from mcp_server.images.blob_store import BlobImageStore

logger = logging.getLogger(__name__)

SHARED_PREFIX: Final = "shared"
"""The prefix of the one store every caller shares (stdio, or HTTP without inbound auth)."""
INSTALL_HINT: Final = "pip install 'foundry-image-mcp[azure-blob]'"
PROBE_FOLDER: Final = "doctor/"


class BlobBackend:
    """One per process: owns the service client (and the credential it was given), the container, and every
    lease this process holds; `aclose` releases them all."""

    def __init__(
        self,
        service: BlobServiceClient,
        container: str,
        *,
        credential: AsyncTokenCredential | None = None,
        create_container: bool = True,
        timing: LeaseTiming | None = None,
    ) -> None:
        from mcp_server.images.blob_access import BlobAccess

        self._service = service
        self._credential = credential
        self._access: BlobAccess = BlobAccess(
            service.get_container_client(container), create_container=create_container, timing=timing or LeaseTiming()
        )
        self._stores: dict[str, BlobImageStore] = {}

    @property
    def url(self) -> str:
        """The container's URL, without any SAS token: safe for messages and logs."""
        return self._access.url

    @property
    def container(self) -> str:
        return self._access.name

    def store_for(self, prefix: str) -> ImageStore:
        """The images of one principal: `SHARED_PREFIX`, or `p-<hash>` (`images.stores.principal_dir_name`)."""
        from mcp_server.images.blob_store import BlobImageStore

        store = self._stores.get(prefix)
        if store is None:
            store = self._stores[prefix] = BlobImageStore(self._access, prefix)
        return store

    async def prefixes(self) -> list[str]:
        """The principal prefixes that hold anything (their images or in-flight records), for resuming."""

        async def walk() -> list[str]:
            names = [item.name async for item in self._access.container.walk_blobs(delimiter="/")]
            return [name.rstrip("/") for name in names if name.endswith("/") and name != PROBE_FOLDER]

        return await self._access.read(walk)

    async def prepare(self) -> None:
        """Create the container if it is missing (and allowed); otherwise the first write does."""
        if self._access.create_container:
            await self._access.create()

    async def probe(self) -> str:
        """Write, read, list and delete a small blob as the server would (creating a missing container when
        allowed). Raises `BlobStoreError` (with `kind`) naming the step that failed."""
        from mcp_server.images.blob_probe import probe

        return await probe(self._access, f"{PROBE_FOLDER}probe-{secrets.token_hex(8)}.txt")

    async def aclose(self) -> None:
        """Release every lease this process holds (other replicas take the records over at once), then close."""
        for claim in list(self._access.claims):
            await claim.release()
        await self._service.close()
        if self._credential is not None:
            await self._credential.close()


def open_backend(settings: Settings, *, timing: LeaseTiming | None = None, retries: int = 3) -> BlobBackend:
    """The backend `settings` describe (`store` must be `azure-blob`); no request is sent yet. `retries`: how
    often a request that failed for a reason that may pass is sent again (a short exponential backoff).

    Raises:
        ConfigurationError: the `azure-blob` extra is not installed, or the connection string is malformed.
    """
    if settings.store != "azure-blob":
        raise ValueError(f"{STORE_VAR} is {settings.store!r}, not 'azure-blob'")
    _require_the_extra()
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=retries, random_jitter_range=1)
    if settings.blob_connection_string is not None:
        try:
            secret = settings.blob_connection_string.get_secret_value()
            service = BlobServiceClient.from_connection_string(secret, retry_policy=retry)
        except ValueError:  # its message may quote the string
            raise ConfigurationError(
                f"{BLOB_CONNECTION_VAR} is not a storage account connection string.",
                hint="Copy it from the storage account's Access keys page, or use the account URL with Entra ID.",
            ) from None
        return BlobBackend(service, settings.blob_container, timing=timing)
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    service = BlobServiceClient(str(settings.blob_account_url), credential=credential, retry_policy=retry)
    return BlobBackend(service, settings.blob_container, credential=credential, timing=timing)


def missing_extra() -> str | None:
    """The module of the `azure-blob` extra that is not installed, or None when it is all there."""
    for module in ("azure.storage.blob", "aiohttp"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            return module
    return None


def _require_the_extra() -> None:
    if missing_extra() is not None:
        raise ConfigurationError(
            f"{STORE_VAR}=azure-blob needs the azure-storage-blob package (with aiohttp), which is not installed.",
            hint=f"Install it: {INSTALL_HINT}",
        )
