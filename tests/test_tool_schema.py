"""The tools' `tools/list` entries, pinned: flat input schemas with the same names, types, enums, bounds,
defaults and descriptions in both tools, whatever builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import Tool
from pydantic import TypeAdapter, ValidationError

from mcp_server.config import Settings
from mcp_server.protocol import IMAGE_OPTIONS, QUALITY, SIZE, SIZE_PATTERN, rules_for
from mcp_server.protocol import OUTPUT_OPTIONS as SHARED_OPTIONS
from mcp_server.tools.params import option_param
from mcp_server.tools.server import build_server

pytestmark = pytest.mark.anyio

OPTIONS: dict[str, dict[str, Any]] = {
    "size": {
        "default": "auto",
        "description": "auto (the model chooses) or WIDTHxHEIGHT. Every model: 1024x1024 (square, fastest), "
        "1536x1024 (landscape), 1024x1536 (portrait). gpt-image-2 (and the 2.5 models) also take other sizes, e.g. "
        "2048x1152 or 3840x2160: both edges multiples of 16, long edge at most 3840, aspect ratio at most 3:1, "
        "655,360 to 8,294,400 pixels; above 2560x1440 is experimental.",
        "pattern": "^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$",
        "title": "Size",
        "type": "string",
    },
    "quality": {
        "default": "auto",
        "description": "Rendering quality; low is fastest. xhigh and max only on gpt-image-2.5-sunburst and "
        "gpt-image-2.5-flare.",
        "enum": ["auto", "low", "medium", "high", "xhigh", "max"],
        "title": "Quality",
        "type": "string",
    },
    "output_format": {
        "default": "png",
        "description": "File format of the image.",
        "enum": ["png", "jpeg", "webp"],
        "title": "Output Format",
        "type": "string",
    },
    "output_compression": {
        "anyOf": [{"maximum": 100, "minimum": 0, "type": "integer"}, {"type": "null"}],
        "default": None,
        "description": "0-100 compression, only for jpeg and webp.",
        "title": "Output Compression",
    },
    "background": {
        "default": "auto",
        "description": "transparent needs output_format png or webp.",
        "enum": ["auto", "transparent", "opaque"],
        "title": "Background",
        "type": "string",
    },
    "moderation": {
        "default": "auto",
        "description": "Content moderation strictness.",
        "enum": ["auto", "low"],
        "title": "Moderation",
        "type": "string",
    },
    "partial_images": {
        "default": 0,
        "description": "Stream this many partial images as progress (0-3).",
        "maximum": 3,
        "minimum": 0,
        "title": "Partial Images",
        "type": "integer",
    },
}
GENERATE_OWN: dict[str, dict[str, Any]] = {
    "prompt": {
        "description": "What to draw: subject, style, composition, lighting, any text to render.",
        "maxLength": 32000,
        "minLength": 1,
        "title": "Prompt",
        "type": "string",
    },
}
EDIT_OWN: dict[str, dict[str, Any]] = {
    "prompt": {
        "description": "The change to make, e.g. 'make the sky a sunset orange' or 'put the cat from image 2 on the "
        "sofa in image 1'.",
        "maxLength": 32000,
        "minLength": 1,
        "title": "Prompt",
        "type": "string",
    },
    "images": {
        "description": "1-16 images, the one to edit first. Each is a foundry-image://images/<id> URI from this "
        "server (continues that image's conversation), a file path or file:// URI in an allowed directory, an "
        "https URL, a data:image/...;base64 URL or bare base64, or a Foundry file id.",
        "items": {"type": "string"},
        "maxItems": 16,
        "minItems": 1,
        "title": "Images",
        "type": "array",
    },
    "mask": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
        "description": "Optional PNG with an alpha channel, the size of the first image; fully transparent pixels "
        "mark the area to repaint. Same reference forms as images.",
        "title": "Mask",
    },
    "input_fidelity": {
        "anyOf": [{"enum": ["high", "low"], "type": "string"}, {"type": "null"}],
        "default": None,
        "description": "high keeps faces, logos and details of the inputs more faithfully (slower). Not on "
        "gpt-image-1-mini.",
        "title": "Input Fidelity",
    },
}
DESCRIPTIONS = {
    "generate_image": "Generate a new image from a text prompt with the image model deployed on Azure AI Foundry\n"
    "(gpt-image-2, gpt-image-1.5 or gpt-image-1-mini).\n\n"
    "Returns an inline preview, a resource link to the full-resolution file (read it with\n"
    "resources/read), the saved file path, and structured metadata. An option the deployed model\n"
    "does not take (a size, a quality) is refused before any call, naming one that works.",
    "edit_image": "Edit or combine images with the image model deployed on Azure AI Foundry, optionally inside\n"
    "a mask.\n\n"
    "Returns the edited image like generate_image does, plus the inputs used and the parent\n"
    "image when the first input was an image from this server. Options are checked against the\n"
    "deployed model like generate_image's (input_fidelity: not on gpt-image-1-mini).",
}


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    environ = {
        "AZURE_AI_PROJECT_ENDPOINT": "https://unused.services.ai.azure.com/api/projects/p",
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
        "AZURE_AI_API_KEY": "unused",
        "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(tmp_path),
    }
    async with Client(build_server(Settings.load(environ=environ)), mode=request.param) as connected:
        yield connected


async def tools_of(client: Client) -> dict[str, Tool]:
    return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_both_input_schemas_are_flat_with_the_same_option_parameters(client: Client) -> None:
    tools = await tools_of(client)
    assert list(tools) == ["generate_image", "edit_image"]
    for name, own, required in (
        ("generate_image", GENERATE_OWN, ["prompt"]),
        ("edit_image", EDIT_OWN, ["prompt", "images"]),
    ):
        schema = tools[name].input_schema
        assert schema["type"] == "object" and schema["required"] == required
        assert "$defs" not in schema and "$ref" not in str(schema), "no nested models: LLM clients want flat"
        assert schema["properties"] == {**own, **OPTIONS}, name
        assert list(schema["properties"]) == [*own, *OPTIONS], "the order clients show"


async def test_titles_descriptions_and_hints(client: Client) -> None:
    tools = await tools_of(client)
    for name, title in (("generate_image", "Generate image"), ("edit_image", "Edit image")):
        tool = tools[name]
        assert tool.title == title and tool.description == DESCRIPTIONS[name]
        assert tool.annotations is not None and tool.annotations.title == title
        hints = tool.annotations
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint) == (
            False,
            False,
            False,
            True,
        )
        assert tool.output_schema is not None and tool.output_schema["title"] == "ImageResult"


async def test_the_option_parameters_come_from_the_option_table(client: Client) -> None:
    properties = (await tools_of(client))["generate_image"].input_schema["properties"]
    assert [spec.name for spec in SHARED_OPTIONS] == list(OPTIONS)
    assert set(SHARED_OPTIONS) <= set(IMAGE_OPTIONS)
    for spec in SHARED_OPTIONS:
        shown = properties[spec.name]
        assert (shown["description"], shown["default"]) == (spec.description, spec.default)
        if spec.values:
            assert shown["enum"] == list(spec.values)
        elif spec.pattern is not None:
            assert shown["pattern"] == spec.pattern and "enum" not in shown
        else:
            integer = next(part for part in shown.get("anyOf", [shown]) if part.get("type") == "integer")
            assert (integer["minimum"], integer["maximum"]) == spec.bounds


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"size": "huge"}, "size"),
        ({"size": "1024X1024"}, "size"),
        ({"size": 1024}, "size"),
        ({"quality": "ultra"}, "quality"),
        ({"output_compression": 101}, "output_compression"),
        ({"partial_images": "2"}, "partial_images"),
        ({"partial_images": 4}, "partial_images"),
        ({"background": "clear"}, "background"),
    ],
)
async def test_values_outside_the_table_are_refused_before_the_tool_runs(
    client: Client, arguments: dict[str, Any], field: str
) -> None:
    for tool, base in (("generate_image", {"prompt": "x"}), ("edit_image", {"prompt": "x", "images": ["f"]})):
        result = await client.call_tool(tool, {**base, **arguments})
        assert result.is_error
        text = " ".join(getattr(part, "text", "") for part in result.content)
        assert f"Invalid arguments for {tool}: {field}:" in text, text
        assert result.structured_content is not None, "the same error shape as every other refusal"
        error = result.structured_content["error"]
        assert error["code"] == "invalid_input" and field in error["message"] and error["hint"]


async def test_size_takes_any_width_x_height_and_quality_every_models_values() -> None:
    """The schema holds what any model takes; each model's own rules are the service's (test_model_rules)."""
    assert OPTIONS["size"]["pattern"] == SIZE.pattern == SIZE_PATTERN
    size = TypeAdapter(option_param(SIZE))
    for value in ("auto", "1024x1024", "1536x1024", "1024x1536", "2048x1152", "3840x2160", "512x512"):
        assert size.validate_python(value) == value
    for value in ("huge", "1024X1024", "1024x", "1024*1024", " 1024x1024", "1024x1024\n"):
        with pytest.raises(ValidationError):
            size.validate_python(value)
    quality = TypeAdapter(option_param(QUALITY))
    assert quality.validate_python("max") == "max" and set(rules_for("gpt-image-2.5-flare").qualities) == set(
        OPTIONS["quality"]["enum"]
    )
