"""Tool results: what a client receives for a stored image, or for a failure."""

from __future__ import annotations

import base64
import logging
from dataclasses import asdict
from typing import Any, Final

from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)
from pydantic import BaseModel, Field, ValidationError

from mcp_server.errors import FoundryImageError, InternalError, InvalidInputError, StorageError
from mcp_server.images.base import ImageStore
from mcp_server.images.records import ImageRecord
from mcp_server.service.calls import GeneratedImage

logger = logging.getLogger(__name__)
INLINE_ORIGINAL_BYTES: Final = 3 * 1024 * 1024
"""An image the disk refused is also embedded whole in its result when it is at most this large."""


class ErrorInfo(BaseModel):
    code: str = Field(description="Short machine code, e.g. content_filter, rate_limited, invalid_input")
    message: str
    hint: str | None = Field(default=None, description="What to do next")
    status: int | None = Field(default=None, description="Upstream HTTP status")
    upstream_code: str | None = None
    request_id: str | None = Field(default=None, description="Foundry request id, for support")
    retry_after_seconds: float | None = Field(default=None, description="How long the service asked to wait")
    pending_uri: str | None = Field(
        default=None,
        description="Where the image will appear if the interrupted generation still finishes upstream "
        "(the server keeps finishing it, also across restarts)",
    )


class ImageResult(BaseModel):
    """The `structuredContent` of an image tool call (its `outputSchema`).

    A successful call fills the image fields; a failed one (`isError`) fills only `error`. Both
    shapes fit this one schema, because some clients check error results against it too.
    """

    image_id: str | None = Field(default=None, description="Store id of the image")
    uri: str | None = Field(default=None, description="Resource URI: read it with resources/read for the exact bytes")
    path: str | None = Field(default=None, description="Absolute path of the saved file on the server's machine")
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = Field(default=None, description="Size of the stored file in bytes")
    prompt: str | None = None
    revised_prompt: str | None = Field(default=None, description="The prompt as the image model rewrote it")
    options: dict[str, Any] | None = Field(default=None, description="Image tool options used")
    response_id: str | None = Field(default=None, description="Foundry response id")
    agent_name: str | None = None
    agent_version: str | None = None
    preview_mime_type: str | None = Field(default=None, description="MIME type of the inline preview")
    preview_width: int | None = None
    preview_height: int | None = None
    kind: str | None = Field(default=None, description="generate or edit")
    inputs: list[dict[str, Any]] | None = Field(
        default=None, description="Edit inputs used: label, kind of reference, and how each reached the service"
    )
    parent: dict[str, Any] | None = Field(
        default=None, description="The earlier image this edit continued (image_id, uri, response_id)"
    )
    saved: bool | None = Field(
        default=None,
        description="False when the disk refused the image: it is then held in memory (read it at `uri`) and "
        "written to `path`'s directory once the disk takes it",
    )
    unsaved_reason: str | None = Field(default=None, description="Why the image is not on disk yet")
    error: ErrorInfo | None = Field(default=None, description="Set, instead of the image fields, when the call failed")


def image_result(
    generated: GeneratedImage, store: ImageStore, *, note: str | None = None, data: bytes | None = None
) -> CallToolResult:
    """The result of a stored image; `data` (the exact bytes) is embedded when the disk refused the image."""
    record, preview = generated.record, generated.preview
    local = store.path_of(record)
    path = local.resolve() if local is not None else None
    structured = ImageResult(
        image_id=record.image_id,
        uri=record.uri,
        path=None if generated.unsaved or path is None else str(path),
        mime_type=record.mime_type,
        width=record.width,
        height=record.height,
        bytes=record.bytes,
        prompt=record.prompt,
        revised_prompt=record.revised_prompt,
        options=record.options,
        response_id=record.response_id,
        agent_name=record.agent_name,
        agent_version=record.agent_version,
        preview_mime_type=preview.mime_type,
        preview_width=preview.width,
        preview_height=preview.height,
        kind="edit" if generated.inputs else "generate",
        inputs=[item.to_dict() for item in generated.inputs],
        parent=asdict(generated.parent) if generated.parent else None,
        saved=not generated.unsaved,
        unsaved_reason=generated.unsaved,
    )
    verb = "Edited" if generated.inputs else "Generated"
    lines = [
        f"{verb} a {record.width}x{record.height} {record.output_format.upper()} image ({record.bytes:,} bytes).",
        *(_unsaved_lines(generated.unsaved, store) if generated.unsaved else [f"Saved to: {path or store.label}"]),
        f"Resource: {record.uri} (read it for the full-resolution original; the inline image is a preview)",
    ]
    if generated.parent:
        lines.append(f"Continued from {generated.parent.uri} (response {generated.parent.response_id}).")
    if generated.inputs:
        lines.append("Inputs: " + ", ".join(f"{i.label} ({i.kind}, sent {i.sent_as})" for i in generated.inputs))
    if record.revised_prompt:
        lines.append(f"Revised prompt: {record.revised_prompt}")
    if note:
        lines.append(note)
    content: list[ContentBlock] = [
        ImageContent(data=base64.b64encode(preview.data).decode(), mime_type=preview.mime_type),
        resource_link(record, store),
        TextContent(text="\n".join(lines)),
    ]
    if generated.unsaved and data is not None and len(data) <= INLINE_ORIGINAL_BYTES:
        blob = BlobResourceContents(uri=record.uri, blob=base64.b64encode(data).decode(), mime_type=record.mime_type)
        content.insert(2, EmbeddedResource(resource=blob))
    return CallToolResult(content=content, structured_content=structured.model_dump(mode="json", exclude={"error"}))


def _unsaved_lines(reason: str, store: ImageStore) -> list[str]:
    return [
        f"NOT saved yet: {store.label} refused it ({reason}).",
        "It is kept in memory and served at the resource below, and written to that directory as soon as the "
        "disk takes it (free some space or make it writable). If the server stops first, its next start fetches "
        "the image from Foundry again.",
    ]


def resource_link(record: ImageRecord, store: ImageStore) -> ResourceLink:
    return ResourceLink(
        uri=record.uri,
        name=record.file_name,
        title=_title(record),
        description=f"{record.width}x{record.height} image saved at {_where(record, store)}",
        mime_type=record.mime_type,
        size=record.bytes,
    )


def _where(record: ImageRecord, store: ImageStore) -> str:
    local = store.path_of(record)
    return str(local.resolve()) if local is not None else f"{store.label}/{record.file_name}"


def _title(record: ImageRecord) -> str:
    prompt = (record.prompt or record.image_id).strip().replace("\n", " ")
    return prompt if len(prompt) <= 80 else prompt[:77] + "..."


def error_result(error: FoundryImageError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(text=str(error))],
        structured_content={"error": ErrorInfo.model_validate(error.to_dict()).model_dump(mode="json")},
        is_error=True,
    )


def invalid_arguments(tool: str, error: ValidationError) -> InvalidInputError:
    """Arguments the SDK's schema validation rejected, named field by field (the values are not echoed)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "arguments"
        problems.append(f"{field}: {item['msg']}")
    return InvalidInputError(
        f"Invalid arguments for {tool}: " + "; ".join(problems) + ".",
        hint="Correct the named arguments; the tool's input schema lists each one's type and allowed values.",
    )


def unexpected_failure(tool: str, error: Exception) -> FoundryImageError:
    """A defect: logged with its traceback on stderr, reported without it. An image store that could not be read
    (a disk error, a storage account that refused) is reported as `storage`, not as a defect."""
    cause = error.__cause__ or error
    if isinstance(cause, OSError):
        logger.warning("%s could not use the image store: %s", tool, cause)
        return StorageError(
            f"{tool} could not use the image store: {cause.strerror or cause}.",
            hint="Check the output directory (or the storage account's role assignment and network), then try again.",
        )
    logger.error("%s failed unexpectedly", tool, exc_info=cause)
    return InternalError(
        f"{tool} failed because of a defect in this server ({type(cause).__name__}).",
        hint="The server's log (stderr) has the details; please report it. A generation the service accepted is "
        "still stored when it finishes (see resources/list).",
    )
