"""The HTTP app takes its inbound auth from Settings (never from os.environ) and advertises the right issuer."""

from __future__ import annotations

import pytest

from mcp_server.config import (
    AUTH_TOKENS_VAR,
    ENTRA_AUDIENCE_VAR,
    ENTRA_ISSUER_VAR,
    ENTRA_TENANT_VAR,
    InboundAuthSettings,
)
from mcp_server.errors import ConfigurationError
from mcp_server.http.app import HttpOptions, allow_list, inbound_auth, inbound_verifier
from mcp_server.http.entra import EntraJwtVerifier
from mcp_server.http.static_tokens import StaticTokenVerifier
from mcp_server.http.verifiers import ChainVerifier

TENANT = "11111111-2222-4333-8444-555555555555"
TOKEN = "alice-token-0123456789abcdef"
ENTRA = {ENTRA_TENANT_VAR: TENANT, ENTRA_AUDIENCE_VAR: "api://images"}
BASE_URL = "http://127.0.0.1:8000"


def test_the_verifier_comes_from_the_settings_not_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTH_TOKENS_VAR, f"alice:{TOKEN}")
    monkeypatch.setenv(ENTRA_TENANT_VAR, TENANT)
    assert inbound_verifier(InboundAuthSettings.load({}), HttpOptions()) is None
    given = inbound_verifier(InboundAuthSettings.load({AUTH_TOKENS_VAR: f"bob:{TOKEN}"}), HttpOptions())
    assert isinstance(given, StaticTokenVerifier) and given.names == ("bob",)
    both = inbound_verifier(InboundAuthSettings.load({AUTH_TOKENS_VAR: f"bob:{TOKEN}", **ENTRA}), HttpOptions())
    assert isinstance(both, ChainVerifier)
    assert [type(v) for v in both.verifiers] == [StaticTokenVerifier, EntraJwtVerifier]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_an_open_server_off_loopback_is_refused_unless_allowed(host: str) -> None:
    nothing = InboundAuthSettings.load({})
    with pytest.raises(ConfigurationError, match="without inbound authentication") as caught:
        inbound_verifier(nothing, HttpOptions(host=host))
    assert AUTH_TOKENS_VAR in (caught.value.hint or "")
    assert inbound_verifier(nothing, HttpOptions(host=host, allow_unauthenticated=True)) is None
    assert isinstance(
        inbound_verifier(InboundAuthSettings.load({AUTH_TOKENS_VAR: TOKEN}), HttpOptions(host=host)),
        StaticTokenVerifier,
    )


@pytest.mark.parametrize(
    ("env", "issuer"),
    [
        ({AUTH_TOKENS_VAR: TOKEN}, BASE_URL),
        (ENTRA, f"https://login.microsoftonline.com/{TENANT}/v2.0"),
        ({AUTH_TOKENS_VAR: TOKEN, **ENTRA}, f"https://login.microsoftonline.com/{TENANT}/v2.0"),
        ({**ENTRA, ENTRA_ISSUER_VAR: f"https://login.microsoftonline.us/{TENANT}/v2.0"}, None),
    ],
)
def test_the_protected_resource_metadata_names_the_token_issuer(env: dict[str, str], issuer: str | None) -> None:
    verifier = inbound_verifier(InboundAuthSettings.load(env), HttpOptions())
    assert verifier is not None
    auth = inbound_auth(verifier, HttpOptions(public_url="https://images.example.com/"), BASE_URL)
    expected = issuer or env[ENTRA_ISSUER_VAR]
    assert str(auth.settings.issuer_url) == expected
    assert str(auth.settings.resource_server_url) == "https://images.example.com/mcp"


def test_dns_rebinding_protection_allows_loopback_and_the_bound_host() -> None:
    loopback = allow_list(HttpOptions())
    assert set(loopback.hosts) == {"127.0.0.1:*", "localhost:*", "[::1]:*"}
    assert set(loopback.origins) == {"http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"}
    public = allow_list(HttpOptions(host="192.0.2.10", allowed_hosts=("images.example.com:*",)))
    assert {"192.0.2.10:*", "images.example.com:*"} <= set(public.hosts)
    assert "0.0.0.0:*" not in allow_list(HttpOptions(host="0.0.0.0")).hosts
    assert "[2001:db8::5]:*" in allow_list(HttpOptions(host="2001:db8::5")).hosts


@pytest.mark.anyio
async def test_accepted_connections_have_tcp_nodelay() -> None:
    """Issue 16: a listening socket made with protocol 0 gave accepted connections Nagle's algorithm, and every
    request of the 2026-07-28 protocol waited ~40 ms for a delayed ACK."""
    import asyncio
    import socket

    from mcp_server.http.app import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
    assert seen == [1]
