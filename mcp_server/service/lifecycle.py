"""One response run from the service's side: a generation slot, the in-flight record, progress, partial
previews, and what happens when the run does not end with an answer (cancel upstream, or finish it in the
background)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import anyio

from mcp_server.errors import FoundryImageError, UnexpectedResponseError
from mcp_server.foundry.agents import AgentVersionRef
from mcp_server.foundry.http import AmbiguousRequestError
from mcp_server.foundry.responses import REQUEST_TAG_KEY
from mcp_server.foundry.runs import ResponseRunner, RunHooks
from mcp_server.images.base import Claim
from mcp_server.images.disk import room_for
from mcp_server.images.partials import PartialPreviews
from mcp_server.protocol import CreateResponseRequest, PartialImageEvent, Response, parse_size
from mcp_server.service.calls import Call
from mcp_server.service.pending import PendingGenerations, pending_uri
from mcp_server.service.saving import render_partial

AUTO_SIZE_BOUND: Final = (2048, 2048)
"""The size assumed, for the free-space check, when the model chooses it (`size: auto`)."""


@dataclass(frozen=True)
class Sent:
    """A response that reached a terminal state, and the in-flight record its image settles."""

    response: Response
    claim: Claim


class RunLifecycle:
    """Runs responses for calls, at most `max_concurrent` at a time."""

    def __init__(
        self, runner: ResponseRunner, pending: PendingGenerations, partials: PartialPreviews, max_concurrent: int
    ) -> None:
        self.runner = runner
        self._pending = pending
        self._partials = partials
        self._slots = anyio.CapacityLimiter(max_concurrent)

    async def send(self, request: CreateResponseRequest, call: Call, ref: AgentVersionRef) -> Sent:
        """Record the call in flight, then run one response to its end.

        Raises whatever ended the run; when the generation may still finish upstream, it goes on in the
        background and the error names where its image will appear (`pending_uri`)."""
        await self._take_slot(call)
        try:
            claim = await self._begin(request, call, ref)
            started = _Started()
            try:
                response = await self.runner.run(request, hooks=self._hooks(call, claim, started))
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self._abandon(claim, call, cancel=call.client_cancelled())
                raise
            except FoundryImageError as exc:
                with anyio.CancelScope(shield=True):
                    await self._unfinished(claim, call, exc, started)
                raise
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await claim.release()  # a defect: the record stays for a later recovery
                raise
            return Sent(response, claim)
        finally:
            self._slots.release()

    async def _begin(self, request: CreateResponseRequest, call: Call, ref: AgentVersionRef) -> Claim:
        agent = request.agent_reference.name if request.agent_reference else None
        return await self._pending.begin(
            call.store,
            tag=(request.metadata or {})[REQUEST_TAG_KEY],
            agent_name=agent,
            provenance=call.provenance(ref),
            room=room_for(*(parse_size(call.options.size) or AUTO_SIZE_BOUND)),
        )

    def _hooks(self, call: Call, claim: Claim, started: _Started) -> RunHooks:
        partials = call.options.partial_images

        async def on_started(response_id: str) -> None:
            started.response_id = response_id
            await claim.update(response_id=response_id)
            await call.progress.at(5, "Generating the image")

        async def on_partial(event: PartialImageEvent) -> None:
            number = event.partial_image_index + 1
            uri = self._partials.reserve(started.response_id or event.item_id, event.partial_image_index)
            # Azure may send a partial image nobody asked for (protocol §5.2): then there is no total to name.
            label = f"Partial image {number} of {partials}" if number <= partials else f"Partial image {number}"
            await call.progress.at(5 + 85 * number / (max(partials, number) + 1), f"{label}: {uri}")
            await render_partial(self._partials, uri, event.partial_image_b64)

        return RunHooks(on_started=on_started, on_partial=on_partial, on_heartbeat=call.progress.tick)

    async def _take_slot(self, call: Call) -> None:
        """Wait for one of the `max_concurrent` upstream generation slots, telling the client while it waits."""
        while True:
            with anyio.move_on_after(self.runner.settings.heartbeat) as waiting:
                await self._slots.acquire()
            if not waiting.cancelled_caught:
                return
            await call.progress.tick(f"Waiting for a free generation slot ({self._slots.borrowed_tokens} running)")

    async def _unfinished(self, claim: Claim, call: Call, exc: FoundryImageError, started: _Started) -> None:
        """The run failed: settle the record when the generation is known to be over, else finish it behind."""
        if exc.code == "deadline":  # the caller waited as long as it may: stop paying for it
            await self._abandon(claim, call, cancel=True)
        elif started.response_id or _maybe_accepted(exc):
            # The service has (or may have) the generation, and nothing says it ended: it is finished, found
            # by its tag if its id was never learnt, and stored; the error names where it will appear.
            exc.pending_uri = pending_uri(claim)
            exc.hint = (
                f"The service may still be making the image: this server keeps checking and, if it finishes, "
                f"stores it as {exc.pending_uri} (see resources/list), also after a restart. Wait for it rather "
                "than calling again, which would pay for a second image."
            )
            self._pending.finish_in_background(claim, call.store)
        else:
            await claim.finish()  # refused before it was accepted: nothing runs upstream

    async def _abandon(self, claim: Claim, call: Call, *, cancel: bool) -> None:
        """The caller stopped waiting: cancel upstream if it asked to, else finish in the background."""
        response_id = claim.record.response_id
        if cancel and response_id:
            await self.runner.cancel(response_id)
            await claim.finish()
        else:  # to cancel one whose id is unknown, it is first found by its tag
            self._pending.finish_in_background(claim, call.store, cancel=cancel)


def _maybe_accepted(exc: FoundryImageError) -> bool:
    """Whether a create that failed this way may have been accepted: it was sent but its answer was lost or
    could not be read. An error status, or a failure before sending, means the service made nothing."""
    return isinstance(exc, AmbiguousRequestError | UnexpectedResponseError)


@dataclass
class _Started:
    """The id of the response once the service has named it."""

    response_id: str = ""
