"""The tools' parameter types: enums, bounds and descriptions that both tools share, in one place."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_server.protocol import Background, Moderation, OutputFormat, Quality, Size

SizeParam = Annotated[Size, Field(description="Width x height; auto lets the model choose.")]
QualityParam = Annotated[Quality, Field(description="Rendering quality; low is fastest.")]
OutputFormatParam = Annotated[OutputFormat, Field(description="File format of the image.")]
CompressionParam = Annotated[
    int | None, Field(ge=0, le=100, strict=True, description="0-100 compression, only for jpeg and webp.")
]
BackgroundParam = Annotated[Background, Field(description="transparent needs output_format png or webp.")]
ModerationParam = Annotated[Moderation, Field(description="Content moderation strictness.")]
PartialImagesParam = Annotated[
    int, Field(ge=0, le=3, strict=True, description="Stream this many partial images as progress (0-3).")
]


def tool_annotations(title: str) -> ToolAnnotations:
    """Both tools create files and call a remote service; neither changes or deletes anything that exists."""
    return ToolAnnotations(
        title=title, read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    )
