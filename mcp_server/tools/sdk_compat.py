"""The one place this package reads a private attribute of the MCP SDK (mcp 2.3).

The MCP `Context` does not say whether a cancelled call was cancelled by its client. The SDK
knows: the request's dispatch context has a public `cancel_requested` event, set when the client
sends `notifications/cancelled`. But the session keeps that dispatch context in its private
`_request_outbound` attribute (set in `mcp.server.session.ServerSession.__init__`).

`check_sdk` runs once at start-up and logs a WARNING when the installed SDK no longer has it;
`client_cancel_flag` then answers None, and every cancellation counts as the client's (the
upstream generation is cancelled too, even when the server is merely shutting down).
tests/test_compat.py fails when an SDK upgrade removes the attribute.
"""

from __future__ import annotations

import functools
import logging
from typing import Final

import anyio
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
