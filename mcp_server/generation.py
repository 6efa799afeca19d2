"""Image generation as a service: options -> agent version -> response -> stored image + preview.

This layer knows Foundry and the store, and nothing of MCP: progress goes out through a plain
callback, and failures are `FoundryImageError`s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import anyio.to_thread

from mcp_server.errors import InvalidInputError, NotFoundError
from mcp_server.foundry.agents import AgentRegistry, AgentVersionRef
from mcp_server.foundry.responses import ImageResult, ResponsesClient, extract_image
from mcp_server.preview import Preview, inspect_image, make_preview
from mcp_server.protocol import (
    MAX_PROMPT_CHARS,
    AgentReference,
    CreateResponseRequest,
    ImageGenerationTool,
    InputMessage,
    InputText,
    PartialImageEvent,
    Response,
)
from mcp_server.store import ImageRecord, ImageStore

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]


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

    def check(self) -> None:
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

    def tool(self, image_deployment: str) -> ImageGenerationTool:
        return ImageGenerationTool(
            model=image_deployment,
            size=self.size,
            quality=self.quality,
            output_format=self.output_format,
            output_compression=self.output_compression,
            background=self.background,
            moderation=self.moderation,
            partial_images=self.partial_images or None,
        )


@dataclass(frozen=True)
class GeneratedImage:
    record: ImageRecord
    preview: Preview


class ImageGenerator:
    def __init__(
        self, registry: AgentRegistry, responses: ResponsesClient, store: ImageStore, image_deployment: str
    ) -> None:
        self._registry = registry
        self._responses = responses
        self._store = store
        self._image_deployment = image_deployment

    async def generate(
        self, prompt: str, options: ImageOptions, progress: ProgressCallback = _no_progress
    ) -> GeneratedImage:
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty.", hint="Describe the image to generate.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; shorten it.")
        options.check()
        total = float(options.partial_images + 3)
        await progress(0, total, "Preparing the image agent")
        ref = await self._registry.version_for(options.tool(self._image_deployment))
        await progress(1, total, "Generating the image")
        request = CreateResponseRequest(
            agent_reference=AgentReference(name=ref.name, version=ref.version),
            input=[InputMessage(content=[InputText(text=prompt).to_wire()]).to_wire()],
            store=True,
        )
        response, ref = await self._respond(request, ref, options, progress, total)
        image = extract_image(response)
        await progress(total - 1, total, "Saving the image")
        generated = await anyio.to_thread.run_sync(self._save, image, prompt, options, ref)
        await progress(total, total, f"Saved {generated.record.file_name}")
        return generated

    async def _respond(
        self,
        request: CreateResponseRequest,
        ref: AgentVersionRef,
        options: ImageOptions,
        progress: ProgressCallback,
        total: float,
    ) -> tuple[Response, AgentVersionRef]:
        async def on_partial(event: PartialImageEvent) -> None:
            number = event.partial_image_index + 1
            await progress(1 + number, total, f"Partial image {number} of {options.partial_images} received")

        for attempt in (1, 2):
            try:
                if options.partial_images:
                    return await self._responses.create_streamed(request, on_partial), ref
                return await self._responses.create(request), ref
            except NotFoundError as exc:
                # The agent version was deleted behind our back: recreate it once.
                if attempt == 2 or exc.code == "deployment_not_found":
                    raise
                logger.warning("Agent version %s:%s is gone; recreating it", ref.name, ref.version)
                self._registry.forget(ref)
                ref = await self._registry.version_for(options.tool(self._image_deployment))
                request = request.model_copy(
                    update={"agent_reference": AgentReference(name=ref.name, version=ref.version)}
                )
        raise AssertionError("unreachable")

    def _save(self, image: ImageResult, prompt: str, options: ImageOptions, ref: AgentVersionRef) -> GeneratedImage:
        info = inspect_image(image.data)
        record = self._store.save(
            image.data,
            output_format=info.output_format,
            width=info.width,
            height=info.height,
            metadata={
                "prompt": prompt,
                "revised_prompt": image.call.revised_prompt,
                "options": asdict(options),
                "response_id": image.response_id,
                "agent_name": ref.name,
                "agent_version": ref.version,
            },
        )
        return GeneratedImage(record=record, preview=make_preview(image.data))
