"""The fault matrix: every upstream fault, its expected outcome, and a normal answer right after it.

Each row injects one fault into the emulator (by schedule, as a flaky service would produce it),
drives the real stdio server through mcp.Client, checks the outcome the user sees, then checks
that the very next call succeeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import encode_image, server_params, text_of, token_endpoint
from mcp import Client
from mcp.types import CallToolResult
from PIL import Image

from mcp_server.emulator import EmulatorConfig, start_emulator
from mcp_server.foundry.retry import RetryPolicy

pytestmark = pytest.mark.anyio
RESPONSES = "/openai/v1/responses"
VERSIONS = "/agents/foundry-image-mcp/versions"
FILES = "/openai/v1/files"
ATTEMPTS = RetryPolicy().attempts


@dataclass(frozen=True)
class Row:
    fault: str
    times: int = 1
    path: str = RESPONSES
    method: str = "POST"
    ok: bool = True
    code: str | None = None
    says: tuple[str, ...] = ()
    creates: int | None = None
    """How many responses the emulator must hold afterwards for the faulted call (no duplicate generations)."""
    sent: int | None = None
    """How many requests the faulted call may send to `method path` (a refused create is never sent again)."""
    env: dict[str, str] = field(default_factory=dict[str, str])
    edit: bool = False


MATRIX = [
    Row("429", creates=1),
    Row("429-bare", creates=1),
    Row("429", times=ATTEMPTS, ok=False, code="rate_limited", says=("429", "wait")),
    Row("500", creates=1),
    Row("502", creates=1),
    Row("503", creates=1),
    Row("500", times=ATTEMPTS, ok=False, code="refused", says=("HTTP 500", "try again")),
    Row("reset", creates=1),
    Row("reset-after-accept", creates=1),
    Row("truncate-stream", creates=1),
    Row("truncate-body", ok=False, code="unexpected_response", says=("not JSON",)),
    Row("stall", env={"FOUNDRY_IMAGE_MCP_READ_TIMEOUT": "0.5"}),
    Row("filter-400", ok=False, code="content_filter", says=("sexual", "violence", "Rephrase"), sent=1),
    Row("filter-400-array", ok=False, code="content_filter", says=("jailbreak", "Rephrase"), sent=1),
    Row("moderation-blocked", ok=False, code="content_filter", says=("generated image", "violence"), sent=1),
    Row(
        "image-header-missing",
        ok=False,
        code="refused",
        says=("x-ms-oai-image-generation-deployment", "AZURE_AI_IMAGE_DEPLOYMENT_NAME"),
        sent=1,
    ),
    Row("agent-field", ok=False, code="refused", says=("tools", "agent"), sent=1),
    Row("filter-failed", ok=False, code="content_filter", says=("content filtering",)),
    Row("filter-call", ok=False, code="content_filter", says=("content filtering",)),
    Row("filter-incomplete", ok=False, code="content_filter", says=("content filtering",)),
    Row("token-expired", ok=False, code="authentication", says=("AZURE_AI_API_KEY",)),
    Row("forbidden-preview", ok=False, code="authentication", says=("preview",)),
    Row("deployment-missing", ok=False, code="deployment_not_found", says=("AZURE_AI_IMAGE_DEPLOYMENT_NAME",)),
    Row("503", path=VERSIONS),
    Row("reset-after-accept", path=VERSIONS),
    Row("reset", path=VERSIONS),
    # In a new project the agent does not exist yet, so this listing is a 404: truncated, it still reads as
    # "no versions", and the call goes on to create the first one.
    Row("truncate-body", path=VERSIONS, method="GET"),
    Row("reset", path=FILES, edit=True),
    Row("reset-after-accept", path=FILES, edit=True),
]


def big_image(path: Path) -> str:
    import os

    path.write_bytes(encode_image(Image.frombytes("RGB", (1300, 1300), os.urandom(1300 * 1300 * 3))))
    return str(path)


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text_of(result)
    error: dict[str, Any] = result.structured_content["error"]
    return error


@pytest.mark.parametrize(
    "row", MATRIX, ids=lambda r: f"{r.method}-{r.path.strip('/').replace('/', '.')}-{r.fault}x{r.times}"
)
async def test_fault(row: Row, tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(stall_seconds=2)) as emu, anyio.fail_after(90):
        emu.state.inject(row.fault, method=row.method, path=row.path, times=row.times)
        arguments: dict[str, Any] = {"prompt": f"fault {row.fault}", "quality": "low"}
        tool = "generate_image"
        if row.edit:
            tool, arguments = "edit_image", {**arguments, "images": [big_image(tmp_path / "big.png")]}
        async with Client(server_params(emu.endpoint, tmp_path, extra_env=row.env)) as client:
            result = await client.call_tool(tool, arguments)
            if row.ok:
                assert not result.is_error, text_of(result)
                meta = result.structured_content
                assert meta is not None
                assert Path(meta["path"]).read_bytes() == emu.state.image_bytes(meta["response_id"])
            else:
                assert result.is_error
                error = error_of(result)
                assert error["code"] == row.code, (error, text_of(result))
                for phrase in row.says:
                    assert phrase.lower() in text_of(result).lower(), text_of(result)
                assert "Traceback" not in text_of(result)
            if row.creates is not None:
                assert len(emu.state.responses) == row.creates
            if row.sent is not None:
                assert emu.state.count(row.method, row.path) == row.sent
            if row.path == VERSIONS and row.method == "POST":
                assert len(emu.state.agent_versions("foundry-image-mcp")) == 1
            if row.path == FILES:
                assert len(emu.state.files) == 1
            assert not emu.state.pending_faults()
            after = await client.call_tool("generate_image", {"prompt": "and now a normal call", "quality": "low"})
        assert not after.is_error, text_of(after)


async def test_an_expired_entra_token_is_refreshed_and_the_call_succeeds(tmp_path: Path) -> None:
    with token_endpoint() as identity, start_emulator(EmulatorConfig()) as emu, anyio.fail_after(60):
        emu.state.inject("token-expired", path=RESPONSES)
        params = server_params(emu.endpoint, tmp_path, api_key=None, extra_env=identity.env)
        async with Client(params) as client:
            result = await client.call_tool("generate_image", {"prompt": "fresh token", "quality": "low"})
        assert not result.is_error, text_of(result)
        assert len(identity.calls) == 2, "one token at start, a fresh one after the 401"


async def test_an_unreachable_endpoint_is_reported_and_the_server_recovers_when_it_returns(tmp_path: Path) -> None:
    emu = start_emulator(EmulatorConfig())
    endpoint, port = emu.endpoint, emu.port
    emu.stop()
    with anyio.fail_after(60):
        async with Client(server_params(endpoint, tmp_path)) as client:
            result = await client.call_tool("generate_image", {"prompt": "nobody home", "quality": "low"})
            assert result.is_error
            assert error_of(result)["code"] == "unreachable"
            assert "AZURE_AI_PROJECT_ENDPOINT" in text_of(result)
            with start_emulator(EmulatorConfig(), port=port):
                after = await client.call_tool("generate_image", {"prompt": "back again", "quality": "low"})
    assert not after.is_error, text_of(after)


def test_the_matrix_covers_every_emulator_fault() -> None:
    from mcp_server.emulator import FAULTS

    assert {row.fault for row in MATRIX} == set(FAULTS), json.dumps(sorted(set(FAULTS) - {r.fault for r in MATRIX}))
