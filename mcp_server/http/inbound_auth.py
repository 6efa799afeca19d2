"""Inbound authentication for the HTTP transport: who is calling this server.

Two kinds of bearer token, as `TokenVerifier`s for the SDK's bearer middleware:

* static tokens, `name:token` entries in FOUNDRY_IMAGE_MCP_AUTH_TOKENS, for a few known clients;
* Microsoft Entra ID access tokens (RS256 JWTs) issued by one tenant for one API.

Each verified token names a *principal*: the static entry's name, or `{tid}:{oid}` for Entra ID.
A static name never contains ":", so the two kinds cannot collide. `principal_dir_name` turns a
principal into a directory name for what that principal owns.

A verifier never raises to the middleware: a token that does not verify, or signing keys that
cannot be fetched, give `None` and so a 401. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_server.errors import ConfigurationError

logger = logging.getLogger(__name__)

AUTH_TOKENS_VAR = "FOUNDRY_IMAGE_MCP_AUTH_TOKENS"
ENTRA_TENANT_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_TENANT_ID"
ENTRA_AUDIENCE_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_AUDIENCE"
ENTRA_SCOPES_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_SCOPES"
ENTRA_ISSUER_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_ISSUER"
ENTRA_JWKS_URL_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_JWKS_URL"

MIN_STATIC_TOKEN_LENGTH = 16
STATIC_TOKEN_ISSUER = "urn:foundry-image-mcp:static-token"
"""The `iss` put into a static token's claims, so the SDK's session binding tells the kinds apart."""

JWKS_REFETCH_INTERVAL = 60.0
"""Fetch the signing keys at most this often, however many tokens name an unknown key."""
JWKS_MAX_AGE = 24 * 3600.0
"""Keys older than this are fetched again, so a key Microsoft withdrew stops being trusted."""
JWKS_TIMEOUT = 10.0

_ALGORITHM = "RS256"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def entra_issuers(tenant_id: str) -> tuple[str, str]:
    """The v2.0 and v1.0 issuers of a tenant's access tokens (which one depends on the API's manifest)."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0", f"https://sts.windows.net/{tenant_id}/"


def entra_jwks_url(tenant_id: str) -> str:
    """Where a tenant publishes its token-signing keys."""
    return f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"


def principal_of(token: AccessToken | None) -> str | None:
    """The stable principal id of a verified token: its `subject`, else its `client_id`."""
    if token is None:
        return None
    return token.subject or token.client_id


def principal_dir_name(principal: str) -> str:
    """A directory name for `principal`, safe on every filesystem whatever characters the id holds."""
    return "p-" + hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()[:24]


# --- static tokens ------------------------------------------------------------------------------


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


# --- Microsoft Entra ID -------------------------------------------------------------------------


class EntraJwtVerifier(TokenVerifier):
    """Validates Microsoft Entra ID access tokens issued by one tenant for this API.

    Checks the RS256 signature against the tenant's published keys, the issuer (v2.0 or v1.0 form
    unless `issuer` is given), the audience, `exp`/`nbf`/`iat` with `leeway` seconds, `tid`, and
    that the token grants every one of `required_scopes`: in `scp` for a delegated (user) token,
    in `roles` for an application token.

    Keys are cached by `kid`. A token naming an unknown key, or keys older than `JWKS_MAX_AGE`,
    cause one fetch of the key set, at most once per `refetch_interval` seconds so that forged
    tokens cannot make this server hammer Microsoft. A failed fetch keeps the keys already held.

    The HTTP client is created on first use unless `http` is given; `aclose()` closes only a
    client this verifier created. `clock` (monotonic seconds) exists for tests.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        audience: str | Sequence[str],
        required_scopes: Sequence[str] = (),
        issuer: str | None = None,
        jwks_url: str | None = None,
        http: httpx2.AsyncClient | None = None,
        leeway: float = 60,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tenant = tenant_id.strip().lower()
        if not _GUID.fullmatch(tenant):
            # Tokens carry the tenant's GUID in `iss` and `tid`; a domain name would never match.
            raise ConfigurationError(
                f"{ENTRA_TENANT_VAR} must be the tenant ID (a GUID), not {tenant_id.strip()!r}.",
                hint="It is the 'Directory (tenant) ID' on the app registration's overview page.",
            )
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        audiences = tuple(a.strip() for a in audiences if a.strip())
        if not audiences:
            raise ConfigurationError(f"{ENTRA_AUDIENCE_VAR} must name the API the tokens are issued for.")
        self.tenant_id = tenant
        self.audiences = audiences
        self.required_scopes = tuple(required_scopes)
        self.issuers = (issuer.strip(),) if issuer and issuer.strip() else entra_issuers(tenant)
        self.jwks_url = _checked_jwks_url(jwks_url or entra_jwks_url(tenant))
        self._http = http
        self._owns_http = http is None
        self._leeway = leeway
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> EntraJwtVerifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            logger.info("Refused a bearer token that is not a valid JWT: %s", exc)
            return None
        # Decided before any key lookup, so `none`/HS256 tokens cannot even cause a key fetch.
        if header.get("alg") != _ALGORITHM:
            logger.info("Refused a bearer token signed with %.40r instead of %s", header.get("alg"), _ALGORITHM)
            return None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            logger.info("Refused a bearer token without a key id (kid)")
            return None
        key = await self._signing_key(kid)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=self.audiences,
                issuer=self.issuers,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            logger.info("Refused an Entra ID token: %s", exc)
            return None
        return self._access_token(token, claims)

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken | None:
        granted_or_reason = self._granted_scopes(claims)
        if isinstance(granted_or_reason, str):
            logger.info("Refused an Entra ID token: %s", granted_or_reason)
            return None
        tid = claims.get("tid") or self.tenant_id
        client_id = claims.get("azp") or claims.get("appid")
        who = claims.get("oid") or claims.get("sub")
        if not isinstance(client_id, str) or not isinstance(who, str):
            logger.info("Refused an Entra ID token: it lacks azp/appid or oid/sub")
            return None
        aud = claims["aud"]
        resource = aud if isinstance(aud, str) else next((a for a in aud if a in self.audiences), None)
        return AccessToken(
            token=token,
            client_id=client_id,
            scopes=granted_or_reason,
            expires_at=int(claims["exp"]),
            resource=resource,
            subject=f"{str(tid).lower()}:{who}",
            claims=claims,
        )

    def _granted_scopes(self, claims: dict[str, Any]) -> list[str] | str:
        """The scopes the token grants, or why it is refused."""
        tid = claims.get("tid")
        if tid is not None and (not isinstance(tid, str) or tid.lower() != self.tenant_id):
            return "issued for another tenant"
        scp, roles = claims.get("scp"), claims.get("roles", [])
        if scp is not None:
            if not isinstance(scp, str):
                return "malformed scp claim"
            granted = scp.split()
        elif isinstance(roles, list) and all(isinstance(role, str) for role in roles):
            granted = list(roles)
        else:
            return "malformed roles claim"
        missing = [scope for scope in self.required_scopes if scope not in granted]
        if missing:
            return "it lacks the required scope(s) " + ", ".join(missing)
        return granted

    async def _signing_key(self, kid: str) -> RSAPublicKey | None:
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        async with self._lock:
            # Another request may have fetched the keys while this one waited.
            key = self._keys.get(kid)
            if key is not None and not self._stale():
                return key
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._refetch_interval:
                if key is None:
                    logger.info("Refused a token signed with unknown key %.80r (keys were fetched recently)", kid)
                return key  # a stale key stays usable until a fetch succeeds
            self._attempted_at = now
            await self._refresh()
            key = self._keys.get(kid)
            if key is None:
                logger.info("Refused a token signed with unknown key %.80r", kid)
            return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= JWKS_MAX_AGE

    async def _refresh(self) -> None:
        if self._http is None:
            self._http = httpx2.AsyncClient(trust_env=False, timeout=JWKS_TIMEOUT)
        try:
            # An overall deadline too: every request needing a key waits on this fetch.
            with anyio.fail_after(JWKS_TIMEOUT):
                response = await self._http.get(self.jwks_url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except Exception as exc:  # any failure here must become a 401, never a 500
            logger.warning(
                "Could not fetch the Entra ID signing keys from %s: %s", self.jwks_url, str(exc) or type(exc).__name__
            )
            return
        keys = _rsa_keys(document)
        if not keys:
            logger.warning("The Entra ID key set at %s holds no usable RSA signing key", self.jwks_url)
            return
        self._keys = keys
        self._fetched_at = self._clock()


def _rsa_keys(document: object) -> dict[str, RSAPublicKey]:
    """The RSA signature keys of a JWKS document by `kid`; anything else in it is skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return {}
    keys: dict[str, RSAPublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            key = RSAAlgorithm.from_jwk(jwk)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPrivateKey):  # a published private key is a mistake, but its public half is fine
            key = key.public_key()
        if isinstance(key, RSAPublicKey):
            keys[kid] = key
    return keys


def _checked_jwks_url(url: str) -> str:
    # Whoever can answer this URL can sign tokens we accept: https only, plain http only on loopback.
    parts = urlsplit(url)
    if not parts.netloc or not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
    ):
        raise ConfigurationError(
            f"{ENTRA_JWKS_URL_VAR} must be an https URL (plain http is only allowed on loopback), not {url!r}."
        )
    return url


# --- several verifiers --------------------------------------------------------------------------


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

    async def aclose(self) -> None:
        for verifier in self.verifiers:
            close = getattr(verifier, "aclose", None)
            if close is not None:
                await close()


def build_verifier(env: Mapping[str, str]) -> TokenVerifier | None:
    """The verifier the environment configures, or None when it configures no inbound auth.

    Static tokens come from `AUTH_TOKENS_VAR`; Entra ID needs both `ENTRA_TENANT_VAR` and
    `ENTRA_AUDIENCE_VAR` (several audiences comma-separated), with optional `ENTRA_SCOPES_VAR`
    (space- or comma-separated), `ENTRA_ISSUER_VAR` and `ENTRA_JWKS_URL_VAR`. With both kinds,
    static tokens are tried first: they cost a hash, a JWT costs a signature check.

    Raises:
        ConfigurationError: for malformed static tokens, or Entra ID settings without the tenant or
            the audience (a half-configured Entra ID must not silently turn authentication off).
    """
    verifiers: list[TokenVerifier] = []
    raw_tokens = env.get(AUTH_TOKENS_VAR, "").strip()
    if raw_tokens:
        tokens = parse_static_tokens(raw_tokens)
        if not tokens:
            raise ConfigurationError(f"{AUTH_TOKENS_VAR} is set but holds no token.")
        verifiers.append(StaticTokenVerifier(tokens))

    entra = {name: env.get(name, "").strip() for name in _ENTRA_VARS}
    if any(entra.values()):
        missing = [name for name in (ENTRA_TENANT_VAR, ENTRA_AUDIENCE_VAR) if not entra[name]]
        if missing:
            raise ConfigurationError(
                "Microsoft Entra ID authentication is half configured: set " + " and ".join(missing) + ".",
                hint=f"{ENTRA_TENANT_VAR} is the directory (tenant) ID; {ENTRA_AUDIENCE_VAR} is the API's "
                "application ID URI or client ID, as found in the tokens' `aud` claim.",
            )
        verifiers.append(
            EntraJwtVerifier(
                tenant_id=entra[ENTRA_TENANT_VAR],
                audience=[a for a in entra[ENTRA_AUDIENCE_VAR].split(",") if a.strip()],
                required_scopes=[s for s in re.split(r"[\s,]+", entra[ENTRA_SCOPES_VAR]) if s],
                issuer=entra[ENTRA_ISSUER_VAR] or None,
                jwks_url=entra[ENTRA_JWKS_URL_VAR] or None,
            )
        )

    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else ChainVerifier(*verifiers)


_ENTRA_VARS = (ENTRA_TENANT_VAR, ENTRA_AUDIENCE_VAR, ENTRA_SCOPES_VAR, ENTRA_ISSUER_VAR, ENTRA_JWKS_URL_VAR)
