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

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

import anyio.to_thread

from mcp_server.edit_inputs import InputUsage, image_parts, usage
from mcp_server.errors import InvalidInputError, NotFoundError, ServiceRefusedError
from mcp_server.foundry.agents import INSTRUCTIONS, AgentRegistry, AgentVersionRef
from mcp_server.foundry.files import upload_file
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.responses import ImageResult, ResponsesClient, extract_image
from mcp_server.inputs import ResolvedImage
from mcp_server.preview import Preview, inspect_image, make_preview
from mcp_server.protocol import (
    MAX_PROMPT_CHARS,
    AgentReference,
    CreateResponseRequest,
    ImageGenerationTool,
    ImageMask,
    InputMessage,
    InputText,
    PartialImageEvent,
    Response,
)
from mcp_server.store import ImageRecord, ImageStore

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]
MASK_INPUT: Final = "mask_file_id"
MASK_INPUT_DECLARATION: Final = {
    MASK_INPUT: {"description": "File id of the uploaded edit mask (PNG with alpha).", "required": True}
}


async def _no_progress(progress: float, total: float | None, message: str) -> None:
    return None


@dataclass(frozen=True)
class ImageOptions:
    """Everything the image tool is configured with; each distinct value set is one agent version."""

    size: str = "auto"
    quality: str = "auto"
    output_format: str = "png"
    output_compression: int | None = None
    background: str = "auto"
    moderation: str = "auto"
    partial_images: int = 0
    input_fidelity: str | None = None

    def check(self, image_deployment: str) -> None:
        """Refuse combinations the service rejects, before any upstream call."""
        if self.background == "transparent" and self.output_format not in ("png", "webp"):
            raise InvalidInputError(
                f"background='transparent' needs output_format 'png' or 'webp', not '{self.output_format}'.",
                hint="Use output_format='png' (or 'webp') for a transparent background, or background='opaque'.",
            )
        if self.output_compression is not None and self.output_format == "png":
            raise InvalidInputError(
                "output_compression only applies to 'jpeg' and 'webp' output; PNG is lossless.",
                hint="Leave output_compression out, or choose output_format='jpeg' or 'webp'.",
            )
        if self.input_fidelity is not None and "mini" in image_deployment.lower():
            raise InvalidInputError(
                f"input_fidelity is not supported by the image deployment '{image_deployment}' (gpt-image-1-mini).",
                hint="Leave input_fidelity out, or set AZURE_AI_IMAGE_DEPLOYMENT_NAME to a gpt-image-1 deployment.",
            )

    def tool(self, image_deployment: str, *, edit: bool = False, mask: ImageMask | None = None) -> ImageGenerationTool:
        return ImageGenerationTool(
            model=image_deployment,
            size=self.size,
            quality=self.quality,
            output_format=self.output_format,
            output_compression=self.output_compression,
            background=self.background,
            moderation=self.moderation,
            partial_images=self.partial_images or None,
            input_fidelity=self.input_fidelity,
            action="edit" if edit else None,
            input_image_mask=mask,
        )


@dataclass(frozen=True)
class Parent:
    image_id: str
    uri: str
    response_id: str


@dataclass(frozen=True)
class GeneratedImage:
    record: ImageRecord
    preview: Preview
    inputs: tuple[InputUsage, ...] = ()
    parent: Parent | None = None


@dataclass(frozen=True)
class _Call:
    """One image request as the service will see it, before it is routed to an agent or not."""

    prompt: str
    options: ImageOptions
    parts: tuple[dict[str, Any], ...] = ()
    edit: bool = False
    mask_file_id: str | None = None
    previous_response_id: str | None = None


class ImageService:
    def __init__(self, http: FoundryHttp, registry: AgentRegistry, store: ImageStore, *, model_deployment: str) -> None:
        self._http = http
        self._registry = registry
        self._responses = ResponsesClient(http)
        self._store = store
        self._image_deployment = http.image_deployment
        self._model_deployment = model_deployment
        self._masks_via_agent = True

    async def generate(
        self, prompt: str, options: ImageOptions, progress: ProgressCallback = _no_progress
    ) -> GeneratedImage:
        self._check(prompt, options)
        total = float(options.partial_images + 3)
        response, ref = await self._run(_Call(prompt, options), progress, total)
        return await self._finish(response, ref, _Call(prompt, options), progress, total, (), None)

    async def edit(
        self,
        prompt: str,
        images: Sequence[ResolvedImage],
        mask: ResolvedImage | None,
        options: ImageOptions,
        progress: ProgressCallback = _no_progress,
    ) -> GeneratedImage:
        self._check(prompt, options)
        total = float(options.partial_images + 3)
        parent = self._parent_of(images[0])
        mask_usage: list[InputUsage] = []
        mask_id: str | None = None
        if mask is not None:
            mask_id = mask.file_id or await self._upload(mask)
            mask_usage.append(usage(mask, "file_id" if mask.file_id else "uploaded", mask_id))
        sent_images = images[1:] if parent else images
        parts, used = await image_parts(sent_images, self._upload)
        call = _Call(prompt, options, tuple(parts), True, mask_id, parent.response_id if parent else None)
        if parent:
            used.insert(0, usage(images[0], "previous_response"))
        try:
            response, ref = await self._run(call, progress, total)
        except NotFoundError as exc:
            if parent is None or not _is_previous_response_error(exc):
                raise
            # The service no longer has the earlier turn (30-day retention, or deleted): send the bytes.
            logger.info("Response %s is gone; sending the parent image's bytes instead", parent.response_id)
            parts, used = await image_parts(images, self._upload)
            call = replace(call, parts=tuple(parts), previous_response_id=None)
            response, ref = await self._run(call, progress, total)
        return await self._finish(response, ref, call, progress, total, (*used, *mask_usage), parent)

    def _check(self, prompt: str, options: ImageOptions) -> None:
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty.", hint="Describe the image to generate or the edit to make.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; shorten it.")
        options.check(self._image_deployment)

    def _parent_of(self, image: ResolvedImage) -> Parent | None:
        if image.kind != "resource" or image.image_id is None:
            return None
        record = self._store.get(image.image_id)
        if record is None or not record.response_id:
            return None
        return Parent(record.image_id, record.uri, record.response_id)

    async def _upload(self, image: ResolvedImage) -> str:
        assert image.data is not None and image.output_format is not None
        extension = {"jpeg": "jpg"}.get(image.output_format, image.output_format)
        return await upload_file(self._http, image.data, f"{image.label}.{extension}", image.mime_type or "")

    async def _run(self, call: _Call, progress: ProgressCallback, total: float) -> tuple[Response, AgentVersionRef]:
        await progress(0, total, "Preparing the image agent")
        if call.mask_file_id and not self._masks_via_agent:
            await progress(1, total, "Generating the image")
            return await self._send(self._direct_request(call), call, progress, total), _DIRECT
        for attempt in (1, 2):
            ref: AgentVersionRef | None = None
            try:
                ref = await self._version_for(call)
                await progress(1, total, "Generating the image")
                return await self._send(self._agent_request(call, ref), call, progress, total), ref
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
                return await self._send(self._direct_request(call), call, progress, total), _DIRECT
        raise AssertionError("unreachable")

    async def _version_for(self, call: _Call) -> AgentVersionRef:
        if call.mask_file_id:
            tool = call.options.tool(self._image_deployment, edit=True, mask=ImageMask(file_id="{{mask_file_id}}"))
            return await self._registry.version_for(tool, MASK_INPUT_DECLARATION)
        return await self._registry.version_for(call.options.tool(self._image_deployment, edit=call.edit))

    def _message(self, call: _Call) -> list[dict[str, Any]]:
        content = [InputText(text=call.prompt).to_wire(), *call.parts]
        return [InputMessage(content=content).to_wire()]

    def _agent_request(self, call: _Call, ref: AgentVersionRef) -> CreateResponseRequest:
        return CreateResponseRequest(
            agent_reference=AgentReference(name=ref.name, version=ref.version),
            input=self._message(call),
            store=True,
            previous_response_id=call.previous_response_id,
            structured_inputs={MASK_INPUT: call.mask_file_id} if call.mask_file_id else None,
        )

    def _direct_request(self, call: _Call) -> CreateResponseRequest:
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
        )

    async def _send(
        self, request: CreateResponseRequest, call: _Call, progress: ProgressCallback, total: float
    ) -> Response:
        async def on_partial(event: PartialImageEvent) -> None:
            number = event.partial_image_index + 1
            await progress(1 + number, total, f"Partial image {number} of {call.options.partial_images} received")

        if call.options.partial_images:
            return await self._responses.create_streamed(request, on_partial)
        return await self._responses.create(request)

    async def _finish(
        self,
        response: Response,
        ref: AgentVersionRef,
        call: _Call,
        progress: ProgressCallback,
        total: float,
        inputs: tuple[InputUsage, ...],
        parent: Parent | None,
    ) -> GeneratedImage:
        image = extract_image(response)
        await progress(total - 1, total, "Saving the image")
        record, preview = await anyio.to_thread.run_sync(self._save, image, call, ref, inputs, parent)
        await progress(total, total, f"Saved {record.file_name}")
        return GeneratedImage(record=record, preview=preview, inputs=inputs, parent=parent)

    def _save(
        self,
        image: ImageResult,
        call: _Call,
        ref: AgentVersionRef,
        inputs: tuple[InputUsage, ...],
        parent: Parent | None,
    ) -> tuple[ImageRecord, Preview]:
        info = inspect_image(image.data)
        record = self._store.save(
            image.data,
            output_format=info.output_format,
            width=info.width,
            height=info.height,
            metadata={
                "kind": "edit" if call.edit else "generate",
                "prompt": call.prompt,
                "revised_prompt": image.call.revised_prompt,
                "options": asdict(call.options),
                "response_id": image.response_id,
                "agent_name": ref.name or None,
                "agent_version": ref.version or None,
                "inputs": [item.to_dict() for item in inputs],
                "parent": asdict(parent) if parent else None,
            },
        )
        return record, make_preview(image.data)


_DIRECT: Final = AgentVersionRef(name="", version="", config_hash="")
"""Marks a result produced by a direct `model` + `tools` call, without an agent."""


def _is_previous_response_error(exc: NotFoundError) -> bool:
    return exc.upstream_param == "previous_response_id" or "previous response" in exc.message.lower()


def _is_placeholder_refusal(exc: ServiceRefusedError) -> bool:
    text = f"{exc.message} {exc.upstream_param or ''}".lower()
    return exc.status == 400 and any(word in text for word in ("placeholder", "structured_input", "input_image_mask"))
