"""A warm server to measure: emulator on loopback, the real server over stdio, its pid for /proc."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp.types import CallToolResult, TextContent

from mcp_server.emulator import EmulatorConfig, RecordedRequest, RunningEmulator, start_emulator

from .common import children_running, server_params

RESPONSES_SUFFIX = "/openai/v1/responses"
FORWARDED_HEADERS = ("api-key", "authorization", "x-ms-oai-image-generation-deployment", "accept", "content-type")


@dataclass
class Served:
    emulator: RunningEmulator
    client: Client
    pid: int
    output_dir: Path


class ToolFailed(RuntimeError):
    pass


@asynccontextmanager
async def served(config: EmulatorConfig | None = None) -> AsyncIterator[Served]:
    """An emulator, and the server launched over stdio against it by `mcp.Client` and kept open."""
    with start_emulator(config or EmulatorConfig()) as emulator, tempfile.TemporaryDirectory(prefix="bench-") as out:
        before = set(children_running("mcp_server"))
        async with Client(server_params(emulator.endpoint, Path(out))) as client:
            new = [pid for pid in children_running("mcp_server") if pid not in before]
            if len(new) != 1:
                raise RuntimeError(f"expected one new server process, found {new}")
            yield Served(emulator, client, new[0], Path(out))


async def generate(
    client: Client, prompt: str, size: str, progress: ProgressFnT | None = None, **options: Any
) -> dict[str, Any]:
    """Call `generate_image`; its structured content, or `ToolFailed` with the server's message."""
    result: CallToolResult = await client.call_tool(
        "generate_image", {"prompt": prompt, "size": size, **options}, progress_callback=progress
    )
    if result.is_error or result.structured_content is None:
        text = " ".join(b.text for b in result.content if isinstance(b, TextContent))
        raise ToolFailed(f"generate_image failed: {text}")
    return dict(result.structured_content)


def last_responses_post(emulator: RunningEmulator) -> RecordedRequest:
    """The most recent `POST .../openai/v1/responses` the emulator received (what the server sent)."""
    posts = [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith(RESPONSES_SUFFIX)]
    if not posts:
        raise RuntimeError("the emulator saw no Responses call")
    return posts[-1]


def replayable_headers(request: RecordedRequest) -> dict[str, str]:
    """The headers of a recorded call that a direct client must send to make the same call."""
    return {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
