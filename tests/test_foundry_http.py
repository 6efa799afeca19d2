"""`FoundryHttp` on its own, against `httpx2.MockTransport`: error classification from real error bodies
(`upstream_errors`), bodies that are not what they should be, token refresh, API keys per route, and the
recorded Foundry session replayed through the client's parsers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from azure.core.credentials import AccessToken

from mcp_server.errors import (
    AuthenticationError,
    ContentFilteredError,
    FoundryImageError,
    NotFoundError,
    RateLimitedError,
    ServiceRefusedError,
    UnexpectedResponseError,
)
from mcp_server.foundry.agents import HASH_KEY, AgentRegistry
from mcp_server.foundry.auth import ApiKeyAuth, EntraTokenAuth
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.responses import ResponsesClient, extract_image
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.upstream_errors import (
    AGENT_FIELD_HINT,
    DEPLOYMENT_HINT,
    GENERIC_400_HINT,
    HEADER_HINT,
    error_from_response,
)
from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER, AgentVersion, CreateResponseRequest, ImageGenerationTool

pytestmark = pytest.mark.anyio

RECORDING = Path(__file__).parent / "data" / "foundry_v1_image_generation_2026-03-04.json"
NO_WAIT = RetryPolicy(attempts=1)


def http_with(handler: Callable[[httpx2.Request], httpx2.Response], auth: httpx2.Auth | None = None) -> FoundryHttp:
    transport = httpx2.MockTransport(handler)
    client = httpx2.AsyncClient(transport=transport, base_url="http://foundry/api/projects/p/", auth=auth)
    return FoundryHttp(client, image_deployment="gpt-image-1", retry=NO_WAIT)


def classify(
    status: int, body: Any, headers: dict[str, str] | None = None, request: httpx2.Request | None = None
) -> FoundryImageError:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx2.Response(status, headers=headers, content=content, request=request)
    return error_from_response(response, "generate the image", now=lambda: 0.0)


def foundry(code: str | None, message: str, param: str | None, type_: str = "invalid_request_error") -> Any:
    rid = "0822494fe0589f357fdda1ef5f7fea3b"
    return {
        "error": {
            "code": code,
            "message": message,
            "param": param,
            "type": type_,
            "details": [],
            "additionalInfo": {"request_id": rid},
        }
    }


def openai(code: str | None, message: str, param: str | None, type_: str | None = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Real bodies, from docs/foundry-protocol.md (§4.1, §7) and the recordings it cites.
PROMPT_FILTER = openai(
    "content_filter",
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "prompt",
)
INNERERROR_FILTER = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": True, "severity": "high"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}
MODERATION_BLOCKED = {
    "error": {
        "type": "image_generation_user_error",
        "code": "moderation_blocked",
        "message": "Your request was rejected by the safety system.",
        "param": None,
        "moderation_details": {"moderation_stage": "output", "categories": ["violence"]},
    }
}
AGENT_FIELD = foundry("invalid_payload", "Not allowed when agent is specified.", "tools")
AGENT_FIELDS = {
    "error": {
        "code": "invalid_payload",
        "message": "Invalid payload",
        "param": None,
        "type": "invalid_request_error",
        "details": [
            {"code": "ValidationError", "message": "Not allowed when agent is specified.", "param": "temperature"},
            {"code": "ValidationError", "message": "Not allowed when agent is specified.", "param": "top_p"},
        ],
        "additionalInfo": {"request_id": "0822494fe0589f357fdda1ef5f7fea3b"},
    }
}
FILTERS_ARRAY = openai(
    "content_filter",
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "prompt",
)
FILTERS_ARRAY["error"]["content_filters"] = [
    {
        "blocked": True,
        "source_type": "prompt",
        "content_filter_results": {
            "hate": {"filtered": False, "severity": "safe"},
            "jailbreak": {"detected": True, "filtered": True},
        },
        "content_filter_offsets": {"start_offset": 0, "end_offset": 5608, "check_offset": 0},
    }
]
TEMPLATE = foundry("invalid_payload", "The supplied value is invalid.", "")
MISSING_HEADER = openai(
    "invalid_request_error",
    "imagegen deployment must be provided through header: x-ms-oai-image-generation-deployment",
    "tools",
    "image_generation_user_error",
)
GENERIC = openai(None, "There was an issue with your request. Please check your inputs and try again", None)
HEADER_MISMATCH = foundry("invalid_payload", "The header must match the tool's model.", IMAGE_DEPLOYMENT_HEADER)
UNKNOWN_MODEL = foundry("invalid_payload", "Model deployment 'gpt-9' was not found.", "definition.model")
PREVIEW = foundry("preview_feature_required", "Workflow agents is in preview.", "Foundry-Features")
PERMISSION = {"error": {"code": "PermissionDenied", "message": "The principal lacks the required data action."}}
DEPLOYMENT_404 = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist.",
    }
}
NOT_FOUND = foundry("not_found", "Agent version 'img:9' not found.", None)
RATE_LIMIT = {"error": {"code": "429", "message": "Requests ... have exceeded token rate limit. Retry after 6 s."}}
SERVER = foundry("server_error", "The server had an error while processing your request.", None, "server_error")


REPHRASE = "Rephrase the prompt"


@dataclass(frozen=True)
class Case:
    status: int
    body: Any
    kind: type[FoundryImageError]
    code: str
    hint: str | None = None
    headers: dict[str, str] = field(default_factory=dict[str, str])


CASES = {
    "prompt filter": Case(400, PROMPT_FILTER, ContentFilteredError, "content_filter", REPHRASE),
    "innererror filter": Case(400, INNERERROR_FILTER, ContentFilteredError, "content_filter", REPHRASE),
    "moderation blocked": Case(400, MODERATION_BLOCKED, ContentFilteredError, "content_filter", REPHRASE),
    "filters array": Case(400, FILTERS_ARRAY, ContentFilteredError, "content_filter", REPHRASE),
    "agent field": Case(400, AGENT_FIELD, ServiceRefusedError, "refused", AGENT_FIELD_HINT),
    "agent fields": Case(400, AGENT_FIELDS, ServiceRefusedError, "refused", AGENT_FIELD_HINT),
    "bad template": Case(400, TEMPLATE, ServiceRefusedError, "refused"),
    "missing header": Case(400, MISSING_HEADER, ServiceRefusedError, "refused", HEADER_HINT),
    "generic 400": Case(400, GENERIC, ServiceRefusedError, "refused", GENERIC_400_HINT),
    "header mismatch": Case(400, HEADER_MISMATCH, ServiceRefusedError, "refused", DEPLOYMENT_HINT),
    "unknown model": Case(400, UNKNOWN_MODEL, ServiceRefusedError, "refused", DEPLOYMENT_HINT),
    "preview": Case(403, PREVIEW, AuthenticationError, "authentication", "in preview"),
    "permission": Case(401, PERMISSION, AuthenticationError, "authentication", "Azure AI User"),
    "deployment 404": Case(404, DEPLOYMENT_404, NotFoundError, "deployment_not_found", DEPLOYMENT_HINT),
    "not found": Case(404, NOT_FOUND, NotFoundError, "not_found", "AZURE_AI_AGENT_NAME"),
    "rate limit": Case(429, RATE_LIMIT, RateLimitedError, "rate_limited", "wait 6 s", {"retry-after": "6"}),
    "server": Case(500, SERVER, ServiceRefusedError, "refused", "service-side"),
}


def check(error: FoundryImageError, case: Case) -> None:
    assert type(error) is case.kind
    assert error.code == case.code
    assert error.status == case.status
    if case.hint is None:
        assert error.hint is None
    else:
        assert case.hint in (error.hint or "")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_errors_are_classified_by_status_code_type_and_param(case: Case) -> None:
    check(classify(case.status, case.body, case.headers), case)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_wording_of_the_message_changes_nothing(case: Case) -> None:
    reworded = json.loads(json.dumps(case.body))
    reworded["error"]["message"] = "Es gab ein Problem: deployment, content filter, placeholder, stream."
    check(classify(case.status, reworded, case.headers), case)


def test_a_message_that_names_a_deployment_does_not_make_a_deployment_error() -> None:
    body = foundry("invalid_payload", "The deployment header looks fine but input is wrong.", "input")
    error = classify(400, body)
    assert type(error) is ServiceRefusedError and error.hint is None


def test_the_filtered_categories_are_named() -> None:
    error = classify(400, INNERERROR_FILTER)
    assert "hate, violence" in error.message


def test_the_upstream_code_param_and_request_id_are_kept() -> None:
    error = classify(400, AGENT_FIELD)
    assert (error.upstream_code, error.upstream_param) == ("invalid_payload", "tools")
    assert error.request_id == "0822494fe0589f357fdda1ef5f7fea3b"
    assert classify(500, b"<html>bad gateway</html>", {"apim-request-id": "a-b-c"}).request_id == "a-b-c"


def test_a_body_that_is_not_json_still_maps_by_status() -> None:
    error = classify(502, b"<html><body>502 Bad Gateway</body></html>")
    assert type(error) is ServiceRefusedError and error.status == 502 and "Bad Gateway" in error.message


def test_each_content_filter_form_names_its_categories() -> None:
    moderation = classify(400, MODERATION_BLOCKED)
    assert "generated image" in moderation.message and "violence" in moderation.message
    assert "jailbreak" in classify(400, FILTERS_ARRAY).message
    blocked_without_code = json.loads(json.dumps(FILTERS_ARRAY))
    blocked_without_code["error"]["code"] = None
    assert type(classify(400, blocked_without_code)) is ContentFilteredError, "a blocked entry is enough"
    nothing_blocked = json.loads(json.dumps(blocked_without_code))
    nothing_blocked["error"]["content_filters"][0]["blocked"] = False
    assert type(classify(400, nothing_blocked)) is ServiceRefusedError


def test_the_fields_refused_with_an_agent_are_named() -> None:
    assert "tools" in classify(400, AGENT_FIELD).message
    assert "temperature, top_p" in classify(400, AGENT_FIELDS).message


def test_the_missing_header_error_says_what_to_set() -> None:
    error = classify(400, MISSING_HEADER)
    assert IMAGE_DEPLOYMENT_HEADER in error.message and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in (error.hint or "")


UUID_A = "79d75a89-61e1-4bfe-a3c2-b0ff3f93697b"
UUID_B = "180abc6c-df16-48a0-9423-0914e9996e28"
HEX = "3656c2d4836739eca3e1f945253494cc"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (400, AGENT_FIELD, {"apim-request-id": UUID_A}, "0822494fe0589f357fdda1ef5f7fea3b"),
        (429, RATE_LIMIT, {"apim-request-id": UUID_A, "X-Request-ID": UUID_B}, UUID_B),
        (404, PERMISSION, {"apim-request-id": UUID_A, "X-Request-ID": HEX}, HEX),
        (404, DEPLOYMENT_404, {"apim-request-id": UUID_A}, UUID_A),
        (502, b"<html>bad gateway</html>", {}, None),
    ],
    ids=["foundry-400-body", "responses-uuid", "agents-hex", "deployments-apim", "none"],
)
def test_the_request_id_is_the_one_the_service_sent(
    status: int, body: Any, headers: dict[str, str], expected: str | None
) -> None:
    """The forms of protocol §7.5: `additionalInfo.request_id` in a Foundry 400 (no `X-Request-ID` beside it),
    `X-Request-ID` as a UUID on the Responses API or 32 hex on agents CRUD, else `apim-request-id`."""
    assert classify(status, body, headers).request_id == expected


def test_a_404_for_a_response_is_never_taken_for_a_lost_agent_version() -> None:
    from mcp_server.service.requests import is_version_gone

    gone = openai("not_found", "Response with id 'resp_1' not found.", "response_id")
    polled = httpx2.Request("GET", "https://x.services.ai.azure.com/api/projects/p/openai/v1/responses/resp_1")
    error = classify(404, gone, request=polled)
    assert isinstance(error, NotFoundError) and error.code == "response_not_found" and "resp_1" in error.message
    create = httpx2.Request("POST", "https://x.services.ai.azure.com/api/projects/p/openai/v1/responses")
    version_gone = foundry("not_found", "Version '9' of agent 'img' was not found.", "agent_reference.version")
    assert is_version_gone(classify(404, version_gone, request=create)) and not is_version_gone(error)
    previous = foundry("not_found", "Previous response not found.", "previous_response_id")
    assert not is_version_gone(classify(404, previous, request=create))


# ------------------------------------------------------------------ success bodies that are not right


@pytest.mark.parametrize(
    "content",
    [b"<html>maintenance</html>", b'{"id": "resp_1", "object": "resp', b"[1, 2, 3]", b""],
    ids=["html", "truncated", "array", "empty"],
)
async def test_a_200_that_is_not_a_json_object_is_an_unexpected_response(content: bytes) -> None:
    http = http_with(lambda request: httpx2.Response(200, content=content))
    with pytest.raises(UnexpectedResponseError):
        await http.request_json("GET", "openai/v1/responses/resp_1", what="check")


async def test_a_200_with_a_malformed_response_is_an_unexpected_response() -> None:
    http = http_with(lambda request: httpx2.Response(200, json={"object": "response", "status": "completed"}))
    with pytest.raises(UnexpectedResponseError, match="malformed"):
        await ResponsesClient(http).retrieve("resp_1")


# ------------------------------------------------------------------ the client itself


async def test_the_client_is_built_on_first_use_and_closed() -> None:
    built: list[httpx2.AsyncClient] = []

    def factory() -> httpx2.AsyncClient:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: httpx2.Response(200, json={})))
        built.append(client)
        return client

    http = FoundryHttp(factory, image_deployment="gpt-image-1")
    assert built == []
    assert http.client is http.client and len(built) == 1
    await http.aclose()
    assert built[0].is_closed


async def test_request_json_sends_the_method_path_query_headers_and_body() -> None:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": 1})

    http = http_with(handle)
    body = await http.request_json(
        "POST", "agents/a/versions", params={"api-version": "v1"}, json_body={"x": 1}, headers={"h": "v"}, what="t"
    )
    assert body == {"ok": 1}
    (request,) = seen
    assert str(request.url) == "http://foundry/api/projects/p/agents/a/versions?api-version=v1"
    assert request.headers["h"] == "v" and json.loads(request.content) == {"x": 1}


# ------------------------------------------------------------------ authentication


EXPIRED = {
    "error": {
        "code": "ExpiredAuthenticationToken",
        "message": "Lifetime validation failed, the token is expired.",
        "type": "invalid_request_error",
        "param": None,
    }
}


class FakeCredential:
    """Stands in for azure-identity: each credential hands out the next token of `tokens`."""

    def __init__(self, tokens: list[str], made: list[FakeCredential]) -> None:
        self._tokens = tokens
        made.append(self)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._tokens.pop(0), 4_102_444_800)


def bearer_server(valid: set[str], seen: list[str]) -> Callable[[httpx2.Request], httpx2.Response]:
    def handle(request: httpx2.Request) -> httpx2.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if token in valid:
            return httpx2.Response(200, json={"ok": True})
        return httpx2.Response(401, json=EXPIRED, headers={"www-authenticate": 'Bearer error="invalid_token"'})

    return handle


async def test_an_expired_token_is_refreshed_once_and_the_request_repeated() -> None:
    tokens = ["old-token", "new-token"]
    made: list[FakeCredential] = []
    seen: list[str] = []
    auth = EntraTokenAuth(lambda: FakeCredential(tokens, made))
    http = http_with(bearer_server({"new-token"}, seen), auth)
    assert await http.request_json("GET", "agents/a", what="read") == {"ok": True}
    assert seen == ["old-token", "new-token"]
    assert len(made) == 2, "a fresh credential, so azure-identity's cache cannot hand back the rejected token"
    assert await http.request_json("GET", "agents/a", what="read") == {"ok": True}
    assert seen[-1] == "new-token" and len(made) == 2, "the fresh token is cached"


async def test_a_token_rejected_twice_is_an_authentication_error_without_a_loop() -> None:
    seen: list[str] = []
    tokens = ["t1", "t2", "t3"]
    auth = EntraTokenAuth(lambda: FakeCredential(tokens, []))
    http = http_with(bearer_server(set(), seen), auth)
    with pytest.raises(AuthenticationError) as caught:
        await http.request_json("GET", "agents/a", what="read")
    assert seen == ["t1", "t2"]
    assert caught.value.upstream_code == "ExpiredAuthenticationToken"


async def test_an_api_key_rejected_is_not_retried() -> None:
    seen: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["api-key"])
        return httpx2.Response(401, json=PERMISSION)

    http = http_with(handle, ApiKeyAuth("k-1"))
    with pytest.raises(AuthenticationError):
        await http.request_json("GET", "agents/a", what="read")
    assert seen == ["k-1"]


async def test_an_api_key_goes_as_api_key_to_agents_and_deployments_and_as_bearer_to_openai_routes() -> None:
    """As the one recorded key-authenticated session sent it (protocol §1.5)."""
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    http = http_with(handle, ApiKeyAuth("k-1"))
    for path in ("agents/a/versions", "deployments/gpt-image-1", "openai/v1/responses/resp_1", "openai/v1/files"):
        await http.request_json("GET", path, what="read")
    agents, deployments, responses, files = seen
    for request in (agents, deployments):
        assert request.headers["api-key"] == "k-1" and "authorization" not in request.headers
    for request in (responses, files):
        assert request.headers["authorization"] == "Bearer k-1" and "api-key" not in request.headers


# ------------------------------------------------------------------ the recorded Foundry session


def replay(entries: list[dict[str, Any]], seen: list[httpx2.Request]) -> Callable[[httpx2.Request], httpx2.Response]:
    """Answers each request with the recorded entry of the same method and path (query ignored)."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        for entry in entries:
            recorded = httpx2.URL(entry["RequestUri"])
            if entry["RequestMethod"] == request.method and recorded.path == request.url.path:
                headers = {
                    k: v
                    for k, v in entry["ResponseHeaders"].items()
                    if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
                }
                return httpx2.Response(entry["StatusCode"], headers=headers, json=entry["ResponseBody"])
        return httpx2.Response(404, json=NOT_FOUND)

    return handle


async def test_the_recorded_session_parses_through_the_client() -> None:
    recording = json.loads(RECORDING.read_bytes())
    entries = recording["Entries"]
    seen: list[httpx2.Request] = []
    transport = httpx2.MockTransport(replay(entries, seen))
    base = "https://Sanitized.services.ai.azure.com/api/projects/sanitized-project-name/"
    http = FoundryHttp(httpx2.AsyncClient(transport=transport, base_url=base), image_deployment="sanitized-gpt-image")

    # The agent version, as created in entry 1.
    created = await http.request_json(
        "POST", "agents/image-gen-agent/versions", params={"api-version": "v1"}, json_body={}, what="create"
    )
    version = AgentVersion.model_validate(created)
    assert (version.id, version.name, version.version, version.metadata) == (
        "image-gen-agent:1",
        "image-gen-agent",
        "1",
        {},
    )

    # The response of entry 2, through the same client the service uses.
    request = CreateResponseRequest(input="A simple minimalist image: a solid blue circle")
    response = await ResponsesClient(http).create(request)
    assert response.id.startswith("resp_") and response.status == "completed"
    image = extract_image(response)
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.call.revised_prompt and image.response_id == response.id
    assert seen[-1].headers["x-ms-oai-image-generation-deployment"] == "sanitized-gpt-image"


async def test_a_recorded_version_without_our_hash_is_not_reused() -> None:
    """The recorded version carries no `HASH_KEY` metadata: the registry must create its own."""
    entry = json.loads(RECORDING.read_bytes())["Entries"][1]
    posts: list[dict[str, Any]] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(200, json={"object": "list", "data": [entry["ResponseBody"]], "has_more": False})
        posts.append(json.loads(request.content))
        return httpx2.Response(200, json={**entry["ResponseBody"], "version": "2", "id": "image-gen-agent:2"})

    registry = AgentRegistry(http_with(handle), "image-gen-agent", "gpt-4.1")
    ref = await registry.version_for(ImageGenerationTool(model="gpt-image-1", quality="low", size="1024x1024"))
    assert ref.version == "2" and len(posts) == 1 and HASH_KEY in posts[0]["metadata"]
