"""Images the store refused: kept in memory, readable as resources, and written once the store takes them.

A generation the service finished is paid for. When its final write fails (no space, a
read-only file system, a storage account that refuses), the image stays here instead of
vanishing: `resources/read` serves its exact bytes, and `flush` (run periodically and at
shutdown) writes it to its store as soon as the store accepts it. Its in-flight record stays,
and claimed, until then, so that if the process stops first the next start fetches the image
from the service again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp_server.images.base import Claim, ImageStore, StoreWriteError
from mcp_server.images.records import ImageRecord

logger = logging.getLogger(__name__)


@dataclass
class HeldImage:
    store: ImageStore
    record: ImageRecord
    data: bytes
    claim: Claim | None
    reason: str


class HeldImages:
    def __init__(self) -> None:
        self._held: dict[tuple[str, str], HeldImage] = {}

    def hold(self, image: HeldImage) -> None:
        logger.warning(
            "Could not save %s in %s (%s); keeping it in memory until the store takes it",
            image.record.file_name,
            image.store.label,
            image.reason,
        )
        self._held[(image.store.key, image.record.image_id)] = image

    def get(self, store: ImageStore, image_id: str) -> HeldImage | None:
        return self._held.get((store.key, image_id))

    def records(self, store: ImageStore) -> list[ImageRecord]:
        return [held.record for (key, _), held in self._held.items() if key == store.key]

    def holds(self, claim: Claim) -> bool:
        """Whether `claim` belongs to a held image (it stays claimed until the image is written)."""
        return any(held.claim is claim for held in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    async def flush(self) -> int:
        """Write every held image its store now takes; returns how many are still held."""
        for key, held in list(self._held.items()):
            try:
                await held.store.put(held.record, held.data)
            except StoreWriteError as exc:
                logger.debug("Still cannot save %s: %s", held.record.file_name, exc.reason)
                continue
            del self._held[key]
            if held.claim is not None:
                await held.claim.finish()
            logger.warning("Saved %s in %s, held in memory until now", held.record.file_name, held.store.label)
        return len(self._held)

    async def release_all(self) -> None:
        """At exit: what is still held is lost from memory, but its in-flight record stays for the next start."""
        for held in self._held.values():
            if held.claim is not None:
                await held.claim.release()
        if self._held:
            logger.warning(
                "%d image(s) could not be saved before exit; the next start fetches them from Foundry again",
                len(self._held),
            )
        self._held.clear()
