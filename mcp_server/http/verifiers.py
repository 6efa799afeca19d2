"""Inbound authentication for the HTTP transport: the verifier the settings configure.

Two kinds of bearer token, as `TokenVerifier`s for the SDK's bearer middleware: static tokens
(`static_tokens`) and Microsoft Entra ID access tokens (`entra`). With both, static tokens are
tried first: they cost a hash, a JWT costs a signature check.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_server.config import AUTH_TOKENS_VAR, ENTRA_AUDIENCE_VAR, ENTRA_TENANT_VAR, InboundAuthSettings
from mcp_server.errors import ConfigurationError
from mcp_server.http.entra import EntraJwtVerifier
from mcp_server.http.static_tokens import StaticTokenVerifier, parse_static_tokens


class ChainVerifier(TokenVerifier):
    """Asks each verifier in turn; the first that accepts the token wins."""

    def __init__(self, *verifiers: TokenVerifier) -> None:
        self.verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            access = await verifier.verify_token(token)
            if access is not None:
                return access
        return None


def build_verifier(settings: InboundAuthSettings) -> TokenVerifier | None:
    """The verifier `settings` configure, or None when they configure no inbound auth.

    Raises:
        ConfigurationError: for malformed static tokens, or Entra ID settings without the tenant or
            the audience (a half-configured Entra ID must not silently turn authentication off).
    """
    verifiers: list[TokenVerifier] = []
    raw_tokens = settings.auth_tokens.get_secret_value().strip() if settings.auth_tokens else ""
    if raw_tokens:
        tokens = parse_static_tokens(raw_tokens)
        if not tokens:
            raise ConfigurationError(f"{AUTH_TOKENS_VAR} is set but holds no token.")
        verifiers.append(StaticTokenVerifier(tokens))

    if settings.entra_configured:
        verifiers.append(_entra_verifier(settings))

    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else ChainVerifier(*verifiers)


def _entra_verifier(settings: InboundAuthSettings) -> EntraJwtVerifier:
    tenant, audience = settings.entra_tenant_id, settings.entra_audience
    if not tenant or not audience:
        missing = [name for name, value in ((ENTRA_TENANT_VAR, tenant), (ENTRA_AUDIENCE_VAR, audience)) if not value]
        raise ConfigurationError(
            "Microsoft Entra ID authentication is half configured: set " + " and ".join(missing) + ".",
            hint=f"{ENTRA_TENANT_VAR} is the directory (tenant) ID; {ENTRA_AUDIENCE_VAR} is the API's "
            "application ID URI or client ID, as found in the tokens' `aud` claim.",
        )
    return EntraJwtVerifier(
        tenant_id=tenant,
        audience=audience,
        required_scopes=settings.entra_scopes,
        issuer=settings.entra_issuer,
        jwks_url=settings.entra_jwks_url,
    )


def advertised_issuer(verifier: TokenVerifier) -> str | None:
    """The authorization server to name in the protected-resource metadata: Entra ID's issuer, if used."""
    chain = verifier.verifiers if isinstance(verifier, ChainVerifier) else (verifier,)
    return next((v.issuers[0] for v in chain if isinstance(v, EntraJwtVerifier)), None)
