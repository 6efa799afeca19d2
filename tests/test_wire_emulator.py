"""The emulator's wire details beyond the bodies: credentials per route, request-id headers, and the options
that switch between the recorded Azure behaviour (the default) and the alternatives (protocol §1.5, §4, §5.2,
§7.5)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

V1 = {"api-version": "v1"}
IMAGE = min(EmulatorConfig().image_deployments)
DEPLOYMENT = {"x-ms-oai-image-generation-deployment": IMAGE}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
BEARER = {"authorization": "Bearer t"}


def definition(**tool: Any) -> dict[str, Any]:
    return {"kind": "prompt", "model": "gpt-4.1", "tools": [{"type": "image_generation", "model": IMAGE, **tool}]}


def make_agent(http: httpx2.Client, name: str = "wire", **tool: Any) -> httpx2.Response:
    reply = http.post(f"/agents/{name}/versions", params=V1, json={"definition": definition(quality="low", **tool)})
    assert reply.status_code == 200, reply.text
    return reply


def create(http: httpx2.Client, name: str = "wire", **extra: Any) -> httpx2.Response:
    body = {"agent_reference": {"type": "agent_reference", "name": name}, "input": "a kite", **extra}
    return http.post("/openai/v1/responses", json=body, headers=DEPLOYMENT)


def events_of(reply: httpx2.Response) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    return [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emulator.endpoint, headers=BEARER, timeout=30) as client:
        yield client


# ---------------------------------------------------------------- credentials per route (§1.5)


def test_a_key_is_taken_as_api_key_on_agents_and_deployments_and_as_bearer_on_openai_routes() -> None:
    config = EmulatorConfig(accepted_tokens=frozenset({"entra"}), accepted_api_keys=frozenset({"key"}))
    with start_emulator(config) as emu, httpx2.Client(base_url=emu.endpoint, timeout=30) as client:
        key, as_bearer, entra = {"api-key": "key"}, {"authorization": "Bearer key"}, {"authorization": "Bearer entra"}
        assert client.get("/agents", params=V1, headers=key).status_code == 200
        assert client.get("/deployments", params=V1, headers=key).status_code == 200
        assert client.get("/openai/v1/files", headers=as_bearer).status_code == 200
        assert client.get("/openai/v1/files", headers=key).status_code == 401, "api-key is not taken on /openai"
        assert client.get("/openai/v1/files", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/agents", params=V1, headers={"api-key": "wrong"}).status_code == 401
        for route in ("/agents", "/deployments", "/openai/v1/files"):
            assert client.get(route, params=V1, headers=entra).status_code == 200, "Entra ID everywhere"


# ---------------------------------------------------------------- request ids (§7.5)


def test_request_id_headers_take_the_per_route_forms(http: httpx2.Client) -> None:
    agent = make_agent(http)
    assert UUID.match(agent.headers["apim-request-id"]) and HEX32.match(agent.headers["x-request-id"])
    created = create(http)
    assert UUID.match(created.headers["apim-request-id"]) and UUID.match(created.headers["x-request-id"])
    deployments = http.get("/deployments", params=V1)
    assert UUID.match(deployments.headers["apim-request-id"]) and "x-request-id" not in deployments.headers
    refused = create(http, tools=[])
    assert refused.status_code == 400 and "x-request-id" not in refused.headers
    assert HEX32.match(refused.json()["error"]["additionalInfo"]["request_id"])
    assert UUID.match(refused.headers["apim-request-id"])


# ---------------------------------------------------------------- the image stream: Azure by default, OpenAI on request


def image_stream(config: EmulatorConfig, **tool: Any) -> list[dict[str, Any]]:
    with start_emulator(config) as emu, httpx2.Client(base_url=emu.endpoint, headers=BEARER, timeout=30) as http:
        make_agent(http, **tool)
        return events_of(create(http, stream=True))


def test_by_default_the_stream_is_azures_and_the_openai_form_is_an_option() -> None:
    azure = image_stream(EmulatorConfig())
    openai = image_stream(EmulatorConfig(openai_image_events=True))
    for events, status, completed_event in ((azure, "generating", False), (openai, "completed", True)):
        kinds = [e["type"] for e in events]
        assert ("response.image_generation_call.completed" in kinds) is completed_event
        done = next(e for e in events if e["type"] == "response.output_item.done" and e["item"]["id"].startswith("ig_"))
        final = events[-1]["response"]
        assert done["item"]["status"] == final["output"][0]["status"] == status
        assert done["item"]["result"] and final["output"][0]["result"] == done["item"]["result"]


def test_a_partial_image_nobody_asked_for_is_an_option() -> None:
    def partials(events: list[dict[str, Any]]) -> int:
        return sum(e["type"] == "response.image_generation_call.partial_image" for e in events)

    assert partials(image_stream(EmulatorConfig())) == 0
    assert partials(image_stream(EmulatorConfig(unrequested_partial_image=True))) == 1
    assert partials(image_stream(EmulatorConfig(unrequested_partial_image=True), partial_images=2)) == 2


def test_retrieves_can_answer_with_result_null_while_the_stream_keeps_the_image() -> None:
    config = EmulatorConfig(null_result_on_retrieve=True)
    with start_emulator(config) as emu, httpx2.Client(base_url=emu.endpoint, headers=BEARER, timeout=30) as http:
        make_agent(http)
        events = events_of(create(http, stream=True, background=True))
        response_id = events[0]["response"]["id"]
        retrieved = http.get(f"/openai/v1/responses/{response_id}").json()
        replayed = events_of(http.get(f"/openai/v1/responses/{response_id}", params={"stream": "true"}))
    (image,) = [item for item in retrieved["output"] if item["type"] == "image_generation_call"]
    assert retrieved["status"] == "completed" and image["result"] is None
    assert replayed[-1]["response"]["output"][0]["result"] == events[-1]["response"]["output"][0]["result"]


# ---------------------------------------------------------------- placeholders in the image tool (§3.4)


def test_placeholders_in_the_image_tool_are_refused_unless_allowed(http: httpx2.Client) -> None:
    masked = definition(input_image_mask={"file_id": "{{mask_file_id}}"})
    refused = http.post("/agents/masked/versions", params=V1, json={"definition": masked})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["message"], error["param"]) == (
        "invalid_payload",
        "The supplied value is invalid.",
        "",
    )
    allowing = EmulatorConfig(image_tool_placeholders=True)
    with start_emulator(allowing) as emu, httpx2.Client(base_url=emu.endpoint, headers=BEARER, timeout=30) as client:
        assert client.post("/agents/masked/versions", params=V1, json={"definition": masked}).status_code == 200
