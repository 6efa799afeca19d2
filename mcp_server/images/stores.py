"""Which image store a request sees: one per authenticated principal over HTTP, one for everyone on stdio.

With inbound auth, each principal's images live in their own subdirectory of the output
directory, named from a hash of the principal id; listing, reading and using images as edit
inputs all go through that principal's store, so nobody sees another's images.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token

from mcp_server.config import Settings
from mcp_server.errors import AuthenticationError
from mcp_server.images.base import ImageStore
from mcp_server.images.blob import SHARED_PREFIX
from mcp_server.images.local import LocalStore

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from mcp_server.images.blob import BlobBackend

logger = logging.getLogger(__name__)


def principal_of(token: AccessToken | None) -> str | None:
    """The stable principal id of a verified token: its `subject`, else its `client_id`."""
    if token is None:
        return None
    return token.subject or token.client_id


def principal_dir_name(principal: str) -> str:
    """A directory name for `principal`, safe on every filesystem whatever characters the id holds."""
    return "p-" + hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class StoreBackend(Protocol):
    """Where every principal's store lives: a local directory, or a Blob Storage container."""

    def store_for(self, name: str) -> ImageStore:
        """The store named `name`: "" for the one shared store (stdio), `principal_dir_name(...)` over HTTP."""
        ...

    async def names(self) -> list[str]:
        """The names of every store that exists, the shared one ("") first (for resuming records)."""
        ...

    async def aclose(self) -> None: ...


class LocalBackend:
    """The output directory: the shared store is the directory itself, a principal's a `p-<hash>` subdirectory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: list[LocalStore] = []

    def store_for(self, name: str) -> ImageStore:
        store = LocalStore(self.root / name if name else self.root)
        self._open.append(store)
        return store

    async def names(self) -> list[str]:
        def scan() -> list[str]:
            if not self.root.is_dir():
                return [""]
            return ["", *(p.name for p in sorted(self.root.glob("p-*")) if p.is_dir())]

        return await anyio.to_thread.run_sync(scan)

    async def aclose(self) -> None:
        for store in self._open:
            store.close()


class BlobStores:
    """A Blob Storage container: the shared store is the `shared` prefix, a principal's its `p-<hash>` prefix."""

    def __init__(self, backend: BlobBackend) -> None:
        self.backend = backend

    def store_for(self, name: str) -> ImageStore:
        return self.backend.store_for(name or SHARED_PREFIX)

    async def names(self) -> list[str]:
        try:
            found = await self.backend.prefixes()
        except OSError as exc:  # unreachable now: resumed at the next rescan
            logger.warning("Could not list the stores in %s: %s", self.backend.url, exc)
            return [""]
        return ["", *sorted(name for name in found if name != SHARED_PREFIX)]

    async def aclose(self) -> None:
        await self.backend.aclose()


def open_stores(settings: Settings, *, isolated: bool) -> Stores:
    """The stores `settings` choose: the output directory (the default), or Azure Blob Storage."""
    if settings.store == "azure-blob":
        from mcp_server.images.blob import open_backend

        return Stores(BlobStores(open_backend(settings)), isolated=isolated)
    return Stores(LocalBackend(settings.output_dir), isolated=isolated)


class Stores:
    """The store each request sees, made once per name and kept for the life of the server."""

    def __init__(self, backend: StoreBackend, *, isolated: bool) -> None:
        self.backend = backend
        self.isolated = isolated
        self._by_name: dict[str, ImageStore] = {}

    def named(self, name: str) -> ImageStore:
        store = self._by_name.get(name)
        if store is None:
            store = self._by_name[name] = self.backend.store_for(name)
        return store

    def current(self) -> ImageStore:
        """The store of the request being served."""
        if not self.isolated:
            return self.named("")
        principal = principal_of(get_access_token())
        if principal is None:
            # The HTTP auth middleware rejects unauthenticated requests before they get here.
            raise AuthenticationError("This request carries no verified identity.", code="unauthenticated")
        return self.named(principal_dir_name(principal))

    async def every(self) -> list[ImageStore]:
        """Every store that exists, for resuming in-flight generations."""
        names = await self.backend.names()
        return [self.named(name) for name in (names if self.isolated else [""])]
