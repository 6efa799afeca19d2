"""Running a response to its end: background mode, polling, streaming with resume, heartbeats.

Every generation is created with `background: true` so that it has an id from the first
moment: the id is what lets a caller cancel it, resume a dropped stream without starting the
generation again, and pick it up after a restart. It is also streamed: events arrive the
moment they happen (no polling delay on a fast generation), partial images come with them,
and a dropped stream resumes from the last sequence number. Where the service refuses
streaming, the response is polled instead, quickly at first and then every `poll_interval`.
While waiting, a heartbeat fires at least every `heartbeat` seconds, because many MCP clients
give up after 30-60 s without progress.

Polls and heartbeats wait with `RunSettings.sleep` and time themselves with `RunSettings.clock`
(the real ones by default), so tests can run them without waiting and see each delay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio

from mcp_server.errors import (
    FoundryImageError,
    ServiceRefusedError,
    ServiceUnreachableError,
)
from mcp_server.foundry.http import AmbiguousRequestError
from mcp_server.foundry.responses import REQUEST_TAG_KEY, ResponsesClient, StreamDropped
from mcp_server.foundry.retry import Clock, Sleep
from mcp_server.foundry.stream_reader import RunHooks as RunHooks
from mcp_server.foundry.stream_reader import Status, StreamReader, with_image
from mcp_server.protocol import PENDING_STATUSES, CreateResponseRequest, Response

logger = logging.getLogger(__name__)
FIRST_POLL_DELAY = 0.1


@dataclass(frozen=True)
class RunSettings:
    poll_interval: float = 1.0
    timeout: float = 600.0
    heartbeat: float = 5.0
    resume_attempts: int = 3
    sleep: Sleep = field(default=anyio.sleep, compare=False, repr=False)
    """Waits between polls and between heartbeats."""
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)
    """Reads the time elapsed that a heartbeat reports."""


class ResponseRunner:
    def __init__(self, responses: ResponsesClient, settings: RunSettings | None = None) -> None:
        self.responses = responses
        self.settings = settings or RunSettings()
        self._stream_refused = False
        self._background_refused = False

    async def run(self, request: CreateResponseRequest, *, hooks: RunHooks, stream: bool = True) -> Response:
        """Create the response and wait for its terminal state."""
        started = self.settings.clock()
        status = Status()
        result: Response | None = None
        failure: Exception | None = None
        with anyio.move_on_after(self.settings.timeout) as deadline:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._beat, hooks, started, status)
                # Caught here rather than let through: a task group would wrap it in an ExceptionGroup.
                try:
                    result = await self._run(request, stream, hooks, status)
                except Exception as exc:
                    failure = exc
                finally:
                    tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if result is None or deadline.cancelled_caught:
            raise ServiceUnreachableError(
                f"The image was not ready after {self.settings.timeout:.0f} s.",
                hint="Try a lower quality or a smaller size, or raise FOUNDRY_IMAGE_MCP_TIMEOUT.",
                code="deadline",
            )
        return result

    async def wait(self, response_id: str) -> Response:
        """Poll an existing response (after a restart, or when its caller left) to its end.

        A completed response retrieved with `result: null` (protocol §4) gets its image from a replay of its
        stream, where `response.output_item.done` carried it."""
        final = await self._poll(await self.responses.retrieve(response_id), Status())
        calls = final.image_calls()
        if final.status != "completed" or not calls or any(call.result for call in calls):
            return final
        reader = StreamReader(RunHooks(), Status())
        reader.response_id = final.id
        try:
            async with self.responses.resume(final.id, 0) as events:
                await reader.consume(events)
        except (FoundryImageError, StreamDropped) as exc:
            logger.warning("Response %s holds no image data and its stream cannot be replayed: %s", final.id, exc)
        return with_image(final, reader.image_item)

    async def cancel(self, response_id: str) -> None:
        """Ask the service to stop a background response; best effort, bounded in time."""
        with anyio.move_on_after(10):
            try:
                await self.responses.cancel(response_id)
                logger.info("Cancelled response %s upstream", response_id)
            except Exception as exc:  # the caller is already unwinding; a failed cancel must not mask that
                logger.warning("Could not cancel response %s: %s", response_id, exc)

    async def _run(self, request: CreateResponseRequest, stream: bool, hooks: RunHooks, status: Status) -> Response:
        if not self._background_refused:
            request = request.model_copy(update={"background": True, "store": True})
        try:
            if stream and not self._stream_refused:
                return await self._streamed(request, hooks, status)
            return await self._polled(request, hooks, status)
        except ServiceRefusedError as exc:
            if exc.status != 400 or status.response_id:
                raise  # only a refused create may be sent again, and only without what it refused
            # Which field the service refused is in `param`; its wording varies.
            param = exc.upstream_param or ""
            if stream and not self._stream_refused and param == "stream":
                self._stream_refused = True
                logger.warning("Foundry refused streaming for the image tool; not streaming from now on.")
                return await self._run(request, False, hooks, status)
            if not self._background_refused and param == "background":
                self._background_refused = True
                logger.warning("Foundry refused background mode; waiting on open requests from now on.")
                return await self._run(request.model_copy(update={"background": None}), stream, hooks, status)
            raise

    async def _polled(self, request: CreateResponseRequest, hooks: RunHooks, status: Status) -> Response:
        try:
            created = await self.responses.create(request)
        except AmbiguousRequestError as exc:
            found = await self._lost_create(request, exc)
            created = found if found is not None else await self.responses.create(request)
        status.response_id = created.id
        await hooks.on_started(created.id)
        return await self._poll(created, status)

    async def _lost_create(self, request: CreateResponseRequest, error: AmbiguousRequestError) -> Response | None:
        """After a create whose answer was lost: the response the service made of it, or None if it made none."""
        tag = (request.metadata or {}).get(REQUEST_TAG_KEY)
        if not tag:
            raise error
        agent = request.agent_reference.name if request.agent_reference else None
        try:
            found = await self.responses.find_by_tag(tag, agent)
        except FoundryImageError:
            raise error from None
        logger.warning(
            "A create's answer was lost (%s); %s", error.message, f"found {found.id}" if found else "retrying"
        )
        return found

    async def _poll(self, response: Response, status: Status) -> Response:
        delay = min(FIRST_POLL_DELAY, self.settings.poll_interval)
        while response.status in PENDING_STATUSES:
            status.value = response.status or "queued"
            await self.settings.sleep(delay)
            delay = min(delay * 2, self.settings.poll_interval)
            response = await self.responses.retrieve(response.id)
        return response

    async def _streamed(self, request: CreateResponseRequest, hooks: RunHooks, status: Status) -> Response:
        reader = StreamReader(hooks, status)
        try:
            try:
                async with self.responses.stream(request) as events:
                    return await reader.consume(events)
            except (AmbiguousRequestError, StreamDropped) as exc:
                if reader.response_id:
                    raise
                # The create was sent but nothing came back that names it: was it accepted?
                lost = exc if isinstance(exc, AmbiguousRequestError) else _lost_stream(exc)
                found = await self._lost_create(request, lost)
                if found is None:
                    async with self.responses.stream(request) as events:
                        return await reader.consume(events)
                await reader.adopt(found.id)
        except StreamDropped as exc:
            if not reader.response_id:
                raise ServiceUnreachableError("Foundry's image stream broke before it started.") from None
            logger.warning("Image stream of %s dropped (%s); resuming", reader.response_id, exc)
        for attempt in range(1, self.settings.resume_attempts + 1):
            try:
                async with self.responses.resume(reader.response_id, reader.last_sequence) as events:
                    return await reader.consume(events)
            except (StreamDropped, ServiceUnreachableError) as exc:
                logger.warning("Resuming %s failed (attempt %d): %s", reader.response_id, attempt, exc)
            except ServiceRefusedError as exc:
                if exc.status != 400:
                    raise
                logger.warning("Foundry refused to resume the stream of %s: %s", reader.response_id, exc.message)
                break
        logger.warning("Could not resume the stream of %s; polling it instead", reader.response_id)
        try:
            final = await self._poll(await self.responses.retrieve(reader.response_id), status)
        except FoundryImageError:
            if reader.image_item is None:
                raise
            logger.warning("Could not poll %s; keeping the final image its stream delivered", reader.response_id)
            return Response(id=reader.response_id, status="completed", output=[reader.image_item])
        return with_image(final, reader.image_item)

    async def _beat(self, hooks: RunHooks, started: float, status: Status) -> None:
        while True:
            await self.settings.sleep(self.settings.heartbeat)
            elapsed = self.settings.clock() - started
            await hooks.on_heartbeat(f"Still generating ({elapsed:.0f} s, {status.value.replace('_', ' ')})")


def _lost_stream(exc: StreamDropped) -> AmbiguousRequestError:
    return AmbiguousRequestError(
        f"Foundry's image stream broke before naming its response ({exc}).", hint="This is usually temporary."
    )
