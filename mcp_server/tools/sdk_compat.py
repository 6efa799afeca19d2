"""The one place this package reads private names of the MCP SDK (mcp 2.3).

1. The MCP `Context` does not say whether a cancelled call was cancelled by its client. The SDK
knows: the request's dispatch context has a public `cancel_requested` event, set when the client
sends `notifications/cancelled`. But the session keeps that dispatch context in its private
`_request_outbound` attribute (set in `mcp.server.session.ServerSession.__init__`).

`check_sdk` runs once at start-up and logs a WARNING when the installed SDK no longer has it;
`client_cancel_flag` then answers None, and every cancellation counts as the client's (the
upstream generation is cancelled too, even when the server is merely shutting down).

2. The stdio transport (`mcp_server.stdio`) replaces only the reader of the SDK's `stdio_server`.
It runs the low-level server `MCPServer.run_stdio_async` runs (the private `_lowlevel_server`),
and claims fd 0 and fd 1 with `mcp.server.stdio`'s own private helpers. `stdio_internals` answers
None, with a WARNING, when the installed SDK lacks one of them; the SDK's own stdio transport then
serves (malformed lines go unanswered again).

3. `tools.server.ImageServer` paginates `resources/list` by overriding `MCPServer._handle_list_resources`
(the handler `MCPServer.__init__` registers; the public `list_resources()` takes no cursor).

tests/test_compat.py fails when an SDK upgrade removes any of these.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from io import TextIOWrapper
from typing import Any, BinaryIO, Final

import anyio
import mcp.server.stdio as sdk_stdio
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.session import ServerSession
from mcp.shared.dispatcher import DispatchContext

logger = logging.getLogger(__name__)

PRIVATE_ATTRIBUTE: Final = "_request_outbound"
DEGRADED: Final = (
    "The installed MCP SDK no longer keeps the request's dispatch context in "
    f"ServerSession.{PRIVATE_ATTRIBUTE}: a client's cancel cannot be told from a server-side "
    "cancellation, so every cancelled call also cancels its Foundry generation (a shutdown no "
    "longer lets running generations finish and be stored)."
)


def client_cancel_flag(session: object) -> anyio.Event | None:
    """The event the SDK sets when the client cancels this request, or None if this SDK hides it."""
    outbound = getattr(session, PRIVATE_ATTRIBUTE, None)
    flag = getattr(outbound, "cancel_requested", None)
    return flag if isinstance(flag, anyio.Event) else None


def sdk_keeps_cancel_flag(session_class: type = ServerSession) -> bool:
    """Whether `session_class` still stores the dispatch context where `client_cancel_flag` reads it.

    The attribute is set per instance, so the check reads the names `__init__` assigns."""
    code = getattr(getattr(session_class, "__init__", None), "__code__", None)
    stored = code is not None and PRIVATE_ATTRIBUTE in code.co_names
    return stored and hasattr(DispatchContext, "cancel_requested")


def check_sdk(session_class: type = ServerSession) -> bool:
    """`sdk_keeps_cancel_flag`, with a WARNING naming the degraded behaviour when it does not."""
    if sdk_keeps_cancel_flag(session_class):
        return True
    logger.warning(DEGRADED)
    return False


@functools.cache
def check_sdk_once() -> bool:
    """`check_sdk` for the installed SDK, run (and warned about) once per process."""
    return check_sdk()


# ---------------------------------------------------------------- the stdio transport

LOWLEVEL_ATTRIBUTE: Final = "_lowlevel_server"
STDIO_HELPERS: Final = ("_claim_fd", "_open_stdin_diversion", "_open_stdout_diversion", "_UnownedTextWrapper")
STDIO_DEGRADED: Final = (
    f"The installed MCP SDK no longer has MCPServer.{LOWLEVEL_ATTRIBUTE} or one of mcp.server.stdio's "
    f"{', '.join(STDIO_HELPERS)}: stdio is served by the SDK's own transport, which leaves malformed "
    "requests (not JSON, an invalid envelope, a lone surrogate) unanswered until the client times out."
)


@dataclass(frozen=True)
class StdioInternals:
    """What `MCPServer.run_stdio_async` and `mcp.server.stdio.stdio_server` use beyond public names."""

    lowlevel: Server[Any]
    claim_fd: Callable[..., tuple[BinaryIO, Callable[[], None] | None]]
    open_stdin_diversion: Callable[[], int]
    open_stdout_diversion: Callable[[], int]
    text_wrapper: type[TextIOWrapper]


def stdio_internals(server: MCPServer[Any]) -> StdioInternals | None:
    """The SDK internals `mcp_server.stdio` needs for `server`, or None (and a WARNING) if one is gone."""
    lowlevel = getattr(server, LOWLEVEL_ATTRIBUTE, None)
    helpers: list[Any] = [getattr(sdk_stdio, name, None) for name in STDIO_HELPERS]
    if not isinstance(lowlevel, Server) or not all(callable(helper) for helper in helpers):
        logger.warning(STDIO_DEGRADED)
        return None
    return StdioInternals(lowlevel, *helpers)
