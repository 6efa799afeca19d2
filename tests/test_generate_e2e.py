"""generate_image end to end: the real server driven by mcp.Client (in-process, and over real stdio), against
the emulator."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from helpers import MODES, connect, parts, server_params, text_of
from mcp import Client, MCPError
from mcp.types import BlobResourceContents
from PIL import Image

from mcp_server.emulator import RunningEmulator
from mcp_server.images.records import URI_TEMPLATE
from mcp_server.protocol.models import SIZE_PATTERN

pytestmark = pytest.mark.anyio
AGENT = "foundry-image-mcp"
TIMEOUT = 60


def responses_posts(emulator: RunningEmulator) -> list[Any]:
    return [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith("/openai/v1/responses")]


@pytest.mark.parametrize("mode", MODES)
async def test_generate_image_stores_the_exact_bytes_and_every_option_reaches_the_agent_version(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    arguments = {
        "prompt": "a red fox in fresh snow",
        "size": "1536x1024",
        "quality": "low",
        "output_format": "jpeg",
        "output_compression": 70,
        "background": "opaque",
        "moderation": "low",
    }
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode=mode) as client:
            result = await client.call_tool("generate_image", arguments)
    assert not result.is_error, text_of(result)
    meta = result.structured_content
    assert meta is not None
    stored = Path(meta["path"]).read_bytes()
    assert stored == emulator.state.image_bytes(meta["response_id"])
    assert Path(meta["path"]).parent == tmp_path
    assert (meta["width"], meta["height"], meta["mime_type"], meta["bytes"]) == (1536, 1024, "image/jpeg", len(stored))

    image, link, text = parts(result)
    assert (link.uri, link.mime_type, link.size) == (meta["uri"], "image/jpeg", len(stored))
    assert meta["path"] in text.text and "1536x1024" in text.text
    with Image.open(io.BytesIO(base64.b64decode(image.data))) as preview:
        assert max(preview.size) <= 512
    assert len(result.model_dump_json(by_alias=True)) < 1_048_576

    (version,) = emulator.state.agent_versions(AGENT)
    assert version.definition["model"] == "gpt-4.1"
    assert version.definition["tool_choice"] == {"type": "image_generation"}
    (tool,) = version.definition["tools"]
    assert tool == {
        "type": "image_generation",
        "model": "gpt-image-2",
        "size": "1536x1024",
        "quality": "low",
        "output_format": "jpeg",
        "output_compression": 70,
        "background": "opaque",
        "moderation": "low",
    }
    (post,) = responses_posts(emulator)
    assert post.json["agent_reference"] == {"type": "agent_reference", "name": AGENT, "version": version.version}
    assert post.json["store"] is True
    assert not {"tools", "temperature", "top_p", "text"} & set(post.json)
    assert post.headers["x-ms-oai-image-generation-deployment"] == "gpt-image-2"  # discovered: the project's only one
    assert post.headers["authorization"] == "Bearer test-key"  # a key travels as a bearer on /openai/v1
    assert (meta["agent_name"], meta["agent_version"]) == (AGENT, version.version)


@pytest.mark.parametrize("mode", MODES)
async def test_stored_images_are_listed_and_read_back_as_exact_bytes(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode=mode) as client:
            result = await client.call_tool(
                "generate_image",
                {"prompt": "a transparent sticker of a cat", "background": "transparent", "output_format": "webp"},
            )
            meta = result.structured_content
            assert meta is not None and not result.is_error, text_of(result)
            listed = await client.list_resources()
            templates = await client.list_resource_templates()
            read = await client.read_resource(meta["uri"])
            with pytest.raises(MCPError) as missing:
                await client.read_resource("foundry-image://images/img-20200101-000000-00000000")
    entry = next(r for r in listed.resources if r.uri == meta["uri"])
    assert entry.mime_type == "image/webp" and entry.size == meta["bytes"]
    assert URI_TEMPLATE in [t.uri_template for t in templates.resource_templates]
    (content,) = read.contents
    assert isinstance(content, BlobResourceContents) and content.mime_type == "image/webp"
    assert base64.b64decode(content.blob) == Path(meta["path"]).read_bytes()
    assert missing.value.error.code == -32602
    with Image.open(Path(meta["path"])) as image:
        assert image.mode == "RGBA"


BAD_ARGUMENTS: list[dict[str, Any]] = [
    {"prompt": ""},
    {"prompt": "   "},
    {"prompt": "x" * 32_001},
    {"size": "1024x1024"},
    {"prompt": 5},
    {"prompt": "x", "size": "999x999"},
    {"prompt": "x", "quality": "ultra"},
    {"prompt": "x", "output_format": "gif"},
    {"prompt": "x", "output_format": "jpeg", "output_compression": 101},
    {"prompt": "x", "output_format": "jpeg", "output_compression": -1},
    {"prompt": "x", "output_compression": 50},
    {"prompt": "x", "background": "transparent", "output_format": "jpeg"},
    {"prompt": "x", "background": "invisible"},
    {"prompt": "x", "partial_images": 4},
    {"prompt": "x", "partial_images": -1},
    {"prompt": "x", "moderation": "none"},
]


@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_are_refused_before_any_upstream_call(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode=mode) as client:
            results = [await client.call_tool("generate_image", arguments) for arguments in BAD_ARGUMENTS]
    for arguments, result in zip(BAD_ARGUMENTS, results, strict=True):
        assert result.is_error, arguments
        assert text_of(result).strip(), arguments
        assert "Traceback" not in text_of(result)
    assert [r for r in emulator.state.requests if "/agents" in r.path or "/responses" in r.path] == []
    assert list(tmp_path.iterdir()) == []


async def test_the_tool_schema_carries_enums_bounds_annotations_and_an_output_schema(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode="legacy") as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            server_info = client.server_info
            instructions = client.instructions
            failed = await client.call_tool("generate_image", {"prompt": "x", "output_compression": 50})
            made = await client.call_tool("generate_image", {"prompt": "a kite", "quality": "low"})
    # Both shapes fit the declared output schema: some clients check error results against it too.
    assert failed.is_error and not made.is_error
    for result in (failed, made):
        jsonschema.validate(result.structured_content, tools["generate_image"].output_schema or {})
    assert failed.structured_content == {"error": {**(failed.structured_content or {})["error"]}}
    assert (failed.structured_content or {})["error"]["code"] == "invalid_input"
    assert server_info is not None and server_info.icons and server_info.icons[0].mime_type == "image/png"
    assert instructions is not None and "edit_image" in instructions and "foundry-image://" in instructions
    for name in ("generate_image", "edit_image"):
        (icon,) = tools[name].icons or []
        assert icon.src.startswith("data:image/png;base64,") and icon.sizes == ["64x64"]
        assert tools[name].description and tools[name].title
    tool = tools["generate_image"]
    props = tool.input_schema["properties"]
    assert tool.input_schema["required"] == ["prompt"]
    assert (props["prompt"]["minLength"], props["prompt"]["maxLength"]) == (1, 32_000)
    assert props["size"]["pattern"] == SIZE_PATTERN and "enum" not in props["size"]
    assert "2048x1152" in props["size"]["description"] and "multiples of 16" in props["size"]["description"]
    assert props["quality"]["enum"] == ["auto", "low", "medium", "high", "xhigh", "max"]
    assert props["output_format"]["enum"] == ["png", "jpeg", "webp"]
    assert props["background"]["enum"] == ["auto", "transparent", "opaque"]
    assert (props["partial_images"]["minimum"], props["partial_images"]["maximum"]) == (0, 3)
    assert "ctx" not in props
    assert tool.annotations is not None
    assert (tool.annotations.read_only_hint, tool.annotations.destructive_hint, tool.annotations.open_world_hint) == (
        False,
        False,
        True,
    )
    assert tool.output_schema is not None
    assert {
        "uri",
        "path",
        "mime_type",
        "width",
        "height",
        "bytes",
        "revised_prompt",
        "response_id",
        "agent_name",
        "agent_version",
    } <= set(tool.output_schema["properties"])


@pytest.mark.parametrize("mode", MODES)
async def test_partial_images_arrive_as_progress_before_the_result(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode=mode) as client:
            result = await client.call_tool(
                "generate_image", {"prompt": "a paper boat", "partial_images": 2}, progress_callback=on_progress
            )
            previews = {
                m.split(": ", 1)[1]: await client.read_resource(m.split(": ", 1)[1])
                for _, _, m in seen
                if m and m.startswith("Partial image")
            }
    assert not result.is_error, text_of(result)
    partials = [m for _, _, m in seen if m and m.startswith("Partial image")]
    assert [m.split(":")[0] for m in partials] == ["Partial image 1 of 2", "Partial image 2 of 2"]
    for message in partials:
        uri = message.split(": ", 1)[1]
        assert uri.startswith("foundry-image://partials/")
        (content,) = previews[uri].contents
        assert isinstance(content, BlobResourceContents) and content.mime_type == "image/jpeg"
        with Image.open(io.BytesIO(base64.b64decode(content.blob))) as preview:
            assert max(preview.size) <= 256
    values = [p for p, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    (post,) = responses_posts(emulator)
    assert post.json["stream"] is True
    meta = result.structured_content
    assert meta is not None and Path(meta["path"]).read_bytes() == emulator.state.image_bytes(meta["response_id"])


async def test_a_restarted_server_reuses_agent_versions_instead_of_creating_new_ones(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    same = {"prompt": "a lighthouse", "size": "1024x1024", "quality": "low"}
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path) as client:
            first = await client.call_tool("generate_image", same)
            again = await client.call_tool("generate_image", {**same, "prompt": "another lighthouse"})
        # A new server: nothing of the first one's memory is left, only the service's agent versions.
        async with connect(emulator.endpoint, tmp_path, mode="legacy") as client:
            after_restart = await client.call_tool("generate_image", same)
            other = await client.call_tool("generate_image", {**same, "quality": "high"})
    results = [first, again, after_restart, other]
    assert not any(r.is_error for r in results), [text_of(r) for r in results]
    versions = [r.structured_content["agent_version"] for r in results if r.structured_content]
    assert versions[0] == versions[1] == versions[2] != versions[3]
    assert emulator.state.count("POST", f"/agents/{AGENT}/versions") == 2
    assert len(emulator.state.agent_versions(AGENT)) == 2


async def test_an_unknown_image_deployment_is_an_error_that_names_the_setting(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    env = {"AZURE_AI_IMAGE_DEPLOYMENT_NAME": "gpt-image-9"}
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, extra_env=env) as client:
            result = await client.call_tool("generate_image", {"prompt": "a cat"})
    assert result.is_error
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["error"]["status"] in (400, 404)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", MODES)
async def test_over_real_stdio_a_subprocess_configured_by_its_environment_generates_and_serves_images(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    """The stdio transport itself: `python -m mcp_server serve`, progress, errors and resources on the wire."""
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with anyio.fail_after(TIMEOUT):
        async with Client(server_params(emulator.endpoint, tmp_path), mode=mode) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            refused = await client.call_tool("generate_image", {"prompt": "x", "output_compression": 50})
            result = await client.call_tool(
                "generate_image", {"prompt": "a paper boat", "partial_images": 1}, progress_callback=on_progress
            )
            meta = result.structured_content
            assert meta is not None and not result.is_error, text_of(result)
            listed = await client.list_resources()
            read = await client.read_resource(meta["uri"])
    assert tools == {"generate_image", "edit_image"}
    assert refused.is_error and (refused.structured_content or {})["error"]["code"] == "invalid_input"
    assert [m.split(":")[0] for m in seen if m and m.startswith("Partial image")] == ["Partial image 1 of 1"]
    image, link, _ = parts(result)
    stored = Path(meta["path"]).read_bytes()
    assert Path(meta["path"]).parent == tmp_path and stored == emulator.state.image_bytes(meta["response_id"])
    assert link.uri == meta["uri"] and [r.uri for r in listed.resources] == [meta["uri"]]
    (content,) = read.contents
    assert isinstance(content, BlobResourceContents) and base64.b64decode(content.blob) == stored
    with Image.open(io.BytesIO(base64.b64decode(image.data))) as preview:
        assert max(preview.size) <= 512
    (post,) = responses_posts(emulator)
    assert post.headers["authorization"] == "Bearer test-key" and post.json["stream"] is True
