"""Inbound authentication: static tokens, Microsoft Entra ID JWTs against a real loopback JWKS server,
and the verifier the settings build."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_server.config import (
    AUTH_TOKENS_VAR,
    ENTRA_AUDIENCE_VAR,
    ENTRA_ISSUER_VAR,
    ENTRA_JWKS_URL_VAR,
    ENTRA_SCOPES_VAR,
    ENTRA_TENANT_VAR,
    InboundAuthSettings,
)
from mcp_server.errors import ConfigurationError
from mcp_server.http.entra import EntraJwtVerifier
from mcp_server.http.static_tokens import STATIC_TOKEN_ISSUER, StaticTokenVerifier, parse_static_tokens
from mcp_server.http.verifiers import ChainVerifier, advertised_issuer, build_verifier
from mcp_server.images.stores import principal_dir_name, principal_of

TENANT = "11111111-2222-4333-8444-555555555555"
OTHER_TENANT = "99999999-8888-4777-8666-555555555555"
AUDIENCE = "api://foundry-image-mcp"
CLIENT = "0c0c0c0c-1111-4222-8333-444444444444"
USER_OID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
SCOPE = "Images.Write"
V2_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
V1_ISSUER = f"https://sts.windows.net/{TENANT}/"

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
LOGGER = "mcp_server.http.entra"
GATE_SECONDS = 10.0


# --- static tokens ------------------------------------------------------------------------------


def test_parse_accepts_named_and_bare_entries_trimming_whitespace_and_empty_entries() -> None:
    bare = "bare-token-0123456789abcdef"
    parsed = parse_static_tokens(f" alice : {ALICE} ,, bob:{BOB}:with-colon , {bare} ,")
    expected_bare_name = "token-" + hashlib.sha256(bare.encode()).hexdigest()[:8]
    assert parsed == {"alice": ALICE, "bob": f"{BOB}:with-colon", expected_bare_name: bare}
    assert parse_static_tokens(" , ,") == {}


def test_a_short_token_is_refused_naming_the_entry_but_never_the_token() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_static_tokens(f"alice:{ALICE},carol:short-secret")
    assert "'carol'" in str(caught.value) and AUTH_TOKENS_VAR in str(caught.value)
    assert "short-secret" not in str(caught.value)

    with pytest.raises(ConfigurationError) as caught:
        parse_static_tokens(f"alice:{ALICE}, tiny-secret")
    text = str(caught.value)
    assert "entry 2" in text and "tiny-secret" not in text
    assert hashlib.sha256(b"tiny-secret").hexdigest()[:8] not in text


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (f"alice:{ALICE},alice:{BOB}", "'alice'"),
        (f" :{ALICE}", "empty name"),
    ],
)
def test_duplicate_or_empty_names_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        parse_static_tokens(value)
    assert ALICE not in str(caught.value) and BOB not in str(caught.value)


def test_one_token_under_two_names_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        StaticTokenVerifier({"alice": ALICE, "mallory": ALICE})
    assert "'alice'" in str(caught.value) and "'mallory'" in str(caught.value) and ALICE not in str(caught.value)


def test_the_constructor_also_refuses_short_tokens_and_names_with_a_colon() -> None:
    with pytest.raises(ConfigurationError, match="'alice'"):
        StaticTokenVerifier({"alice": "short"})
    with pytest.raises(ConfigurationError, match="':'"):
        StaticTokenVerifier({"te:nant": ALICE})


@pytest.mark.anyio
async def test_static_tokens_map_to_their_principal() -> None:
    verifier = StaticTokenVerifier({"alice": ALICE, "bob": BOB})
    access = await verifier.verify_token(BOB)
    assert access is not None
    assert (access.token, access.client_id, access.subject, access.scopes, access.expires_at) == (
        BOB,
        "bob",
        "bob",
        [],
        None,
    )
    assert access.claims == {"iss": STATIC_TOKEN_ISSUER, "sub": "bob"}
    assert principal_of(access) == "bob"
    alice = await verifier.verify_token(ALICE)
    assert alice is not None and alice.subject == "alice"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "presented",
    ["", "nope", ALICE[:-1], ALICE + "x", ALICE.upper(), " " + ALICE, "alice", "alice:" + ALICE, "h\u00e9llo\udcff"],
)
async def test_anything_but_an_exact_token_is_refused(presented: str) -> None:
    verifier = StaticTokenVerifier({"alice": ALICE, "bob": BOB})
    assert await verifier.verify_token(presented) is None


@pytest.mark.anyio
async def test_every_configured_token_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # static_tokens looks it up on the module
    verifier = StaticTokenVerifier({"alice": ALICE, "bob": BOB, "carol": "carol-token-0123456789abcdef"})
    for presented, principal in ((ALICE, "alice"), (BOB, "bob"), ("unknown-token-0123456789", None)):
        compared.clear()
        assert principal_of(await verifier.verify_token(presented)) == principal
        assert len(compared) == 3 and len(set(compared)) == 3


@pytest.mark.anyio
async def test_the_resource_is_stamped_when_configured() -> None:
    verifier = StaticTokenVerifier({"alice": ALICE}, resource="https://images.example.com/mcp")
    access = await verifier.verify_token(ALICE)
    assert access is not None and access.resource == "https://images.example.com/mcp"


# --- principals ---------------------------------------------------------------------------------


def test_principal_of_prefers_the_subject_then_the_client_id() -> None:
    assert principal_of(None) is None
    assert principal_of(AccessToken(token="t", client_id="app", scopes=[], subject="t:o")) == "t:o"
    assert principal_of(AccessToken(token="t", client_id="app", scopes=[])) == "app"


@pytest.mark.parametrize(
    "principal", ["alice", f"{TENANT}:{USER_OID}", "../../etc/passwd", "C:\\x", "\u00e9\u00e8 \x00"]
)
def test_principal_dir_names_are_filesystem_safe_and_stable(principal: str) -> None:
    name = principal_dir_name(principal)
    assert re.fullmatch(r"p-[0-9a-f]{24}", name)
    assert name == "p-" + hashlib.sha256(principal.encode()).hexdigest()[:24]
    assert principal_dir_name(principal + "x") != name


# --- a real JWKS endpoint -----------------------------------------------------------------------


@dataclass
class JwksServer:
    """Serves `document` at /keys on loopback and counts the requests."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    raw: bytes | None = None
    location: str | None = None
    requests: int = 0
    accept: list[str | None] = field(default_factory=list)
    url: str = ""
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None
    """When set, each answer waits for it (at most GATE_SECONDS, then answers 503)."""

    def serve(self) -> Iterator[JwksServer]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests += 1
                state.accept.append(self.headers.get("accept"))
                state.entered.set()
                released = state.gate is None or state.gate.wait(GATE_SECONDS)
                body = state.raw if state.raw is not None else json.dumps(state.document).encode()
                self.send_response(state.status if released else 503)
                if state.location:
                    self.send_header("location", state.location)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/keys"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    yield from JwksServer().serve()


@dataclass
class Keys:
    a: rsa.RSAPrivateKey
    b: rsa.RSAPrivateKey
    c: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(*(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)))


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """A public key as Entra ID publishes it (no `alg`)."""
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claims(**changes: Any) -> dict[str, Any]:
    """A delegated v2.0 access token's claims; a change to None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "aud": AUDIENCE,
        "iss": V2_ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "azp": CLIENT,
        "name": "Alice",
        "oid": USER_OID,
        "scp": f"User.Read {SCOPE}",
        "sub": "pairwise-subject",
        "tid": TENANT,
        "ver": "2.0",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def app_claims(**changes: Any) -> dict[str, Any]:
    return claims(**{"scp": None, "roles": [SCOPE], "oid": "5e5e5e5e-0000-4000-8000-000000000000", **changes})


def sign(key: rsa.RSAPrivateKey, payload: dict[str, Any], kid: str = "a") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + b64(signer(signing_input.encode()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_verifier(jwks: JwksServer, clock: FakeClock) -> Callable[..., EntraJwtVerifier]:
    def make(**overrides: Any) -> EntraJwtVerifier:
        options: dict[str, Any] = {
            "tenant_id": TENANT,
            "audience": AUDIENCE,
            "required_scopes": [SCOPE],
            "jwks_url": jwks.url,
            "clock": clock,
            **overrides,
        }
        return EntraJwtVerifier(**options)

    return make


@pytest.mark.anyio
async def test_a_delegated_token_is_accepted_with_its_principal_and_scopes(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a"), jwk(keys.b, "b")]}
    payload = claims()
    token = sign(keys.a, payload)
    verifier = make_verifier()
    access = await verifier.verify_token(token)
    again = await verifier.verify_token(sign(keys.b, claims(), kid="b"))
    assert access is not None and again is not None
    assert access.token == token
    assert access.client_id == CLIENT
    assert access.subject == f"{TENANT}:{USER_OID}" == principal_of(access)
    assert access.scopes == ["User.Read", SCOPE]
    assert access.expires_at == payload["exp"]
    assert access.resource == AUDIENCE
    assert access.claims is not None and access.claims["iss"] == V2_ISSUER
    assert jwks.requests == 1  # both keys came from one fetch


@pytest.mark.anyio
async def test_an_app_token_is_accepted_with_its_roles(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = make_verifier()
    access = await verifier.verify_token(sign(keys.a, app_claims(roles=[SCOPE, "Images.Read"])))
    assert access is not None
    assert access.scopes == [SCOPE, "Images.Read"]
    assert access.client_id == CLIENT
    assert access.subject == f"{TENANT}:5e5e5e5e-0000-4000-8000-000000000000"


@pytest.mark.anyio
async def test_a_v1_token_is_accepted_with_appid_as_the_client(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    payload = claims(iss=V1_ISSUER, ver="1.0", azp=None, appid=CLIENT, oid=None, sub="v1-subject")
    verifier = make_verifier()
    access = await verifier.verify_token(sign(keys.a, payload))
    assert access is not None
    assert (access.client_id, access.subject) == (CLIENT, f"{TENANT}:v1-subject")


@pytest.mark.anyio
async def test_several_audiences_and_an_explicit_issuer(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = make_verifier(audience=["api://other", CLIENT], issuer=V1_ISSUER)
    access = await verifier.verify_token(sign(keys.a, claims(aud=CLIENT, iss=V1_ISSUER)))
    assert access is not None and access.resource == CLIENT
    assert await verifier.verify_token(sign(keys.a, claims(aud=CLIENT))) is None  # v2 issuer not accepted now


@pytest.mark.anyio
async def test_leeway_lets_a_just_expired_token_through(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    now = int(time.time())
    verifier = make_verifier()
    assert await verifier.verify_token(sign(keys.a, claims(exp=now - 30, nbf=now + 30))) is not None
    strict = make_verifier(leeway=0)
    assert await strict.verify_token(sign(keys.a, claims(exp=now - 30))) is None


def _hs256_with_public_key(keys: Keys) -> str:
    secret = keys.a.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return forge(
        {"alg": "HS256", "typ": "JWT", "kid": "a"},
        claims(),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )


def _tampered(keys: Keys) -> str:
    header, _, signature = sign(keys.a, claims()).split(".")
    return ".".join([header, b64(json.dumps(claims(oid="someone-else")).encode()), signature])


REFUSED: dict[str, Callable[[Keys], str]] = {
    "signed by another key": lambda k: sign(k.b, claims(), kid="a"),
    "tampered payload": lambda k: _tampered(k),
    "wrong issuer": lambda k: sign(k.a, claims(iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")),
    "wrong audience": lambda k: sign(k.a, claims(aud="api://someone-else")),
    "expired": lambda k: sign(k.a, claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda k: sign(k.a, claims(nbf=int(time.time()) + 120)),
    "no exp": lambda k: sign(k.a, claims(exp=None)),
    "wrong tid": lambda k: sign(k.a, claims(tid=OTHER_TENANT)),
    "missing scope": lambda k: sign(k.a, claims(scp="User.Read")),
    "delegated token with the scope only in roles": lambda k: sign(k.a, claims(scp="User.Read", roles=[SCOPE])),
    "app token missing role": lambda k: sign(k.a, app_claims(roles=["Images.Read"])),
    "no client id": lambda k: sign(k.a, claims(azp=None)),
    "no principal": lambda k: sign(k.a, claims(oid=None, sub=None)),
    "unknown kid": lambda k: sign(k.c, claims(), kid="c"),
    "no kid": lambda k: jwt.encode(claims(), k.a, algorithm="RS256"),
    "alg none": lambda k: forge({"alg": "none", "typ": "JWT", "kid": "a"}, claims(), lambda _: b""),
    "HS256 with the public key as secret": _hs256_with_public_key,
    "RS512": lambda k: jwt.encode(claims(), k.a, algorithm="RS512", headers={"kid": "a"}),
    "not a JWT": lambda k: ALICE,
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(REFUSED))
async def test_invalid_tokens_are_refused_and_logged_without_the_token(
    case: str,
    jwks: JwksServer,
    keys: Keys,
    make_verifier: Callable[..., EntraJwtVerifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a"), jwk(keys.b, "b")]}
    token = REFUSED[case](keys)
    caplog.set_level(logging.INFO, logger=LOGGER)
    verifier = make_verifier()
    assert await verifier.verify_token(token) is None
    refusals = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert refusals, "a refusal is logged"
    assert all(token not in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["alg none", "HS256 with the public key as secret", "no kid", "not a JWT"])
async def test_tokens_refused_by_their_header_never_cause_a_key_fetch(
    case: str, jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = make_verifier()
    assert await verifier.verify_token(REFUSED[case](keys)) is None
    assert jwks.requests == 0
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    assert jwks.requests == 1


@pytest.mark.anyio
async def test_a_rotated_key_is_picked_up_by_one_refetch_which_is_rate_limited(
    jwks: JwksServer, keys: Keys, clock: FakeClock, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = make_verifier()
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    assert jwks.requests == 1

    clock.now += 61
    jwks.document = {"keys": [jwk(keys.a, "a"), jwk(keys.b, "b")]}
    assert await verifier.verify_token(sign(keys.b, claims(), kid="b")) is not None
    assert jwks.requests == 2
    assert await verifier.verify_token(sign(keys.b, claims(), kid="b")) is not None
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    assert jwks.requests == 2  # known keys come from the cache

    # Microsoft publishes a third key moments later: not fetched again within 60 s...
    jwks.document = {"keys": [jwk(keys.a, "a"), jwk(keys.b, "b"), jwk(keys.c, "c")]}
    clock.now += 59
    for _ in range(5):
        assert await verifier.verify_token(sign(keys.c, claims(), kid="c")) is None
        assert await verifier.verify_token(sign(keys.a, claims(), kid="forged")) is None
    assert jwks.requests == 2

    # ...but once the minute is up, one more fetch finds it.
    clock.now += 1
    assert await verifier.verify_token(sign(keys.c, claims(), kid="c")) is not None
    assert jwks.requests == 3


@pytest.mark.anyio
async def test_concurrent_requests_for_an_unknown_key_share_one_fetch(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    results: list[AccessToken | None] = []
    token = sign(keys.a, claims())
    verifier = make_verifier()

    async def verify() -> None:
        results.append(await verifier.verify_token(token))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(verify)
    assert len(results) == 20 and all(r is not None for r in results)
    assert jwks.requests == 1


@pytest.mark.anyio
async def test_day_old_keys_are_refetched_and_a_withdrawn_key_stops_working(
    jwks: JwksServer, keys: Keys, clock: FakeClock, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a"), jwk(keys.b, "b")]}
    verifier = make_verifier()
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    clock.now += 23 * 3600
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    assert jwks.requests == 1

    clock.now += 3600
    jwks.document = {"keys": [jwk(keys.b, "b")]}
    assert await verifier.verify_token(sign(keys.a, claims())) is None
    assert await verifier.verify_token(sign(keys.b, claims(), kid="b")) is not None
    assert jwks.requests == 2


@pytest.mark.anyio
async def test_a_failed_refetch_keeps_the_keys_already_held(
    jwks: JwksServer, keys: Keys, clock: FakeClock, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = make_verifier()
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    clock.now += 25 * 3600  # stale: the next use tries a fetch...
    jwks.status = 503
    assert await verifier.verify_token(sign(keys.a, claims())) is not None  # ...which fails; key kept
    clock.now += 61
    jwks.status, jwks.document = 200, {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}
    assert await verifier.verify_token(sign(keys.b, claims(), kid="b")) is None
    assert await verifier.verify_token(sign(keys.a, claims())) is not None  # no usable key: key kept
    assert jwks.requests == 3


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["refused", "status 500", "not json", "no keys"])
async def test_an_unreachable_or_broken_jwks_endpoint_means_401_not_an_exception(
    failure: str,
    jwks: JwksServer,
    keys: Keys,
    clock: FakeClock,
    make_verifier: Callable[..., EntraJwtVerifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = jwks.url
    if failure == "refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/keys"  # closed again: nothing listens
    elif failure == "status 500":
        jwks.status = 500
        jwks.document = {"keys": [jwk(keys.a, "a")]}
    elif failure == "not json":
        jwks.raw = b"<html>maintenance</html>"
    else:
        jwks.document = {"keys": []}
    caplog.set_level(logging.INFO, logger=LOGGER)
    token = sign(keys.a, claims())
    verifier = make_verifier(jwks_url=url)
    assert await verifier.verify_token(token) is None
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warnings and all(token not in r.getMessage() for r in caplog.records)

    # Once the endpoint works again (and the rate limit allows), the same token is accepted.
    if failure != "refused":
        jwks.status, jwks.raw, jwks.document = 200, None, {"keys": [jwk(keys.a, "a")]}
        assert await verifier.verify_token(token) is None  # still within the minute
        clock.now += 60
        assert await verifier.verify_token(token) is not None


@pytest.mark.anyio
async def test_a_flood_of_unknown_kids_while_the_endpoint_fails_fetches_once_a_minute(
    jwks: JwksServer, keys: Keys, clock: FakeClock, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.status = 503
    verifier = make_verifier()
    for n in range(30):
        assert await verifier.verify_token(sign(keys.a, claims(), kid=f"forged-{n}")) is None
    assert jwks.requests == 1  # a failed fetch counts too: no key held, yet no second try
    clock.now += 59
    assert await verifier.verify_token(sign(keys.a, claims(), kid="forged")) is None
    assert jwks.requests == 1
    clock.now += 1
    jwks.status, jwks.document = 200, {"keys": [jwk(keys.a, "a")]}
    assert await verifier.verify_token(sign(keys.a, claims())) is not None
    assert jwks.requests == 2


@pytest.mark.anyio
async def test_a_redirect_from_the_jwks_endpoint_is_not_followed(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    elsewhere = JwksServer(document={"keys": [jwk(keys.a, "a")]}).serve()
    target = next(elsewhere)
    try:
        jwks.status, jwks.location = 302, target.url
        verifier = make_verifier()
        assert await verifier.verify_token(sign(keys.a, claims())) is None
        assert (jwks.requests, target.requests) == (1, 0)
    finally:
        elsewhere.close()


@pytest.mark.anyio
async def test_a_key_fetch_waits_in_a_worker_thread_not_on_the_event_loop(
    jwks: JwksServer, keys: Keys, make_verifier: Callable[..., EntraJwtVerifier]
) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    jwks.gate = threading.Event()
    verifier = make_verifier()
    results: list[AccessToken | None] = []

    async def verify() -> None:
        results.append(await verifier.verify_token(sign(keys.a, claims())))

    async with anyio.create_task_group() as tg:
        tg.start_soon(verify)
        # The endpoint holds its answer until this coroutine releases it, which this coroutine can
        # only do while the fetch is in flight if the fetch leaves the event loop free.
        assert await anyio.to_thread.run_sync(jwks.entered.wait, GATE_SECONDS)
        jwks.gate.set()
    assert results != [None] and len(results) == 1
    assert jwks.accept == ["application/json"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"tenant_id": "contoso.onmicrosoft.com"}, ENTRA_TENANT_VAR),
        ({"audience": " "}, ENTRA_AUDIENCE_VAR),
        ({"audience": []}, ENTRA_AUDIENCE_VAR),
        ({"jwks_url": "http://keys.example.com/keys"}, ENTRA_JWKS_URL_VAR),
        ({"jwks_url": "ftp://127.0.0.1/keys"}, ENTRA_JWKS_URL_VAR),
    ],
)
def test_bad_entra_settings_are_refused(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        EntraJwtVerifier(**{"tenant_id": TENANT, "audience": AUDIENCE, **options})


def test_entra_defaults_follow_the_tenant() -> None:
    verifier = EntraJwtVerifier(tenant_id=f" {TENANT.upper()} ", audience=AUDIENCE)
    assert verifier.tenant_id == TENANT
    assert verifier.issuers == (V2_ISSUER, V1_ISSUER)
    assert verifier.jwks_url == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    assert verifier.required_scopes == ()


def configured(env: dict[str, str]) -> TokenVerifier | None:
    """The verifier of the settings read from `env` (not from this process's environment)."""
    return build_verifier(InboundAuthSettings.load(env))


# --- build_verifier -----------------------------------------------------------------------------


def test_no_configuration_means_no_verifier() -> None:
    assert configured({}) is None
    assert configured({AUTH_TOKENS_VAR: "  ", ENTRA_TENANT_VAR: "", ENTRA_AUDIENCE_VAR: " "}) is None


def test_static_tokens_alone() -> None:
    verifier = configured({AUTH_TOKENS_VAR: f"alice:{ALICE},bob:{BOB}"})
    assert isinstance(verifier, StaticTokenVerifier)
    assert verifier.names == ("alice", "bob")


def test_entra_alone_with_every_option() -> None:
    verifier = configured(
        {
            ENTRA_TENANT_VAR: TENANT,
            ENTRA_AUDIENCE_VAR: f"{AUDIENCE}, {CLIENT}",
            ENTRA_SCOPES_VAR: f"{SCOPE}, Images.Read  Other",
            ENTRA_ISSUER_VAR: V1_ISSUER,
            ENTRA_JWKS_URL_VAR: "https://keys.example.com/keys",
        }
    )
    assert isinstance(verifier, EntraJwtVerifier)
    assert verifier.audiences == (AUDIENCE, CLIENT)
    assert verifier.required_scopes == (SCOPE, "Images.Read", "Other")
    assert verifier.issuers == (V1_ISSUER,)
    assert verifier.jwks_url == "https://keys.example.com/keys"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({ENTRA_TENANT_VAR: TENANT}, [ENTRA_AUDIENCE_VAR]),
        ({ENTRA_AUDIENCE_VAR: AUDIENCE}, [ENTRA_TENANT_VAR]),
        ({ENTRA_SCOPES_VAR: SCOPE, AUTH_TOKENS_VAR: f"alice:{ALICE}"}, [ENTRA_TENANT_VAR, ENTRA_AUDIENCE_VAR]),
    ],
)
def test_half_configured_entra_is_an_error_naming_what_is_missing(env: dict[str, str], missing: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        configured(env)
    message = caught.value.message
    assert message.endswith("set " + " and ".join(missing) + ".")


@pytest.mark.parametrize("value", [",, ,", "alice:short"])
def test_malformed_static_tokens_are_an_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match=AUTH_TOKENS_VAR):
        configured({AUTH_TOKENS_VAR: value})


@pytest.mark.anyio
async def test_both_kinds_chain_static_tokens_first(jwks: JwksServer, keys: Keys) -> None:
    jwks.document = {"keys": [jwk(keys.a, "a")]}
    verifier = configured(
        {
            AUTH_TOKENS_VAR: f"alice:{ALICE}",
            ENTRA_TENANT_VAR: TENANT,
            ENTRA_AUDIENCE_VAR: AUDIENCE,
            ENTRA_SCOPES_VAR: SCOPE,
            ENTRA_JWKS_URL_VAR: jwks.url,
        }
    )
    assert isinstance(verifier, ChainVerifier)
    assert [type(v) for v in verifier.verifiers] == [StaticTokenVerifier, EntraJwtVerifier]
    assert principal_of(await verifier.verify_token(ALICE)) == "alice"
    assert jwks.requests == 0  # a static token never reaches Entra ID
    assert principal_of(await verifier.verify_token(sign(keys.a, claims()))) == f"{TENANT}:{USER_OID}"
    assert await verifier.verify_token(sign(keys.a, claims(scp="User.Read"))) is None
    assert await verifier.verify_token(BOB) is None


def test_the_advertised_issuer_is_entra_ids_when_entra_id_is_used() -> None:
    entra = {ENTRA_TENANT_VAR: TENANT, ENTRA_AUDIENCE_VAR: AUDIENCE}
    static = configured({AUTH_TOKENS_VAR: f"alice:{ALICE}"})
    both = configured({AUTH_TOKENS_VAR: f"alice:{ALICE}", **entra})
    overridden = configured({**entra, ENTRA_ISSUER_VAR: V1_ISSUER})
    assert static is not None and both is not None and overridden is not None
    assert advertised_issuer(static) is None
    assert advertised_issuer(both) == V2_ISSUER
    assert advertised_issuer(overridden) == V1_ISSUER
