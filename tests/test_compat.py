"""The private names this package reads, checked against the installed libraries.

If an upgrade of the MCP SDK or of azure-identity removes one, these tests fail loudly; the
fallbacks (a start-up WARNING, then the documented degraded behaviour) are tested too.
"""

from __future__ import annotations

import inspect
import logging
from types import SimpleNamespace
from typing import Any

import anyio
import mcp.server.stdio as sdk_stdio
import pytest
from azure.identity import DefaultAzureCredential
from helpers import TokenEndpoint
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.session import ServerSession

from mcp_server.foundry import identity_compat
from mcp_server.foundry.identity_compat import check_credential, credential_source, names_successful_credential
from mcp_server.protocol import TOKEN_SCOPE
from mcp_server.stdio.transport import serve_stdio
from mcp_server.tools import sdk_compat
from mcp_server.tools.sdk_compat import check_sdk, client_cancel_flag, sdk_keeps_cancel_flag, stdio_internals
from mcp_server.tools.tools import cancel_check

# ---------------------------------------------------------------- mcp: ServerSession._request_outbound


def test_the_installed_mcp_sdk_keeps_the_request_cancel_flag(caplog: pytest.LogCaptureFixture) -> None:
    assert sdk_compat.PRIVATE_ATTRIBUTE in ServerSession.__init__.__code__.co_names, (
        "mcp.server.session.ServerSession no longer sets _request_outbound: update mcp_server/tools/sdk_compat.py"
    )
    assert sdk_keeps_cancel_flag()
    with caplog.at_level(logging.WARNING):
        assert check_sdk()
    assert not caplog.records


async def flag_states(mode: str) -> dict[str, Any]:
    """What `client_cancel_flag` gives a real tool call that its client then abandons."""
    server = MCPServer("compat")
    seen: dict[str, Any] = {}

    @server.tool()
    async def wait(ctx: Context) -> str:
        flag = seen["flag"] = client_cancel_flag(ctx.request_context.session)
        seen["before"] = flag is not None and flag.is_set()
        try:
            await anyio.sleep(30)
        finally:
            seen["after"] = flag is not None and flag.is_set()
        return "slept"

    async with Client(server, mode=mode) as client:
        with anyio.move_on_after(0.5):
            await client.call_tool("wait", {})
        with anyio.fail_after(5):
            while "after" not in seen:
                await anyio.sleep(0.02)
    return seen


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_real_tool_call_exposes_the_flag_and_a_client_cancel_sets_it(mode: str) -> None:
    seen = await flag_states(mode)
    assert isinstance(seen["flag"], anyio.Event), "the SDK moved the per-request cancel flag"
    assert seen["before"] is False
    if mode == "legacy":
        assert seen["after"] is True, "notifications/cancelled no longer sets the flag"


def test_without_the_attribute_a_warning_is_logged_and_every_cancel_counts_as_the_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class UpgradedSession:
        def __init__(self, request_context: object) -> None:
            self._request_context = request_context

    with caplog.at_level(logging.WARNING, logger=sdk_compat.__name__):
        assert check_sdk(UpgradedSession) is False
    assert [record.getMessage() for record in caplog.records] == [sdk_compat.DEGRADED]
    assert "every cancelled call also cancels its Foundry generation" in sdk_compat.DEGRADED

    session = UpgradedSession(object())
    assert client_cancel_flag(session) is None
    request = SimpleNamespace(session=session, request=None, protocol_version="2025-11-25")
    assert cancel_check(SimpleNamespace(request_context=request))() is True  # type: ignore[arg-type]


def test_with_the_attribute_only_a_client_cancel_counts() -> None:
    flag = anyio.Event()
    session = SimpleNamespace(_request_outbound=SimpleNamespace(cancel_requested=flag))
    request = SimpleNamespace(session=session, request=None, protocol_version="2025-11-25")
    client_cancelled = cancel_check(SimpleNamespace(request_context=request))  # type: ignore[arg-type]
    assert client_cancelled() is False, "a shutdown or a vanished stdio client lets the generation finish"
    flag.set()
    assert client_cancelled() is True


@pytest.mark.anyio
async def test_the_warning_names_the_real_sdk_once_the_attribute_is_gone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sdk_compat, "PRIVATE_ATTRIBUTE", "_gone_in_a_future_sdk")
    with caplog.at_level(logging.WARNING, logger=sdk_compat.__name__):
        assert check_sdk() is False
    assert caplog.records and caplog.records[0].levelno == logging.WARNING
    seen = await flag_states("legacy")
    assert seen["flag"] is None


# ---------------------------------------------------------------- mcp: the stdio transport's SDK internals


def test_the_installed_mcp_sdk_has_what_the_stdio_transport_uses(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        internals = stdio_internals(MCPServer("compat"))
    assert internals is not None and not caplog.records, "update mcp_server/tools/sdk_compat.py"
    # serve_stdio does what run_stdio_async does, over another transport; stdio_server's reader is the one
    # part replaced, and its writer and text wrapping are copied: a change in either means a re-read.
    assert set(MCPServer.run_stdio_async.__code__.co_names) == {
        "stdio_server",
        "_lowlevel_server",
        "run",
        "create_initialization_options",
    }
    source = inspect.getsource(sdk_stdio.stdio_server)
    for line in (
        "message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)",
        "json = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)",
        'encoding="utf-8", errors="replace"',
        "create_context_streams[SessionMessage | Exception](0)",
    ):
        assert line in source, f"mcp.server.stdio.stdio_server changed: compare mcp_server/stdio/transport.py ({line})"


@pytest.mark.anyio
async def test_without_them_stdio_is_served_by_the_sdks_own_transport_after_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sdk_compat, "STDIO_HELPERS", (*sdk_compat.STDIO_HELPERS, "_gone_in_a_future_sdk"))
    server = MCPServer("compat")
    served: list[str] = []

    async def sdk_transport() -> None:
        served.append("run_stdio_async")

    monkeypatch.setattr(server, "run_stdio_async", sdk_transport)
    with caplog.at_level(logging.WARNING, logger=sdk_compat.__name__):
        await serve_stdio(server)
    assert served == ["run_stdio_async"]
    assert [record.getMessage() for record in caplog.records] == [sdk_compat.STDIO_DEGRADED]


# ---------------------------------------------------------------- azure-identity: _successful_credential


def test_the_installed_azure_identity_remembers_the_successful_credential(caplog: pytest.LogCaptureFixture) -> None:
    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    assert hasattr(credential, identity_compat.PRIVATE_ATTRIBUTE), (
        "DefaultAzureCredential no longer has _successful_credential: update mcp_server/foundry/identity_compat.py"
    )
    assert names_successful_credential(credential)
    with caplog.at_level(logging.WARNING):
        assert check_credential(credential)
    assert not caplog.records
    assert credential_source(credential) == "DefaultAzureCredential", "nothing chosen before a token is fetched"


def test_the_credential_that_produced_the_token_is_named(managed_identity: TokenEndpoint) -> None:
    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    assert credential.get_token(TOKEN_SCOPE).token == managed_identity.token
    assert credential_source(credential) == "ManagedIdentityCredential"


def test_without_the_attribute_a_warning_is_logged_and_the_chain_itself_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class UpgradedCredential:
        pass

    credential = UpgradedCredential()
    with caplog.at_level(logging.WARNING, logger=identity_compat.__name__):
        assert check_credential(credential) is False
    assert [record.getMessage() for record in caplog.records] == [identity_compat.DEGRADED]
    assert credential_source(credential) == "UpgradedCredential"


# ---------------------------------------------------------------- mcp: MCPServer._handle_list_resources


def test_the_installed_mcp_sdk_routes_resources_list_through_the_overridden_handler() -> None:
    """`ImageServer` paginates `resources/list` by overriding `MCPServer._handle_list_resources(ctx, params)`,
    which `MCPServer.__init__` registers as `on_list_resources`; the SDK's own lists everything at once."""
    assert "_handle_list_resources" in inspect.getsource(MCPServer.__init__)
    parameters = list(inspect.signature(MCPServer._handle_list_resources).parameters)
    assert parameters == ["self", "ctx", "params"]


# ---------------------------------------------------------------- mcp: MCPServer._handle_list_tools


def test_the_installed_mcp_sdk_routes_tools_list_through_the_overridden_handler() -> None:
    """`ImageServer` hides the tools' `_meta.ui` from clients without MCP Apps by overriding
    `MCPServer._handle_list_tools(ctx, params)`, which `MCPServer.__init__` registers as `on_list_tools`."""
    assert "self._handle_list_tools" in inspect.getsource(MCPServer.__init__)
    parameters = list(inspect.signature(MCPServer._handle_list_tools).parameters)
    assert parameters == ["self", "ctx", "params"]
