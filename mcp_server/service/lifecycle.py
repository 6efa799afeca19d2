"""One response run from the service's side: a generation slot, progress, partial previews, and what
happens when the caller goes away (cancel upstream, or finish in the background)."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from mcp_server.errors import FoundryImageError, ServiceUnreachableError
from mcp_server.foundry.agents import AgentVersionRef
from mcp_server.foundry.runs import ResponseRunner, RunHooks
from mcp_server.images.partials import PartialPreviews
from mcp_server.protocol import CreateResponseRequest, PartialImageEvent, Response
from mcp_server.service.calls import Call
from mcp_server.service.pending import PendingGenerations
from mcp_server.service.saving import render_partial


class RunLifecycle:
    """Runs responses for calls, at most `max_concurrent` at a time."""

    def __init__(
        self, runner: ResponseRunner, pending: PendingGenerations, partials: PartialPreviews, max_concurrent: int
    ) -> None:
        self.runner = runner
        self._pending = pending
        self._partials = partials
        self._slots = anyio.CapacityLimiter(max_concurrent)

    async def send(self, request: CreateResponseRequest, call: Call, ref: AgentVersionRef) -> Response:
        """Run one response to its end, recorded as in flight from the moment it has an id."""
        started = _Started()
        await self._take_slot(call)
        try:
            return await self.runner.run(request, hooks=self._hooks(call, ref, started))
        except anyio.get_cancelled_exc_class():
            if started.response_id:
                with anyio.CancelScope(shield=True):
                    await self._abandon(started.response_id, call, ref, cancel=call.client_cancelled())
            raise
        except ServiceUnreachableError as exc:
            if started.response_id:
                with anyio.CancelScope(shield=True):
                    await self._abandon(started.response_id, call, ref, cancel=exc.code == "deadline")
            raise
        except FoundryImageError:
            if started.response_id:
                call.store.drop_pending(started.response_id)
            raise
        finally:
            self._slots.release()

    def _hooks(self, call: Call, ref: AgentVersionRef, started: _Started) -> RunHooks:
        partials = call.options.partial_images

        async def on_started(response_id: str) -> None:
            started.response_id = response_id
            await self._pending.record(call.store, response_id, call.provenance(ref))
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

    async def _abandon(self, response_id: str, call: Call, ref: AgentVersionRef, *, cancel: bool) -> None:
        """The caller stopped waiting: cancel upstream if it asked to, else finish in the background."""
        if cancel:
            await self.runner.cancel(response_id)
            call.store.drop_pending(response_id)
        else:
            self._pending.finish_in_background(response_id, call.provenance(ref), call.store)


@dataclass
class _Started:
    """The id of the response once the service has named it."""

    response_id: str = ""
