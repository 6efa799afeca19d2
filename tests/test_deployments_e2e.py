"""Deployments found, not guessed, end to end: the MCP server in process (`mcp.Client(build_server(...))`)
against the emulator, configured with nothing but its endpoint and an API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import text_of
from mcp import Client

from mcp_server.config import Settings
from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.tools.server import build_server

pytestmark = pytest.mark.anyio

TIMEOUT = 60
KEY = "e2e-key-4f1d"
RESPONSES = "/openai/v1/responses"


def only_the_endpoint(emu: RunningEmulator, tmp_path: Path, **extra: str) -> Settings:
    return Settings.load(
        {"AZURE_AI_PROJECT_ENDPOINT": emu.endpoint, "AZURE_AI_API_KEY": KEY, "HOME": str(tmp_path), **extra}
    )


def lookups(emu: RunningEmulator) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in emu.state.requests if r.method == "GET" and "/deployments" in r.path]


def posts(emu: RunningEmulator, suffix: str) -> list[Any]:
    return [r for r in emu.state.requests if r.method == "POST" and r.path.endswith(suffix)]


async def test_an_endpoint_and_a_key_are_enough_to_make_a_2048x1152_gpt_image_2_image(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(only_the_endpoint(emu, tmp_path))) as client:
                await client.list_tools()
                assert emu.state.requests == [], "the handshake and tools/list never reach Foundry"
                wide = await client.call_tool(
                    "generate_image", {"prompt": "a wide harbour", "size": "2048x1152", "quality": "low"}
                )
                square = await client.call_tool("generate_image", {"prompt": "a square", "size": "1024x1024"})
        assert not wide.is_error, text_of(wide)
        assert not square.is_error, text_of(square)
        meta = wide.structured_content or {}
        assert (meta["width"], meta["height"]) == (2048, 1152)
        assert Path(meta["path"]).is_relative_to(tmp_path), "the default output directory, under HOME"
        assert lookups(emu) == ["deployments"], "one listing, at the first call, for the process"
        creates = posts(emu, RESPONSES)
        assert {c.headers["x-ms-oai-image-generation-deployment"] for c in creates} == {"gpt-image-2"}
        versions = emu.state.agent_versions("foundry-image-mcp")
        assert {v.definition["model"] for v in versions} == {"gpt-4.1"}
        assert {v.definition["tools"][0]["model"] for v in versions} == {"gpt-image-2"}


async def test_a_project_with_two_image_deployments_is_an_error_result_that_lists_them(tmp_path: Path) -> None:
    config = EmulatorConfig(deployments={"gpt-4.1": "gpt-4.1", "old": "gpt-image-1.5", "new": "gpt-image-2"})
    with start_emulator(config) as emu:
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(only_the_endpoint(emu, tmp_path))) as client:
                result = await client.call_tool("generate_image", {"prompt": "a cat"})
        assert posts(emu, RESPONSES) == [] and posts(emu, "/versions") == []
    assert result.is_error
    text = text_of(result)
    assert "old -> gpt-image-1.5" in text and "new -> gpt-image-2" in text, text
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in text
    assert (result.structured_content or {})["error"]["code"] == "configuration"


async def test_a_refusing_deployments_api_works_with_names_given_and_explains_itself_without(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(deployments_api_status=403)) as emu:
        named = only_the_endpoint(
            emu,
            tmp_path,
            AZURE_AI_IMAGE_DEPLOYMENT_NAME="gpt-image-2",
            AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-4.1",
        )
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(named)) as client:
                made = await client.call_tool("generate_image", {"prompt": "a dog", "size": "1024x1024"})
            async with Client(build_server(only_the_endpoint(emu, tmp_path))) as client:
                refused = await client.call_tool("generate_image", {"prompt": "a dog"})
    assert not made.is_error, text_of(made)
    assert refused.is_error
    text = text_of(refused)
    assert "refused (HTTP 403" in text and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in text, text
    assert "AZURE_AI_MODEL_DEPLOYMENT_NAME" in text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_gpt_image_1_5_deployment_refuses_2048x1152_before_any_upstream_call(tmp_path: Path, mode: str) -> None:
    project = {"gpt-4.1": "gpt-4.1", "img": "gpt-image-1.5"}
    with start_emulator(EmulatorConfig(deployments=project)) as emu:
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(only_the_endpoint(emu, tmp_path)), mode=mode) as client:
                wide = await client.call_tool("generate_image", {"prompt": "a wide harbour", "size": "2048x1152"})
    assert wide.is_error and (wide.structured_content or {})["error"]["code"] == "invalid_input"
    assert "gpt-image-1.5 supports 1024x1024, 1536x1024, 1024x1536 or auto; for 2048x1152 deploy gpt-image-2" in (
        text_of(wide)
    )
    assert lookups(emu) == ["deployments"], "only the model was looked up"
    assert [r.path for r in emu.state.requests if "/deployments" not in r.path] == []


async def test_a_retired_gpt_image_1_deployment_is_refused_with_its_date_and_the_fix(tmp_path: Path) -> None:
    project = {"gpt-4.1": "gpt-4.1", "gpt-image-1": "gpt-image-1"}
    with start_emulator(EmulatorConfig(deployments=project)) as emu:
        with anyio.fail_after(TIMEOUT):
            async with Client(build_server(only_the_endpoint(emu, tmp_path))) as client:
                old = await client.call_tool("generate_image", {"prompt": "a heron"})
    assert old.is_error and "2026-10-23" in text_of(old) and "gpt-image-2" in text_of(old)
    assert [r.path for r in emu.state.requests if "/deployments" not in r.path] == []
