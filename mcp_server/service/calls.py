"""What one image call is: its options, its progress, and what it produced.

These are the values the service and the MCP surface pass between them; the service that runs a
call lives in `mcp_server.service.generation`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from mcp_server.config import IMAGE_VAR
from mcp_server.errors import InvalidInputError
from mcp_server.foundry.agents import AgentVersionRef
from mcp_server.images.base import ImageStore
from mcp_server.images.preview import Preview
from mcp_server.images.records import ImageRecord
from mcp_server.protocol import (
    BACKGROUND,
    COMPRESSED_FORMATS,
    INPUT_FIDELITY,
    MODERATION,
    OUTPUT_COMPRESSION,
    OUTPUT_FORMAT,
    PARTIAL_IMAGES,
    QUALITY,
    SIZE,
    TRANSPARENT_FORMATS,
    Background,
    ImageGenerationTool,
    ImageMask,
    InputFidelity,
    Moderation,
    OutputFormat,
    Quality,
    Size,
    find_violation,
    retirement_notice,
)
from mcp_server.service.edit_inputs import InputUsage

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]
CancelCheck = Callable[[], bool]
PROGRESS_TOTAL: Final = 100.0


async def no_progress(progress: float, total: float | None, message: str) -> None:
    return None


def always() -> bool:
    return True


class Progress:
    """Progress in percent that only moves forward; heartbeats creep by a hundredth."""

    def __init__(self, sink: ProgressCallback) -> None:
        self._sink = sink
        self._last = -1.0

    async def at(self, value: float, message: str) -> None:
        if value > self._last:
            self._last = value
            await self._sink(value, PROGRESS_TOTAL, message)

    async def tick(self, message: str) -> None:
        await self.at(max(self._last, 0.0) + 0.01, message)


@dataclass(frozen=True)
class ImageOptions:
    """Everything the image tool is configured with; each distinct value set is one agent version.

    The fields are the options of `mcp_server.protocol.IMAGE_OPTIONS` but `action` (set per call), with
    the defaults defined there.
    """

    size: Size = SIZE.default
    quality: Quality = QUALITY.default
    output_format: OutputFormat = OUTPUT_FORMAT.default
    output_compression: int | None = OUTPUT_COMPRESSION.default
    background: Background = BACKGROUND.default
    moderation: Moderation = MODERATION.default
    partial_images: int = PARTIAL_IMAGES.default
    input_fidelity: InputFidelity | None = INPUT_FIDELITY.default

    def check(self, model: str, *, today: date | None = None) -> None:
        """Refuse what the image deployment's model `model` (its `modelName`) rejects, before any upstream
        call: a retired model, then each model rule (`mcp_server.protocol.models`), then the format
        combinations. An unknown model is checked against the most permissive known rules."""
        problem = self.problem(model, today=today)
        if problem is not None:
            raise problem

    def problem(self, model: str, *, today: date | None = None) -> InvalidInputError | None:
        """What `check` would raise, or None; `today` (UTC by default) decides retirement."""
        retired = retirement_notice(model, today or datetime.now(UTC).date())
        if retired is not None:
            return InvalidInputError(f"{retired} and set {IMAGE_VAR} to its deployment name.")
        violation = find_violation(model, asdict(self))
        if violation is not None:
            return InvalidInputError(violation.message)
        if self.background == "transparent" and self.output_format not in TRANSPARENT_FORMATS:
            return InvalidInputError(
                f"background='transparent' needs output_format {_either(TRANSPARENT_FORMATS)}, "
                f"not '{self.output_format}'.",
                hint="Use output_format='png' (or 'webp') for a transparent background, or background='opaque'.",
            )
        if self.output_compression is not None and self.output_format not in COMPRESSED_FORMATS:
            return InvalidInputError(
                f"output_compression only applies to {_either(COMPRESSED_FORMATS, 'and')} output; "
                f"{self.output_format.upper()} is lossless.",
                hint="Leave output_compression out, or choose output_format='jpeg' or 'webp'.",
            )
        return None

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


def _either(values: tuple[str, ...], conjunction: str = "or") -> str:
    return f" {conjunction} ".join(f"'{value}'" for value in values)


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
    unsaved: str | None = None
    """Why the image is held in memory only (the disk refused it); None once it is saved."""


@dataclass(frozen=True)
class Call:
    """One image request as the service will see it, before it is routed to an agent or not."""

    prompt: str
    options: ImageOptions
    progress: Progress
    store: ImageStore
    client_cancelled: CancelCheck = always
    parts: tuple[dict[str, Any], ...] = ()
    edit: bool = False
    mask_file_id: str | None = None
    previous_response_id: str | None = None
    inputs: tuple[InputUsage, ...] = ()
    parent: Parent | None = None

    def provenance(self, ref: AgentVersionRef) -> dict[str, Any]:
        """What the stored image's metadata records about how it was made (also kept while in flight)."""
        return {
            "kind": "edit" if self.edit else "generate",
            "prompt": self.prompt,
            "options": asdict(self.options),
            "agent_name": ref.name or None,
            "agent_version": ref.version or None,
            "inputs": [item.to_dict() for item in self.inputs],
            "parent": asdict(self.parent) if self.parent else None,
        }
