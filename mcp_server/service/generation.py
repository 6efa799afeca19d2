"""Image generation and editing as a service: options -> agent version -> response -> stored image.

This layer knows Foundry and the store, and nothing of MCP: progress goes out through a plain
callback, and failures are `FoundryImageError`s.

Masks. The mask belongs to the image tool (`input_image_mask`), and with an agent the tool
lives in the agent version, so a mask per call would mean an agent version per mask. Instead
a masked edit uses an agent version whose mask is a structured-input placeholder,
`{"file_id": "{{mask_file_id}}"}`, bound per request through `structured_inputs` to the
uploaded mask: one version per option set, reused for every mask. Whether Foundry binds
placeholders inside image-tool fields is unverified, so when the service refuses them the
server switches (once, for the life of the process) to a direct Responses call with `model`
+ `tools`, which can carry the mask itself.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import anyio
import anyio.to_thread

from mcp_server.errors import (
    FoundryImageError,
    InvalidInputError,
    NotFoundError,
    ServiceRefusedError,
    ServiceUnreachableError,
)
from mcp_server.foundry.agents import INSTRUCTIONS, AgentRegistry, AgentVersionRef
from mcp_server.foundry.files import upload_file
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.responses import REQUEST_TAG_KEY, ExtractedImage, ResponsesClient, extract_image
from mcp_server.foundry.runs import ResponseRunner, RunHooks, RunSettings
from mcp_server.images.partials import PARTIAL_PREVIEW_SIDE, PartialPreviews
from mcp_server.images.preview import Preview, inspect_image, make_preview
from mcp_server.images.store import ImageRecord, ImageStore
from mcp_server.inputs import ResolvedImage
from mcp_server.protocol import (
    MAX_PROMPT_CHARS,
    AgentReference,
    CreateResponseRequest,
    ImageMask,
    InputMessage,
    InputText,
    PartialImageEvent,
    Response,
    is_image_call,
)
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import (
    Call,
    CancelCheck,
    GeneratedImage,
    ImageOptions,
    Parent,
    Progress,
    ProgressCallback,
    always,
    no_progress,
)
from mcp_server.service.edit_inputs import InputUsage, image_parts, usage

logger = logging.getLogger(__name__)

PREVIEW_LIMITER: Final = anyio.CapacityLimiter(2)
"""Previews decode whole images: a few at a time keeps memory flat under concurrency, at no cost in
throughput since the work is CPU-bound."""

MASK_INPUT: Final = "mask_file_id"

MASK_INPUT_DECLARATION: Final = {
    MASK_INPUT: {"description": "File id of the uploaded edit mask (PNG with alpha).", "required": True}
}


class ImageService:
    def __init__(
        self,
        http: FoundryHttp,
        registry: AgentRegistry,
        *,
        model_deployment: str,
        jobs: BackgroundJobs,
        run_settings: RunSettings | None = None,
        partials: PartialPreviews | None = None,
        max_concurrent: int = 16,
    ) -> None:
        self._http = http
        self._registry = registry
        self._runner = ResponseRunner(ResponsesClient(http), run_settings)
        self._jobs = jobs
        self._slots = anyio.CapacityLimiter(max_concurrent)
        self.partials = partials or PartialPreviews()
        self._image_deployment = http.image_deployment
        self._model_deployment = model_deployment
        self._masks_via_agent = True

    async def generate(
        self,
        prompt: str,
        options: ImageOptions,
        store: ImageStore,
        progress: ProgressCallback = no_progress,
        client_cancelled: CancelCheck = always,
    ) -> GeneratedImage:
        self._check(prompt, options)
        call = Call(prompt, options, Progress(progress), store, client_cancelled)
        return await self._finish(*await self._run(call), call)

    async def edit(
        self,
        prompt: str,
        images: Sequence[ResolvedImage],
        mask: ResolvedImage | None,
        options: ImageOptions,
        store: ImageStore,
        progress: ProgressCallback = no_progress,
        client_cancelled: CancelCheck = always,
    ) -> GeneratedImage:
        self._check(prompt, options)
        tracker = Progress(progress)
        await tracker.at(0, "Preparing the inputs")
        parent = _parent_of(images[0], store)
        mask_usage: list[InputUsage] = []
        mask_id: str | None = None
        if mask is not None:
            mask_id = mask.file_id or await self._upload(mask)
            mask_usage.append(usage(mask, "file_id" if mask.file_id else "uploaded", mask_id))
        parts, used = await image_parts(images[1:] if parent else images, self._upload)
        if parent:
            used.insert(0, usage(images[0], "previous_response"))
        call = Call(
            prompt,
            options,
            tracker,
            store,
            client_cancelled,
            parts=tuple(parts),
            edit=True,
            mask_file_id=mask_id,
            previous_response_id=parent.response_id if parent else None,
            inputs=(*used, *mask_usage),
            parent=parent,
        )
        try:
            return await self._finish(*await self._run(call), call)
        except NotFoundError as exc:
            if parent is None or not _is_previous_response_error(exc):
                raise
        # The service no longer has the earlier turn (30-day retention, or deleted): send the bytes.
        logger.info("Response %s is gone; sending the parent image's bytes instead", parent.response_id)
        parts, used = await image_parts(images, self._upload)
        call = replace(call, parts=tuple(parts), previous_response_id=None, inputs=(*used, *mask_usage))
        return await self._finish(*await self._run(call), call)

    async def resume_pending(self, stores: Sequence[ImageStore]) -> None:
        """Finish, in the background, the generations a previous run of the server left in flight."""
        for store in stores:
            for record in await anyio.to_thread.run_sync(store.pending):
                logger.info("Resuming generation %s left in flight", record["response_id"])
                self._jobs.start(self._recover, record, store)

    def _check(self, prompt: str, options: ImageOptions) -> None:
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty.", hint="Describe the image to generate or the edit to make.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; shorten it.")
        options.check(self._image_deployment)

    async def _upload(self, image: ResolvedImage) -> str:
        assert image.data is not None and image.output_format is not None
        extension = {"jpeg": "jpg"}.get(image.output_format, image.output_format)
        return await upload_file(self._http, image.data, f"{image.label}.{extension}", image.mime_type or "")

    async def _run(self, call: Call) -> tuple[Response, AgentVersionRef]:
        await call.progress.at(0, "Preparing the image agent")
        if call.mask_file_id and not self._masks_via_agent:
            return await self._send(self._direct_request(call), call, _DIRECT), _DIRECT
        for attempt in (1, 2):
            ref: AgentVersionRef | None = None
            try:
                ref = await self._version_for(call)
                return await self._send(self._agent_request(call, ref), call, ref), ref
            except NotFoundError as exc:
                gone = ref is not None and exc.code != "deployment_not_found" and not _is_previous_response_error(exc)
                if attempt == 2 or ref is None or not gone:
                    raise
                logger.warning("Agent version %s:%s is gone; recreating it", ref.name, ref.version)
                self._registry.forget(ref)
            except ServiceRefusedError as exc:
                if not (call.mask_file_id and _is_placeholder_refusal(exc)):
                    raise
                logger.warning("Foundry refused a mask placeholder in the agent; sending masked edits directly.")
                self._masks_via_agent = False
                return await self._send(self._direct_request(call), call, _DIRECT), _DIRECT
        raise AssertionError("unreachable")

    async def _version_for(self, call: Call) -> AgentVersionRef:
        if call.mask_file_id:
            tool = call.options.tool(self._image_deployment, edit=True, mask=ImageMask(file_id="{{mask_file_id}}"))
            return await self._registry.version_for(tool, MASK_INPUT_DECLARATION)
        return await self._registry.version_for(call.options.tool(self._image_deployment, edit=call.edit))

    def _message(self, call: Call) -> list[dict[str, Any]]:
        content = [InputText(text=call.prompt).to_wire(), *call.parts]
        return [InputMessage(content=content).to_wire()]

    def _agent_request(self, call: Call, ref: AgentVersionRef) -> CreateResponseRequest:
        return CreateResponseRequest(
            agent_reference=AgentReference(name=ref.name, version=ref.version),
            input=self._message(call),
            store=True,
            previous_response_id=call.previous_response_id,
            structured_inputs={MASK_INPUT: call.mask_file_id} if call.mask_file_id else None,
            metadata={REQUEST_TAG_KEY: uuid.uuid4().hex},
        )

    def _direct_request(self, call: Call) -> CreateResponseRequest:
        mask = ImageMask(file_id=call.mask_file_id) if call.mask_file_id else None
        tool = call.options.tool(self._image_deployment, edit=call.edit, mask=mask)
        return CreateResponseRequest(
            model=self._model_deployment,
            instructions=INSTRUCTIONS,
            tools=[tool.to_wire()],
            tool_choice={"type": "image_generation"},
            input=self._message(call),
            store=True,
            previous_response_id=call.previous_response_id,
            metadata={REQUEST_TAG_KEY: uuid.uuid4().hex},
        )

    async def _send(self, request: CreateResponseRequest, call: Call, ref: AgentVersionRef) -> Response:
        """Run one response to its end; what happens when the caller goes away is decided here."""
        response_id = ""
        partials = call.options.partial_images

        async def started(rid: str) -> None:
            nonlocal response_id
            response_id = rid
            await anyio.to_thread.run_sync(call.store.save_pending, rid, call.provenance(ref))
            await call.progress.at(5, "Generating the image")

        async def partial(event: PartialImageEvent) -> None:
            number = event.partial_image_index + 1
            uri = self.partials.reserve(response_id or event.item_id, event.partial_image_index)
            await call.progress.at(5 + 85 * number / (partials + 1), f"Partial image {number} of {partials}: {uri}")
            await self._render_partial(uri, event.partial_image_b64)

        hooks = RunHooks(on_started=started, on_partial=partial, on_heartbeat=call.progress.tick)
        await self._take_slot(call)
        try:
            return await self._runner.run(request, hooks=hooks)
        except anyio.get_cancelled_exc_class():
            if response_id:
                with anyio.CancelScope(shield=True):
                    await self._abandon(response_id, call, ref, cancel=call.client_cancelled())
            raise
        except ServiceUnreachableError as exc:
            if response_id:
                with anyio.CancelScope(shield=True):
                    await self._abandon(response_id, call, ref, cancel=exc.code == "deadline")
            raise
        except FoundryImageError:
            if response_id:
                call.store.drop_pending(response_id)
            raise
        finally:
            self._slots.release()

    async def _take_slot(self, call: Call) -> None:
        """Wait for one of the `max_concurrent` upstream generation slots, telling the client while it waits."""
        while True:
            with anyio.move_on_after(self._runner.settings.heartbeat) as waiting:
                await self._slots.acquire()
            if not waiting.cancelled_caught:
                return
            await call.progress.tick(f"Waiting for a free generation slot ({self._slots.borrowed_tokens} running)")

    async def _abandon(self, response_id: str, call: Call, ref: AgentVersionRef, *, cancel: bool) -> None:
        """The caller stopped waiting: cancel upstream if it asked to, else finish in the background."""
        if cancel:
            await self._runner.cancel(response_id)
            call.store.drop_pending(response_id)
        else:
            logger.info("The caller left; finishing %s in the background", response_id)
            self._jobs.start(self._recover, {"response_id": response_id, **call.provenance(ref)}, call.store)

    async def _render_partial(self, uri: str, b64: str) -> None:
        try:
            data = base64.b64decode(b64)
            preview: Preview | None = await anyio.to_thread.run_sync(
                make_preview, data, PARTIAL_PREVIEW_SIDE, limiter=PREVIEW_LIMITER
            )
        except (ValueError, OSError) as exc:  # a damaged partial must not fail the generation
            logger.warning("Could not render partial image %s: %s", uri, exc)
            preview = None
        self.partials.fill(uri, preview)

    async def _recover(self, record: dict[str, Any], store: ImageStore) -> None:
        response_id = str(record["response_id"])
        with anyio.fail_after(self._runner.settings.timeout):
            response = await self._runner.wait(response_id)
        if not any(is_image_call(item) and item.get("result") for item in response.output):
            logger.info("Generation %s ended %s without an image", response_id, response.status)
            store.drop_pending(response_id)
            return
        image = extract_image(response)
        metadata = {key: record.get(key) for key in _PROVENANCE_KEYS}
        stored = await anyio.to_thread.run_sync(self._save, image, metadata, store)
        logger.info("Stored %s from generation %s after its caller left", stored.file_name, response_id)

    async def _finish(self, response: Response, ref: AgentVersionRef, call: Call) -> GeneratedImage:
        image = extract_image(response)
        await call.progress.at(95, "Saving the image")
        record = await anyio.to_thread.run_sync(self._save, image, call.provenance(ref), call.store)
        preview = await anyio.to_thread.run_sync(make_preview, image.data, limiter=PREVIEW_LIMITER)
        await call.progress.at(100, f"Saved {record.file_name}")
        return GeneratedImage(record=record, preview=preview, inputs=call.inputs, parent=call.parent)

    def _save(self, image: ExtractedImage, provenance: dict[str, Any], store: ImageStore) -> ImageRecord:
        info = inspect_image(image.data)
        record = store.save(
            image.data,
            output_format=info.output_format,
            width=info.width,
            height=info.height,
            metadata={**provenance, "revised_prompt": image.call.revised_prompt, "response_id": image.response_id},
        )
        store.drop_pending(image.response_id)
        return record


def _parent_of(image: ResolvedImage, store: ImageStore) -> Parent | None:
    if image.kind != "resource" or image.image_id is None:
        return None
    record = store.get(image.image_id)
    if record is None or not record.response_id:
        return None
    return Parent(record.image_id, record.uri, record.response_id)


_PROVENANCE_KEYS: Final = ("kind", "prompt", "options", "agent_name", "agent_version", "inputs", "parent")


_DIRECT: Final = AgentVersionRef(name="", version="", config_hash="")
"""Marks a result produced by a direct `model` + `tools` call, without an agent."""


def _is_previous_response_error(exc: NotFoundError) -> bool:
    return exc.upstream_param == "previous_response_id" or "previous response" in exc.message.lower()


def _is_placeholder_refusal(exc: ServiceRefusedError) -> bool:
    text = f"{exc.message} {exc.upstream_param or ''}".lower()
    return exc.status == 400 and any(word in text for word in ("placeholder", "structured_input", "input_image_mask"))
