"""Generations in flight: recorded before they are sent, settled exactly once, finished when the caller left.

Each create is recorded on disk (`images.inflight`) before it is sent, with its request tag and
the image id its image will get; the response id is added once the service names it. A record is
settled when its image is stored or its generation is known to have ended without one. Whatever
is left unsettled (the caller went away, the answer to the create was lost, the process died) is
finished in the background: found by its tag when its response id was never learnt, waited for,
and stored with the provenance of the call that asked for it, now or at the next start, by
whichever single process holds its claim.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio

from mcp_server.errors import FoundryImageError, NotFoundError
from mcp_server.foundry.responses import extract_image
from mcp_server.foundry.runs import ResponseRunner
from mcp_server.images.base import Claim, ImageStore, StoreWriteError
from mcp_server.images.disk import NO_SPACE_REASON, storage_error
from mcp_server.images.held import HeldImages
from mcp_server.images.records import URI_PREFIX, InFlightRecord, new_image_id, new_inflight_record
from mcp_server.protocol import is_image_call
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.saving import store_image

logger = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
MAX_RECOVERY_ATTEMPTS: Final = 5
"""Recoveries that fail for a passing reason (the service unreachable) before a record is set aside."""
RESCAN_SECONDS: Final = 60.0
"""How often records of processes that died, and images the store refused, are looked at again (by default)."""


class PendingGenerations:
    """Records generations in flight and finishes, in the background, those whose caller left."""

    def __init__(self, runner: ResponseRunner, jobs: BackgroundJobs, held: HeldImages) -> None:
        self._runner = runner
        self._jobs = jobs
        self.held = held
        self._failed_here: set[tuple[str, str]] = set()
        """Records this process failed to recover: tried again at the next start, not at every rescan."""

    async def begin(
        self, store: ImageStore, *, tag: str, agent_name: str | None, provenance: dict[str, Any], room: int
    ) -> Claim:
        """Record a generation before its create is sent; refuses (`StorageError`) when the disk could not keep
        its image, so that nothing is paid for that would be lost."""
        record = new_inflight_record(tag=tag, image_id=new_image_id(), agent_name=agent_name, provenance=provenance)
        await store.check_room(room)
        try:
            return await store.inflight.begin(record)
        except StoreWriteError as exc:
            raise storage_error(exc.reason, store.label, before=True, no_space=exc.reason == NO_SPACE_REASON) from None

    async def resume(self, stores: Sequence[ImageStore], *, rescan: bool = False) -> int:
        """Finish, in the background, every record no live process owns (left by a run that stopped or died).
        A `rescan` leaves out the records this process already failed to recover."""
        started = 0
        for store in stores:
            for claim in await store.inflight.orphans():
                if rescan and (store.key, claim.record.key) in self._failed_here:
                    await _settle(claim.release)
                    continue
                logger.info("Resuming generation %s left in flight", _name(claim.record))
                self._jobs.start(self.recover, claim, store)
                started += 1
        return started

    async def watch(
        self, stores: Callable[[], Awaitable[Sequence[ImageStore]]], sleep: Sleep, every: float = RESCAN_SECONDS
    ) -> None:
        """Forever: write images the store refused, and take over records of processes that died meanwhile."""
        while True:
            await sleep(every)
            if len(self.held):
                await self.held.flush()
            await self.resume(await stores(), rescan=True)

    def finish_in_background(self, claim: Claim, store: ImageStore, *, cancel: bool = False) -> None:
        what = "cancelling" if cancel else "finishing"
        logger.info("The caller left; %s %s in the background", what, _name(claim.record))
        self._jobs.start(self.recover, claim, store, cancel)

    async def recover(self, claim: Claim, store: ImageStore, cancel: bool = False) -> None:
        """Find the recorded generation, wait for it to end, and store its image if it made one (or cancel it)."""
        try:
            await self._recover(claim, store, cancel)
        except NotFoundError:
            logger.warning("Foundry no longer has generation %s; giving it up", _name(claim.record))
            await _settle(claim.finish)
        except (FoundryImageError, TimeoutError) as exc:
            await self._failed(claim, store, exc)
        finally:
            if claim.held and not self.held.holds(claim):
                await _settle(claim.release)  # unsettled: free for a later attempt, here or in another process

    async def _recover(self, claim: Claim, store: ImageStore, cancel: bool) -> None:
        record = claim.record
        if record.response_id is None:
            found = await self._runner.responses.find_by_tag(record.tag or "", record.agent_name)
            if found is None:
                logger.warning("Generation %s never reached Foundry; nothing to recover", _name(record))
                await _settle(claim.finish)
                return
            await _settle(lambda: claim.update(response_id=found.id))
        response_id = claim.record.response_id
        assert response_id is not None
        if cancel:
            await self._runner.cancel(response_id)
            await _settle(claim.finish)
            return
        with anyio.fail_after(self._runner.settings.timeout):
            response = await self._runner.wait(response_id)
        if not any(is_image_call(item) and item.get("result") for item in response.output):
            # Also a completed response whose image the service no longer holds (`result: null`, protocol §4).
            logger.warning("Generation %s ended %s without image data", response_id, response.status)
            await _settle(claim.finish)
            return
        saved = await store_image(extract_image(response), record.provenance, store, claim, self.held)
        logger.info("Stored %s from generation %s after its caller left", saved.record.file_name, response_id)

    async def _failed(self, claim: Claim, store: ImageStore, exc: Exception) -> None:
        attempts = claim.record.attempts + 1
        message = exc.message if isinstance(exc, FoundryImageError) else "it did not end in time"
        if attempts >= MAX_RECOVERY_ATTEMPTS:
            logger.warning(
                "Giving up on generation %s after %d attempts (%s); its record is set aside in %s",
                _name(claim.record),
                attempts,
                message,
                store.label,
            )
            await _settle(claim.abandon)
            return
        logger.warning(
            "Could not recover generation %s yet (%s); will try again at the next start", _name(claim.record), message
        )
        self._failed_here.add((store.key, claim.record.key))
        await _settle(lambda: claim.update(attempts=attempts))


def pending_uri(claim: Claim) -> str | None:
    return URI_PREFIX + claim.record.image_id if claim.record.image_id else None


def _name(record: InFlightRecord) -> str:
    return record.response_id or f"tagged {record.tag or record.key}"


async def _settle(action: Callable[[], Awaitable[None]]) -> None:
    """Change a record in its store, even while being cancelled."""
    with anyio.CancelScope(shield=True):
        await action()
