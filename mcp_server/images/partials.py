"""Previews of streamed partial images, kept in memory so a client can show the picture forming.

They are transient: bounded in number, never written to disk, gone after a restart. A URI is
handed out before its preview is rendered, so the progress notification is not held back by
the rendering; a read that arrives first waits for it briefly.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import anyio

from mcp_server.images.preview import Preview

PARTIAL_PREFIX: Final = "foundry-image://partials/"
PARTIAL_TEMPLATE: Final = PARTIAL_PREFIX + "{response_id}/{index}"
PARTIAL_PREVIEW_SIDE: Final = 256
RENDER_WAIT_SECONDS: Final = 10.0


class _Slot:
    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.preview: Preview | None = None


class PartialPreviews:
    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._slots: OrderedDict[str, _Slot] = OrderedDict()

    def reserve(self, response_id: str, index: int) -> str:
        uri = f"{PARTIAL_PREFIX}{response_id}/{index}"
        self._slots[uri] = _Slot()
        self._slots.move_to_end(uri)
        while len(self._slots) > self._limit:
            self._slots.popitem(last=False)
        return uri

    def fill(self, uri: str, preview: Preview | None) -> None:
        """Store the rendered preview (None when it could not be rendered) and wake waiting readers."""
        slot = self._slots.get(uri)
        if slot is not None:
            slot.preview = preview
            slot.ready.set()

    async def get(self, uri: str) -> Preview | None:
        slot = self._slots.get(uri)
        if slot is None:
            return None
        with anyio.move_on_after(RENDER_WAIT_SECONDS):
            await slot.ready.wait()
        return slot.preview
