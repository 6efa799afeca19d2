"""The fault matrix: every upstream fault, its expected outcome, and a normal answer right after it.

Each row injects one fault into the emulator (by schedule, as a flaky service would produce it),
drives the real server (in-process) through mcp.Client, checks the outcome the user sees, the
requests that reached the service and the waits between them, then checks that the very next call
succeeds. The retry policy's waits are recorded instead of slept (`RetryPolicy.sleep`), so the
matrix asserts every delay the server chose without waiting for any of them.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers import TokenEndpoint, connect, emulator_running, encode_image, text_of
from mcp.types import CallToolResult
from PIL import Image

from mcp_server.emulator import EmulatorConfig, start_emulator
from mcp_server.foundry.retry import RetryPolicy

pytestmark = pytest.mark.anyio
RESPONSES = "/openai/v1/responses"
VERSIONS = "/agents/foundry-image-mcp/versions"
FILES = "/openai/v1/files"
ATTEMPTS = RetryPolicy().attempts
READ_TIMEOUT = 0.5


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
    sends: int = 1
    """How many `method` requests to `path` the faulted call makes: retried faults are sent again (up to the
    policy's attempts), a create whose answer was lost after acceptance is found, not sent twice."""
    waits: tuple[float, ...] = ()
    """The retry policy's waits before those sends (default policy, no jitter): the service's own delay
    (`retry-after-ms: 100`, `retry-after: 1`) wins over the exponential backoff (0.5 s, then 1, 2)."""
    env: dict[str, str] = field(default_factory=dict[str, str])
    edit: bool = False


MATRIX = [
    Row("429", creates=1, sends=2, waits=(0.1,)),
    Row("429-bare", creates=1, sends=2, waits=(0.5,)),
    Row("429", times=ATTEMPTS, ok=False, code="rate_limited", says=("429", "wait"), sends=ATTEMPTS, waits=(0.1,) * 3),
    # retry-after: 120 is above RetryPolicy.max_server_delay (60 s): refused at once, the wait named.
    Row("429-long", ok=False, code="rate_limited", says=("asked to wait 120 s",), creates=0),
    Row("500", creates=1, sends=2, waits=(0.5,)),
    Row("502", creates=1, sends=2, waits=(0.5,)),
    Row("503", creates=1, sends=2, waits=(1.0,)),
    Row(
        "500",
        times=ATTEMPTS,
        ok=False,
        code="refused",
        says=("HTTP 500", "try again"),
        sends=ATTEMPTS,
        waits=(0.5, 1.0, 2.0),
    ),
    Row("reset", creates=1, sends=2),
    Row("reset-after-accept", creates=1),
    Row("json-reset-after-accept", creates=1),
    Row("not-json-after-accept", creates=1),
    Row("event-not-json-after-accept", creates=1),
    Row("truncate-stream", creates=1),
    Row("truncate-body", creates=1, sends=2),  # unreadable: looked up by its tag, not found, so sent again
    Row("stall", creates=1, env={"FOUNDRY_IMAGE_MCP_READ_TIMEOUT": str(READ_TIMEOUT)}),
    Row("filter-400", ok=False, code="content_filter", says=("sexual", "violence", "Rephrase")),
    Row("filter-400-array", ok=False, code="content_filter", says=("jailbreak", "Rephrase")),
    Row("moderation-blocked", ok=False, code="content_filter", says=("generated image", "violence")),
    Row(
        "image-header-missing",
        ok=False,
        code="refused",
        says=("x-ms-oai-image-generation-deployment", "AZURE_AI_IMAGE_DEPLOYMENT_NAME"),
    ),
    Row("agent-field", ok=False, code="refused", says=("tools", "agent")),
    Row("filter-failed", ok=False, code="content_filter", says=("content filtering",)),
    Row("filter-call", ok=False, code="content_filter", says=("content filtering",)),
    Row("filter-incomplete", ok=False, code="content_filter", says=("content filtering",)),
    Row("token-expired", ok=False, code="authentication", says=("AZURE_AI_API_KEY",)),
    Row("forbidden-preview", ok=False, code="authentication", says=("preview",)),
    Row("deployment-missing", ok=False, code="deployment_not_found", says=("AZURE_AI_IMAGE_DEPLOYMENT_NAME",)),
    Row("503", path=VERSIONS, sends=2, waits=(1.0,)),
    Row("reset-after-accept", path=VERSIONS),
    Row("reset", path=VERSIONS, sends=2),
    # In a new project the agent does not exist yet, so this listing is a 404: truncated, it still reads as
    # "no versions", and the call goes on to create the first one.
    Row("truncate-body", path=VERSIONS, method="GET"),
    Row("reset", path=FILES, edit=True, sends=2),
    Row("reset-after-accept", path=FILES, edit=True),
]


@functools.cache
def big_png() -> bytes:
    """Over the 4 MiB inline limit, so edit_image uploads it (made once: encoding it takes a second)."""
    return encode_image(Image.frombytes("RGB", (1300, 1300), os.urandom(1300 * 1300 * 3)))


def big_image(path: Path) -> str:
    path.write_bytes(big_png())
    return str(path)


class Waits:
    """The retry policy's waits, recorded instead of waited: the default delays, without jitter."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.policy = RetryPolicy(sleep=self.sleep, jitter=lambda: 0.0)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text_of(result)
    error: dict[str, Any] = result.structured_content["error"]
    return error


@pytest.mark.parametrize(
    "row", MATRIX, ids=lambda r: f"{r.method}-{r.path.strip('/').replace('/', '.')}-{r.fault}x{r.times}"
)
async def test_fault(row: Row, tmp_path: Path) -> None:
    with emulator_running(EmulatorConfig(stall_seconds=2 * READ_TIMEOUT)) as emu, anyio.fail_after(90):
        emu.state.inject(row.fault, method=row.method, path=row.path, times=row.times)
        arguments: dict[str, Any] = {"prompt": f"fault {row.fault}", "quality": "low"}
        tool = "generate_image"
        if row.edit:
            tool, arguments = "edit_image", {**arguments, "images": [big_image(tmp_path / "big.png")]}
        waits = Waits()
        async with connect(emu.endpoint, tmp_path, extra_env=row.env, retry=waits.policy) as client:
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
            assert emu.state.count(row.method, row.path) == row.sends, [(r.method, r.path) for r in emu.state.requests]
            assert waits.delays == list(row.waits)
            if row.creates is not None:
                assert len(emu.state.responses) == row.creates
            if row.path == VERSIONS and row.method == "POST":
                assert len(emu.state.agent_versions("foundry-image-mcp")) == 1
            if row.path == FILES:
                assert len(emu.state.files) == 1
            assert not emu.state.pending_faults()
            after = await client.call_tool("generate_image", {"prompt": "and now a normal call", "quality": "low"})
        assert not after.is_error, text_of(after)


async def test_an_expired_entra_token_is_refreshed_and_the_call_succeeds(
    managed_identity: TokenEndpoint, tmp_path: Path
) -> None:
    identity = managed_identity
    with emulator_running(EmulatorConfig()) as emu, anyio.fail_after(60):
        emu.state.inject("token-expired", path=RESPONSES)
        async with connect(emu.endpoint, tmp_path, api_key=None) as client:
            result = await client.call_tool("generate_image", {"prompt": "fresh token", "quality": "low"})
        assert not result.is_error, text_of(result)
        assert len(identity.calls) == 2, "one token at start, a fresh one after the 401"


async def test_an_unreachable_endpoint_is_reported_and_the_server_recovers_when_it_returns(tmp_path: Path) -> None:
    emu = start_emulator(EmulatorConfig())
    endpoint, port = emu.endpoint, emu.port
    emu.stop()
    waits = Waits()
    with anyio.fail_after(60):
        async with connect(endpoint, tmp_path, retry=waits.policy) as client:
            result = await client.call_tool("generate_image", {"prompt": "nobody home", "quality": "low"})
            assert result.is_error
            assert error_of(result)["code"] == "unreachable"
            assert "AZURE_AI_PROJECT_ENDPOINT" in text_of(result)
            assert waits.delays == [0.5, 1.0, 2.0], "a refused connection is retried with backoff"
            with emulator_running(EmulatorConfig(), port=port):
                after = await client.call_tool("generate_image", {"prompt": "back again", "quality": "low"})
    assert not after.is_error, text_of(after)


def test_the_matrix_covers_every_emulator_fault() -> None:
    from mcp_server.emulator import FAULTS

    assert {row.fault for row in MATRIX} == set(FAULTS), json.dumps(sorted(set(FAULTS) - {r.fault for r in MATRIX}))
