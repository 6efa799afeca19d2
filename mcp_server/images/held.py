"""Images the disk refused: kept in memory, readable as resources, and written once the disk takes them.

A generation the service finished is paid for. When its final write fails (no space, a
read-only file system), the image stays here instead of vanishing: `resources/read` serves its
exact bytes, and `flush` (run periodically and at shutdown) writes it to its store as soon as
the disk accepts it. Its in-flight record stays on disk, and claimed, until then, so that if the
process stops first the next start fetches the image from the service again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mcp_server.images.inflight import Claim
from mcp_server.images.store import ImageRecord, ImageStore

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
        self._held: dict[tuple[Path, str], HeldImage] = {}

    def hold(self, image: HeldImage) -> None:
        logger.warning(
            "Could not save %s in %s (%s); keeping it in memory until the disk takes it",
            image.record.file_name,
            image.store.root,
            image.reason,
        )
        self._held[(image.store.root, image.record.image_id)] = image

    def get(self, store: ImageStore, image_id: str) -> HeldImage | None:
        return self._held.get((store.root, image_id))

    def records(self, store: ImageStore) -> list[ImageRecord]:
        return [held.record for (root, _), held in self._held.items() if root == store.root]

    def holds(self, claim: Claim) -> bool:
        """Whether `claim` belongs to a held image (it stays locked until the image is written)."""
        return any(held.claim is claim for held in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def flush(self) -> int:
        """Write every held image the disk now takes; returns how many are still held. Blocking."""
        for key, held in list(self._held.items()):
            try:
                held.store.write(held.record, held.data)
            except OSError as exc:
                logger.debug("Still cannot save %s: %s", held.record.file_name, exc)
                continue
            del self._held[key]
            if held.claim is not None:
                held.claim.finish()
            logger.warning("Saved %s, held in memory until now", held.store.path_of(held.record))
        return len(self._held)

    def release_all(self) -> None:
        """At exit: what is still held is lost from memory, but its in-flight record stays for the next start."""
        for held in self._held.values():
            if held.claim is not None:
                held.claim.release()
        if self._held:
            logger.warning(
                "%d image(s) could not be saved before exit; the next start fetches them from Foundry again",
                len(self._held),
            )
        self._held.clear()
