"""The stdio transport: the SDK's `stdio_server` with a reader that answers the lines the SDK drops.

`mcp.server.stdio.stdio_server` (mcp 2.3) hands every line it cannot validate to the server as an
`Exception`, which the server logs at DEBUG and drops: a request that is not JSON, has a bad envelope,
`params` that is not an object, a lone surrogate or nesting deeper than the parser recurses is never
answered, and its client waits for its own timeout (docs/upstream/mcp-python-sdk-stdio-dropped-requests.md).

`checked_stdio_server` is that transport with one change, the reader: lines go through `screen`, the
messages the SDK accepts are passed on as the same objects, and the rest are answered with their
JSON-RPC error (or, for a notification, logged on stderr). Everything else is the SDK's: fd 0 and fd 1
are claimed by its own helpers (so stray writes to stdout still miss the wire), the streams are its
context streams, and the writer is its writer, line for line. `serve_stdio` is `MCPServer.run_stdio_async`
over it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias

import anyio
import anyio.lowlevel
from mcp.server.mcpserver import MCPServer
from mcp.shared._context_streams import ContextReceiveStream, ContextSendStream, create_context_streams
from mcp.shared.message import SessionMessage

from mcp_server.stdio.screen import Refusal, screen
from mcp_server.tools.sdk_compat import StdioInternals, stdio_internals

logger = logging.getLogger(__name__)

TextFiles: TypeAlias = tuple[anyio.AsyncFile[str], anyio.AsyncFile[str]]
Streams: TypeAlias = tuple[ContextReceiveStream[SessionMessage | Exception], ContextSendStream[SessionMessage]]


async def serve_stdio(server: MCPServer[Any]) -> None:
    """`server.run_stdio_async()`, with `checked_stdio_server` in place of the SDK's `stdio_server`.

    Falls back to the SDK's own transport (after a WARNING) if the installed SDK lacks what this needs."""
    internals = stdio_internals(server)
    if internals is None:
        await server.run_stdio_async()
        return
    lowlevel = internals.lowlevel
    async with checked_stdio_server(internals) as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


@contextmanager
def claimed_stdio(internals: StdioInternals) -> Iterator[TextFiles]:
    """fd 0 and fd 1, claimed and wrapped exactly as `mcp.server.stdio.stdio_server` does it."""
    releases = []
    try:
        stdin_buffer, release = internals.claim_fd(0, sys.stdin, "rb", internals.open_stdin_diversion)
        releases.append(release)
        stdin = anyio.wrap_file(internals.text_wrapper(stdin_buffer, encoding="utf-8", errors="replace"))
        stdout_buffer, release = internals.claim_fd(1, sys.stdout, "wb", internals.open_stdout_diversion)
        releases.append(release)
        yield stdin, anyio.wrap_file(internals.text_wrapper(stdout_buffer, encoding="utf-8"))
    finally:
        for release in reversed(releases):  # stdout first, as the SDK does
            if release is not None:
                release()


@asynccontextmanager
async def checked_stdio_server(
    internals: StdioInternals | None = None, files: TextFiles | None = None
) -> AsyncIterator[Streams]:
    """The `(read_stream, write_stream)` pair of the SDK's `stdio_server`, over the process's stdin and
    stdout (claimed with `internals`) or over `files` (then nothing is claimed, as with the SDK's)."""
    if files is None:
        if internals is None:
            raise ValueError("checked_stdio_server needs the SDK internals to claim stdin and stdout")
        with claimed_stdio(internals) as claimed:
            async with _serving(*claimed) as streams:
                yield streams
    else:
        async with _serving(*files) as streams:
            yield streams


@asynccontextmanager
async def _serving(stdin: anyio.AsyncFile[str], stdout: anyio.AsyncFile[str]) -> AsyncIterator[Streams]:
    read_stream_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_stream_reader = create_context_streams[SessionMessage](0)

    async def stdout_writer() -> None:  # the SDK's writer
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    json = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdout.write(json + "\n")
                    await stdout.flush()
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_lines, stdin, read_stream_writer, write_stream)
        tg.start_soon(stdout_writer)
        yield read_stream, write_stream


async def read_lines(
    stdin: anyio.AsyncFile[str],
    messages: ContextSendStream[SessionMessage | Exception],
    answers: ContextSendStream[SessionMessage],
) -> None:
    """The SDK's reader, except that a line it would drop is answered (or logged) by `refuse`."""
    try:
        async with messages:
            async for line in stdin:
                try:
                    screened = screen(line)
                except Exception:  # a bug here must not end the session: the line goes unanswered
                    logger.exception("Could not screen a line of %d characters; it goes unanswered", len(line))
                    continue
                if isinstance(screened, Refusal):
                    await refuse(screened, answers)
                elif screened is not None:
                    await messages.send(SessionMessage(screened))
    except anyio.ClosedResourceError:
        await anyio.lowlevel.checkpoint()


async def refuse(refusal: Refusal, answers: ContextSendStream[SessionMessage]) -> None:
    """Send `refusal`'s error on the server's own write stream, or log why it gets none."""
    if not refusal.answered:
        logger.warning("Ignored a malformed message without an id (JSON-RPC: no answer): %s", refusal.describe())
        return
    logger.info("Answered a malformed message: %s", refusal.describe())
    try:
        await answers.send(SessionMessage(refusal.response()))
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        logger.debug("The server has stopped writing; %s went unanswered", refusal.describe())
