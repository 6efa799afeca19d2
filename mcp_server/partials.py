"""Previews of streamed partial images, kept in memory so a client can show the picture forming.

They are transient: bounded in number, never written to disk, gone after a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from mcp_server.preview import Preview

PARTIAL_PREFIX: Final = "foundry-image://partials/"
PARTIAL_TEMPLATE: Final = PARTIAL_PREFIX + "{response_id}/{index}"
PARTIAL_PREVIEW_SIDE: Final = 256


class PartialPreviews:
    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._items: OrderedDict[str, Preview] = OrderedDict()

    def put(self, response_id: str, index: int, preview: Preview) -> str:
        uri = f"{PARTIAL_PREFIX}{response_id}/{index}"
        self._items[uri] = preview
        self._items.move_to_end(uri)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return uri

    def get(self, uri: str) -> Preview | None:
        return self._items.get(uri)
