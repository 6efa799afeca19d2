"""Which image store a request sees: one per authenticated principal over HTTP, one for everyone on stdio.

With inbound auth, each principal's images live in their own subdirectory of the output
directory, named from a hash of the principal id; listing, reading and using images as edit
inputs all go through that principal's store, so nobody sees another's images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from mcp.server.auth.middleware.auth_context import get_access_token

from mcp_server.errors import AuthenticationError
from mcp_server.images.store import ImageStore

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken


def principal_of(token: AccessToken | None) -> str | None:
    """The stable principal id of a verified token: its `subject`, else its `client_id`."""
    if token is None:
        return None
    return token.subject or token.client_id


def principal_dir_name(principal: str) -> str:
    """A directory name for `principal`, safe on every filesystem whatever characters the id holds."""
    return "p-" + hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Stores:
    def __init__(self, root: Path, *, isolated: bool) -> None:
        self.root = root
        self.isolated = isolated
        self.shared = ImageStore(root)
        self._by_principal: dict[str, ImageStore] = {}

    def current(self) -> ImageStore:
        """The store of the request being served."""
        if not self.isolated:
            return self.shared
        principal = principal_of(get_access_token())
        if principal is None:
            # The HTTP auth middleware rejects unauthenticated requests before they get here.
            raise AuthenticationError("This request carries no verified identity.", code="unauthenticated")
        store = self._by_principal.get(principal)
        if store is None:
            store = self._by_principal[principal] = ImageStore(self.root / principal_dir_name(principal))
        return store

    def every(self) -> list[ImageStore]:
        """All stores on disk, for resuming in-flight generations at start."""
        stores = [self.shared]
        if self.isolated and self.root.is_dir():
            stores += [ImageStore(p) for p in sorted(self.root.glob("p-*")) if p.is_dir()]
        return stores
