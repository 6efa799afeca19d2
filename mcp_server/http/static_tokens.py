"""Static bearer tokens: `name:token` entries in FOUNDRY_IMAGE_MCP_AUTH_TOKENS, for a few known clients.

The principal of a token is the name it was configured under; a name never contains ":", so it
cannot collide with an Entra ID principal (`{tid}:{oid}`). Tokens are compared in constant time
and never logged or put into an error message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_server.config import AUTH_TOKENS_VAR
from mcp_server.errors import ConfigurationError

MIN_STATIC_TOKEN_LENGTH = 16
STATIC_TOKEN_ISSUER = "urn:foundry-image-mcp:static-token"
"""The `iss` put into a static token's claims, so the SDK's session binding tells the kinds apart."""


def default_token_name(token: str) -> str:
    """The principal name of a token configured without one."""
    return "token-" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def parse_static_tokens(value: str) -> dict[str, str]:
    """Principal name -> token, from FOUNDRY_IMAGE_MCP_AUTH_TOKENS.

    Entries are comma-separated, each `name:token` or a bare `token` (named by `default_token_name`);
    a bare token therefore cannot contain ":". Whitespace around names and tokens is trimmed and
    empty entries are skipped.

    Raises:
        ConfigurationError: for an empty name, a token shorter than `MIN_STATIC_TOKEN_LENGTH`,
            a name used twice, or one token under two names. The message never holds a token.
    """
    tokens: dict[str, str] = {}
    for position, raw in enumerate(value.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, colon, token = entry.partition(":")
        if colon:
            name, token = name.strip(), token.strip()
            label = repr(name)
            if not name:
                raise ConfigurationError(f"{AUTH_TOKENS_VAR}: entry {position} has an empty name before ':'.")
        else:
            token, name = entry, default_token_name(entry)
            # Not the derived name: a hash prefix of a short token is enough to guess it.
            label = f"{position} (a token without a name)"
        if len(token) < MIN_STATIC_TOKEN_LENGTH:
            raise ConfigurationError(
                f"{AUTH_TOKENS_VAR}: the token of entry {label} is shorter than {MIN_STATIC_TOKEN_LENGTH} characters.",
                hint='Generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`.',
            )
        if name in tokens:
            raise ConfigurationError(f"{AUTH_TOKENS_VAR}: the name {name!r} is used by more than one entry.")
        tokens[name] = token
    return tokens


class StaticTokenVerifier(TokenVerifier):
    """Accepts the configured tokens; the principal is the name the token was configured under.

    `resource`, when given, is stamped on every accepted token, for a server that sets
    `AuthSettings.validate_token_resource`.
    """

    def __init__(self, tokens: Mapping[str, str], *, resource: str | None = None) -> None:
        entries: list[tuple[bytes, str]] = []
        owner: dict[bytes, str] = {}
        for name, token in tokens.items():
            if not name or ":" in name:
                raise ConfigurationError(f"{AUTH_TOKENS_VAR}: the name {name!r} must be non-empty and without ':'.")
            if len(token) < MIN_STATIC_TOKEN_LENGTH:
                raise ConfigurationError(
                    f"{AUTH_TOKENS_VAR}: the token of {name!r} is shorter than {MIN_STATIC_TOKEN_LENGTH} characters."
                )
            digest = _digest(token)
            if digest in owner:
                raise ConfigurationError(
                    f"{AUTH_TOKENS_VAR}: {owner[digest]!r} and {name!r} have the same token; each needs its own."
                )
            owner[digest] = name
            entries.append((digest, name))
        self._entries = tuple(entries)
        self._resource = resource

    @property
    def names(self) -> tuple[str, ...]:
        """The configured principal names, in configuration order."""
        return tuple(name for _, name in self._entries)

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = _digest(token)
        matched: str | None = None
        # Compare digests (equal length whatever was sent) against every entry, without stopping at
        # a match, so the time taken says nothing about which entry matched or how much of one did.
        for digest, name in self._entries:
            if hmac.compare_digest(digest, presented) and matched is None:
                matched = name
        if matched is None:
            return None
        return AccessToken(
            token=token,
            client_id=matched,
            scopes=[],
            expires_at=None,
            resource=self._resource,
            subject=matched,
            claims={"iss": STATIC_TOKEN_ISSUER, "sub": matched},
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
