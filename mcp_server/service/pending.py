"""In-flight generations: recorded in the store's `.pending/` before waiting, finished when the caller left.

A generation is recorded as soon as the service names its response, and the record is dropped
when its image is stored or its failure is known. What is left behind (the caller went away,
or the process stopped) is waited for in the background, now or at the next start, and its
image stored with the provenance of the call that asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from mcp_server.foundry.responses import extract_image
from mcp_server.foundry.runs import ResponseRunner
from mcp_server.images.store import ImageStore
from mcp_server.protocol import is_image_call
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.saving import PROVENANCE_KEYS, store_image

logger = logging.getLogger(__name__)


class PendingGenerations:
    """Records generations in flight and finishes, in the background, those whose caller left."""

    def __init__(self, runner: ResponseRunner, jobs: BackgroundJobs) -> None:
        self._runner = runner
        self._jobs = jobs

    async def record(self, store: ImageStore, response_id: str, provenance: dict[str, Any]) -> None:
        await anyio.to_thread.run_sync(store.save_pending, response_id, provenance)

    async def resume(self, stores: Sequence[ImageStore]) -> None:
        """Finish, in the background, the generations a previous run of the server left in flight."""
        for store in stores:
            for record in await anyio.to_thread.run_sync(store.pending):
                logger.info("Resuming generation %s left in flight", record["response_id"])
                self._jobs.start(self.recover, record, store)

    def finish_in_background(self, response_id: str, provenance: dict[str, Any], store: ImageStore) -> None:
        logger.info("The caller left; finishing %s in the background", response_id)
        self._jobs.start(self.recover, {"response_id": response_id, **provenance}, store)

    async def recover(self, record: dict[str, Any], store: ImageStore) -> None:
        """Wait for the recorded generation to end and store its image, if it made one."""
        response_id = str(record["response_id"])
        with anyio.fail_after(self._runner.settings.timeout):
            response = await self._runner.wait(response_id)
        if not any(is_image_call(item) and item.get("result") for item in response.output):
            # Also a completed response whose image the service no longer holds (`result: null`, protocol §4).
            logger.warning("Generation %s ended %s without image data", response_id, response.status)
            store.drop_pending(response_id)
            return
        metadata = {key: record.get(key) for key in PROVENANCE_KEYS}
        stored = await store_image(extract_image(response), metadata, store)
        logger.info("Stored %s from generation %s after its caller left", stored.file_name, response_id)
