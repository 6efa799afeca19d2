"""Outbound auth through the real layers: api-key, and Entra ID via real azure-identity managed identity.

The server runs in-process; azure-identity reads its managed-identity endpoint from this process's
environment, which the `managed_identity` fixture points at a loopback token endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from helpers import TokenEndpoint, connect, emulator_running, text_of

from mcp_server.emulator import EmulatorConfig

pytestmark = pytest.mark.anyio
TIMEOUT = 90


async def test_entra_token_from_managed_identity_is_sent_and_cached(
    managed_identity: TokenEndpoint, tmp_path: Path
) -> None:
    identity = managed_identity
    with emulator_running(EmulatorConfig(accepted_tokens=frozenset({identity.token}))) as emu:
        with anyio.fail_after(TIMEOUT):
            async with connect(emu.endpoint, tmp_path, api_key=None) as client:
                first = await client.call_tool("generate_image", {"prompt": "a heron", "quality": "low"})
                second = await client.call_tool("generate_image", {"prompt": "a crane", "quality": "low"})
        assert not first.is_error, text_of(first)
        assert not second.is_error, text_of(second)
        assert len(identity.calls) == 1, "the token must be cached between calls"
        assert identity.calls[0]["query"]["resource"] == "https://ai.azure.com"
        sent = {r.headers.get("authorization") for r in emu.state.requests}
        assert sent == {f"Bearer {identity.token}"}
        assert not any("api-key" in r.headers for r in emu.state.requests)


async def test_a_failing_identity_endpoint_gives_an_authentication_error_with_next_steps(
    managed_identity: TokenEndpoint, tmp_path: Path
) -> None:
    identity = managed_identity
    identity.status = 500
    with emulator_running(EmulatorConfig()) as emu:
        with anyio.fail_after(TIMEOUT):
            async with connect(emu.endpoint, tmp_path, api_key=None) as client:
                result = await client.call_tool("generate_image", {"prompt": "a heron"})
        assert identity.calls and all(call["header"] == identity.secret for call in identity.calls)
        assert result.is_error
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "credential_unavailable"
        assert "az login" in text_of(result) and "AZURE_AI_API_KEY" in text_of(result)
        assert "Traceback" not in text_of(result)
        assert emu.state.requests == []


async def test_api_key_is_sent_and_a_rejected_key_is_reported_without_leaking_it(tmp_path: Path) -> None:
    with emulator_running(EmulatorConfig(accepted_api_keys=frozenset({"right-key"}))) as emu:
        with anyio.fail_after(TIMEOUT):
            async with connect(emu.endpoint, tmp_path / "ok", api_key="right-key") as client:
                ok = await client.call_tool("generate_image", {"prompt": "a heron", "quality": "low"})
            async with connect(emu.endpoint, tmp_path / "bad", api_key="wrong-secret-value") as client:
                bad = await client.call_tool("generate_image", {"prompt": "a heron", "quality": "low"})
        assert not ok.is_error, text_of(ok)
        assert bad.is_error
        assert bad.structured_content is not None
        assert bad.structured_content["error"]["status"] == 401
        assert "AZURE_AI_API_KEY" in text_of(bad)
        everything = text_of(bad) + json.dumps(bad.structured_content)
        assert "wrong-secret-value" not in everything and "right-key" not in everything
        # The key travels as `api-key` on the Foundry routes and as a bearer on /openai/v1 (protocol §1.5).
        for request in emu.state.requests:
            key = request.headers.get("api-key") or request.headers["authorization"].removeprefix("Bearer ")
            assert key in ("right-key", "wrong-secret-value")
            assert ("/openai/" in request.path) == ("authorization" in request.headers), request.path
