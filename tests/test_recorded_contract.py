"""The wire as it was recorded: our models read every recorded body, and the emulator answers with the same
keys and JSON types as the real service did (the recording in tests/data, REC-IMG) and as the protocol
document's verbatim examples show it (foundry-protocol.md §7.1, §7.3, §7.4, §9.3, §9.5).

The emulator and the client were written from the same document, so they agree by construction; these tests
hold both to what the service actually sent. Shapes are compared, not values: the keys and the JSON type of
each value, recursively (lists element by element).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_server import protocol
from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.foundry.responses import extract_image
from mcp_server.protocol import AgentVersion, ErrorBody, ImageGenerationCall, Response

RECORDING = Path(__file__).parent / "data" / "foundry_v1_image_generation_2026-03-04.json"
ENTRIES: list[dict[str, Any]] = json.loads(RECORDING.read_bytes())["Entries"]
DEPLOYMENT_ENTRY, VERSION_ENTRY, RESPONSE_ENTRY, DELETE_ENTRY = ENTRIES
IMAGE = min(EmulatorConfig().image_deployments)
ORCHESTRATOR = min(EmulatorConfig().model_deployments)
V1 = {"api-version": "v1"}
HEX32 = r"^[0-9a-f]{32}$"
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


# ---------------------------------------------------------------- comparing shapes


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def differences(actual: Any, expected: Any, path: str = "$", extra: frozenset[str] = frozenset()) -> list[str]:
    """Where `actual` has not the shape of `expected`: a missing key, another JSON type, or a key `expected` lacks
    (unless named in `extra`, as `name` or `path.name`)."""
    if json_type(actual) != json_type(expected):
        return [f"{path}: {json_type(actual)} where the recording has {json_type(expected)}"]
    found: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            else:
                found += differences(actual[key], value, f"{path}.{key}", extra)
        found += [f"{path}.{key}: not in the recording" for key in actual if key not in expected and key not in extra]
        found = [line for line in found if not any(line.startswith(f"{path}.{name}:") for name in extra)]
    elif isinstance(expected, list):
        for index, (mine, theirs) in enumerate(zip(actual, expected, strict=False)):
            found += differences(mine, theirs, f"{path}[{index}]", extra)
    return found


def test_the_shape_comparison_sees_missing_keys_other_types_and_extra_keys() -> None:
    recorded = {"a": 1, "b": {"c": "x"}, "d": [{"e": None}]}
    assert differences({"a": 2.5, "b": {"c": "y"}, "d": [{"e": None}]}, recorded) == []
    assert differences({"a": "1", "b": {}, "d": [{"e": 0}], "z": 1}, recorded) == [
        "$.a: string where the recording has number",
        "$.b.c: missing",
        "$.d[0].e: number where the recording has null",
        "$.z: not in the recording",
    ]
    assert differences({**recorded, "z": 1}, recorded, extra=frozenset({"z"})) == []


# ---------------------------------------------------------------- our models read every recorded body


def test_every_recorded_body_parses_with_our_wire_models() -> None:
    deployment = protocol.Deployment.model_validate(DEPLOYMENT_ENTRY["ResponseBody"])
    assert deployment.name and deployment.capabilities == {}
    version = AgentVersion.model_validate(VERSION_ENTRY["ResponseBody"])
    assert (version.id, version.version, version.status) == ("image-gen-agent:1", "1", None)
    response = Response.model_validate(RESPONSE_ENTRY["ResponseBody"])
    assert response.status == "completed" and response.completed_at is not None and response.content_filters is None
    (call,) = response.image_calls()
    assert isinstance(call, ImageGenerationCall) and call.status == "completed"
    assert (call.action, call.response_id, call.background) == ("generate", response.id, "opaque")
    assert call.agent_reference is not None and call.agent_reference.version == "1"
    assert extract_image(response).data.startswith(b"\x89PNG")
    deleted = DELETE_ENTRY["ResponseBody"]
    assert deleted == {"object": "agent.version.deleted", "name": "image-gen-agent", "version": "1", "deleted": True}


# ---------------------------------------------------------------- the emulator answers as recorded


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorConfig()) as emulator:
        yield emulator


@pytest.fixture
def http(running: RunningEmulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=running.endpoint, headers={"authorization": "Bearer t"}, timeout=30) as client:
        yield client


def recorded_definition() -> dict[str, Any]:
    """Entry 1's agent definition, on the emulated project's deployments."""
    definition: dict[str, Any] = json.loads(json.dumps(VERSION_ENTRY["RequestBody"]["definition"]))
    definition["model"] = ORCHESTRATOR
    definition["tools"][0]["model"] = IMAGE
    return definition


def make_recorded_agent(http: httpx2.Client, name: str) -> httpx2.Response:
    body = {**VERSION_ENTRY["RequestBody"], "definition": recorded_definition()}
    reply = http.post(f"/agents/{name}/versions", params=V1, json=body)
    assert reply.status_code == 200, reply.text
    return reply


def create(http: httpx2.Client, name: str, **extra: Any) -> httpx2.Response:
    body = {**RESPONSE_ENTRY["RequestBody"], "agent_reference": {"name": name, "type": "agent_reference"}, **extra}
    return http.post("/openai/v1/responses", json=body, headers={protocol.IMAGE_DEPLOYMENT_HEADER: IMAGE})


def test_the_agent_version_has_the_recorded_shape(http: httpx2.Client) -> None:
    reply = make_recorded_agent(http, "contract-version")
    body = reply.json()
    # `status` is absent in this recording and "active" in those from 2026-03-31 on (protocol §1.2).
    assert differences(body, VERSION_ENTRY["ResponseBody"], extra=frozenset({"status"})) == []
    assert body["id"] == "contract-version:1" and body["status"] == "active"
    assert body["definition"] == recorded_definition(), "the definition is echoed as sent, no defaults filled in"
    assert reply.headers["apim-request-id"] and len(reply.headers["x-request-id"]) == 32


RESPONSE_EXTRA = frozenset({"cache_write_tokens", "partial_images"})
"""Newer services add `usage.input_tokens_details.cache_write_tokens` (protocol §4). The emulator also echoes
`partial_images: 0` in `tools[]`, which the recording leaves out (the shared option table echoes every default)."""


def test_a_plain_response_has_the_recorded_shape(http: httpx2.Client) -> None:
    make_recorded_agent(http, "contract-plain")
    reply = create(http, "contract-plain")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert differences(body, RESPONSE_ENTRY["ResponseBody"], extra=RESPONSE_EXTRA) == []
    echoed = {k: v for k, v in body["tools"][0].items() if k != "partial_images"}
    assert echoed == {**RESPONSE_ENTRY["ResponseBody"]["tools"][0], "model": IMAGE}, "a fully defaulted echo"
    image, message = body["output"]
    assert (image["status"], image["action"], image["background"]) == ("completed", "generate", "opaque")
    for item in (image, message):
        assert item["agent_reference"] == {"type": "agent_reference", "name": "contract-plain", "version": "1"}
        assert item["response_id"] == body["id"]
    assert "content_filters" not in body, "absent from a plain GA Response (protocol §4)"


def test_the_deleted_version_has_the_recorded_shape(http: httpx2.Client) -> None:
    make_recorded_agent(http, "contract-delete")
    reply = http.delete("/agents/contract-delete/versions/1", params=V1)
    assert differences(reply.json(), DELETE_ENTRY["ResponseBody"]) == []


# ---------------------------------------------------------------- the stream, as §9.5 shows it

B64 = "iVBORw0KGgo="
RESPONSE_SHELL = {"id": "resp_X", "object": "response", "background": True, "output": [], "usage": None}
STREAM_SKELETON: list[dict[str, Any]] = [
    {"type": "response.created", "sequence_number": 0, "response": {**RESPONSE_SHELL, "status": "queued"}},
    {"type": "response.queued", "sequence_number": 1, "response": {**RESPONSE_SHELL, "status": "queued"}},
    {"type": "response.in_progress", "sequence_number": 2, "response": {**RESPONSE_SHELL, "status": "in_progress"}},
    {
        "type": "response.output_item.added",
        "sequence_number": 3,
        "output_index": 0,
        "item": {"id": "ig_Y", "type": "image_generation_call", "status": "in_progress"},
    },
    {"type": "response.image_generation_call.in_progress", "sequence_number": 4, "output_index": 0, "item_id": "ig_Y"},
    {"type": "response.image_generation_call.generating", "sequence_number": 5, "output_index": 0, "item_id": "ig_Y"},
    *(
        {
            "type": "response.image_generation_call.partial_image",
            "sequence_number": 6 + index,
            "output_index": 0,
            "item_id": "ig_Y",
            "partial_image_index": index,
            "partial_image_b64": B64,
            "size": "1024x1024",
            "quality": "low",
            "background": "opaque",
            "output_format": "png",
        }
        for index in (0, 1)
    ),
    {
        "type": "response.output_item.done",
        "sequence_number": 8,
        "output_index": 0,
        "item": {
            "id": "ig_Y",
            "type": "image_generation_call",
            "status": "generating",
            "background": "opaque",
            "output_format": "png",
            "quality": "low",
            "result": B64,
            "revised_prompt": "...",
            "size": "1024x1024",
        },
    },
    {
        "type": "response.completed",
        "sequence_number": 9,
        "response": {**RESPONSE_SHELL, "status": "completed", "completed_at": 1767225700, "usage": {}},
    },
]
"""§9.5, "Azure behaviour as recorded", without its message item and its trimmed `...` payloads. Its
`content_filters` are left out: null at the start and, on Foundry, an array at the end (§4), checked below."""
STREAM_EXTRA = frozenset(
    {"content_filters", "agent_reference", "response_id", "action", "created_at", "completed_at", "error"}
    | {"incomplete_details", "instructions", "model", "parallel_tool_calls", "reasoning", "service_tier"}
    | {"temperature", "text", "tool_choice", "tools", "top_p", "truncation", "metadata", "top_logprobs"}
    | {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}
)
"""What the emulator sends beyond the trimmed skeleton: the recorded Response and item fields (§9.3)."""


def stream_events(reply: httpx2.Response) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    return [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]


def test_a_stream_has_the_shape_and_order_azure_sends() -> None:
    config = EmulatorConfig()
    with (
        start_emulator(config) as emulator,
        httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}, timeout=30) as http,
    ):
        definition = recorded_definition()
        definition["tools"][0]["partial_images"] = 2
        assert http.post("/agents/streamed/versions", params=V1, json={"definition": definition}).status_code == 200
        events = stream_events(create(http, "streamed", stream=True, background=True))
    image_events = [e for e in events if "item_id" in e or e.get("item", {}).get("type") != "message"]
    image_events = [e for e in image_events if not e["type"].startswith(("response.output_text", "response.content"))]
    assert [e["type"] for e in image_events] == [e["type"] for e in STREAM_SKELETON]
    for mine, recorded in zip(image_events, STREAM_SKELETON, strict=True):
        assert differences(mine, recorded, extra=STREAM_EXTRA) == [], mine["type"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = image_events[-2]["item"]
    final = events[-1]["response"]
    assert done["status"] == "generating" and final["output"][0]["status"] == "generating"
    assert final["output"][0]["result"] == done["result"]
    assert events[0]["response"]["content_filters"] is None
    assert [f["source_type"] for f in final["content_filters"]] == ["prompt", "completion"]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert deltas and all(isinstance(e["obfuscation"], str) for e in deltas)
    assert differences(final, RESPONSE_ENTRY["ResponseBody"], extra=RESPONSE_EXTRA | {"content_filters"}) == []


# ---------------------------------------------------------------- error bodies, as §7 shows them

REQUEST_ID = "0822494fe0589f357fdda1ef5f7fea3b"


def foundry_error(code: str, message: str, param: str | None, details: list[Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "param": param,
            "type": "invalid_request_error",
            "details": details or [],
            "additionalInfo": {"request_id": REQUEST_ID},
        }
    }


AGENT_FIELD = foundry_error("invalid_payload", "Not allowed when agent is specified.", "tools")
AGENT_FIELDS = foundry_error(
    "invalid_payload",
    "Invalid payload",
    None,
    [
        {
            "code": "ValidationError",
            "message": "Not allowed when agent is specified.",
            "param": "temperature",
            "type": "error",
        }
    ],
)
TEMPLATE = foundry_error("invalid_payload", "The supplied value is invalid.", "")
PREVIEW = foundry_error("preview_feature_required", "Workflow agents is in preview. ...", "Foundry-Features")
MISSING_HEADER = {
    "error": {
        "message": "imagegen deployment must be provided through header: x-ms-oai-image-generation-deployment",
        "type": "image_generation_user_error",
        "param": "tools",
        "code": "invalid_request_error",
    }
}
MODERATION = {
    "error": {
        "type": "image_generation_user_error",
        "code": "moderation_blocked",
        "message": "…",
        "param": None,
        "moderation_details": {"moderation_stage": "output", "categories": ["…"]},
    }
}


def check_error(reply: httpx2.Response, status: int, recorded: dict[str, Any], *same: str) -> None:
    """`reply` has the recorded body's shape and, for the keys `same`, its values; a Foundry-shaped error carries its
    id in the body (32 hex) and no `X-Request-ID`, every answer an `apim-request-id` (protocol §7.5)."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert differences(body, recorded) == []
    for key in same:
        assert body["error"][key] == recorded["error"][key], key
    ErrorBody.model_validate(body)
    assert reply.headers["apim-request-id"]
    if "additionalInfo" in recorded["error"]:
        assert len(body["error"]["additionalInfo"]["request_id"]) == 32 and "x-request-id" not in reply.headers


def test_the_agent_only_field_errors_have_the_recorded_shapes(http: httpx2.Client) -> None:
    make_recorded_agent(http, "contract-errors")
    check_error(create(http, "contract-errors", tools=[]), 400, AGENT_FIELD, "code", "message", "param", "type")
    several = create(http, "contract-errors", temperature=0.5, top_p=0.5)
    check_error(several, 400, AGENT_FIELDS, "code", "message", "param", "type")


def test_a_placeholder_in_an_image_tool_gets_the_recorded_refusal(http: httpx2.Client) -> None:
    definition = recorded_definition()
    definition["tools"][0]["input_image_mask"] = {"file_id": "{{mask_file_id}}"}
    reply = http.post("/agents/contract-template/versions", params=V1, json={"definition": definition})
    check_error(reply, 400, TEMPLATE, "code", "message", "param", "type")


@pytest.mark.parametrize(
    ("fault", "status", "recorded", "same"),
    [
        ("forbidden-preview", 403, PREVIEW, ("code", "param", "type")),
        ("image-header-missing", 400, MISSING_HEADER, ("code", "message", "param", "type")),
        ("moderation-blocked", 400, MODERATION, ("code", "param", "type")),
        ("agent-field", 400, AGENT_FIELD, ("code", "message", "param", "type")),
    ],
)
def test_the_faults_answer_with_the_documented_bodies(
    http: httpx2.Client, fault: str, status: int, recorded: dict[str, Any], same: tuple[str, ...]
) -> None:
    make_recorded_agent(http, f"contract-{fault}")
    reply = http.post(
        "/openai/v1/responses",
        json={"agent_reference": {"type": "agent_reference", "name": f"contract-{fault}"}, "input": "x"},
        headers={protocol.IMAGE_DEPLOYMENT_HEADER: IMAGE, "x-emulator-fault": fault},
    )
    check_error(reply, status, recorded, *same)
