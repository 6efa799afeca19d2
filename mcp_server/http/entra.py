"""Microsoft Entra ID access tokens (RS256 JWTs) issued by one tenant for one API.

The principal of a token is `{tid}:{oid}` (or `{tid}:{sub}`). A token that does not verify, or
signing keys that cannot be fetched, give `None` (a 401), never an exception. Tokens are never logged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_server.config import ENTRA_AUDIENCE_VAR, ENTRA_JWKS_URL_VAR, ENTRA_TENANT_VAR, is_loopback
from mcp_server.errors import ConfigurationError

logger = logging.getLogger(__name__)

ENTRA_AUTHORITY = "https://login.microsoftonline.com"
JWKS_REFETCH_INTERVAL = 60.0
"""Fetch the signing keys at most this often, however many tokens name an unknown key."""
JWKS_MAX_AGE = 24 * 3600.0
"""Keys older than this are fetched again, so a key Microsoft withdrew stops being trusted."""
JWKS_TIMEOUT = 10.0

_ALGORITHM = "RS256"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def entra_issuers(tenant_id: str) -> tuple[str, str]:
    """The v2.0 and v1.0 issuers of a tenant's access tokens (which one depends on the API's manifest)."""
    return f"{ENTRA_AUTHORITY}/{tenant_id}/v2.0", f"https://sts.windows.net/{tenant_id}/"


def entra_jwks_url(tenant_id: str) -> str:
    """Where a tenant publishes its token-signing keys."""
    return f"{ENTRA_AUTHORITY}/{tenant_id}/discovery/v2.0/keys"


class SigningKeys:
    """The RS256 signing keys published at one JWKS URL, by `kid`.

    `jwt.PyJWKClient` fetches (urllib in a worker thread, no redirects) and parses the key set;
    its own caches stay off, because its lifespan and cooldown read `time.monotonic` directly,
    its cooldown only follows a *successful* fetch (an unreachable endpoint would be asked again
    for every token), and a key set whose refetch fails would be dropped. So this class decides
    when to fetch: when a token names an unknown key or the keys are older than `max_age`, and
    at most once per `refetch_interval` seconds of `clock`, whatever the outcome, so forged
    tokens cannot make this server hammer Microsoft. A failed fetch keeps the keys already held.
    """

    def __init__(
        self,
        url: str,
        *,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
        max_age: float = JWKS_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(
            url, cache_keys=False, cache_jwk_set=False, timeout=JWKS_TIMEOUT, headers={"accept": "application/json"}
        )
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = anyio.Lock()

    async def get(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, fetching the key set first if need be and allowed; None if unknown."""
        key = self._fresh(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._fresh(kid)  # another request may have fetched the keys while this one waited
            if key is not None:
                return key
            now = self._clock()
            if self._attempted_at is None or now - self._attempted_at >= self._refetch_interval:
                self._attempted_at = now
                await self._fetch()
            elif kid not in self._keys:
                logger.info("Refused a token signed with unknown key %.80r (keys were fetched recently)", kid)
                return None
            key = self._keys.get(kid)  # a stale key stays usable until a fetch succeeds
            if key is None:
                logger.info("Refused a token signed with unknown key %.80r", kid)
            return key

    def _fresh(self, kid: str) -> jwt.PyJWK | None:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            return None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            # An overall deadline: every request needing a key waits on this fetch.
            with anyio.fail_after(JWKS_TIMEOUT):
                found = await anyio.to_thread.run_sync(self._client.get_signing_keys, True, abandon_on_cancel=True)
        except Exception as exc:  # any failure here must become a 401, never a 500
            logger.warning("Could not fetch the Entra ID signing keys from %s: %s", self.url, _reason(exc))
            return
        keys = {
            key.key_id: key
            for key in found
            if key.key_id and key.algorithm_name == _ALGORITHM and isinstance(key.key, RSAPublicKey)
        }
        if not keys:
            logger.warning("The Entra ID key set at %s holds no usable RSA signing key", self.url)
            return
        self._keys, self._fetched_at = keys, self._clock()


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class EntraJwtVerifier(TokenVerifier):
    """Validates Microsoft Entra ID access tokens issued by one tenant for this API.

    Checks the RS256 signature against the tenant's published keys (`SigningKeys`), the issuer
    (v2.0 or v1.0 form unless `issuer` is given), the audience, `exp`/`nbf`/`iat` with `leeway`
    seconds, `tid`, and that the token grants every one of `required_scopes`: in `scp` for a
    delegated (user) token, in `roles` for an application token. `clock` (monotonic seconds)
    paces the key fetches; it exists for tests.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        audience: str | Sequence[str],
        required_scopes: Sequence[str] = (),
        issuer: str | None = None,
        jwks_url: str | None = None,
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
        self._keys = SigningKeys(self.jwks_url, refetch_interval=refetch_interval, clock=clock)
        self._leeway = leeway

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
        key = await self._keys.get(kid)
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


def _checked_jwks_url(url: str) -> str:
    # Whoever can answer this URL can sign tokens we accept: https only, plain http only on loopback.
    parts = urlsplit(url)
    if not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))):
        raise ConfigurationError(
            f"{ENTRA_JWKS_URL_VAR} must be an https URL (plain http is only allowed on loopback), not {url!r}."
        )
    return url
