"""Foundry rules the emulator enforces, checked over real loopback HTTP (protocol §1 to §8)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx2
import pytest
from PIL import Image

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator
from mcp_server.emulator import validation as emulator_validation

V1 = {"api-version": "v1"}
DEPLOYMENT = {"x-ms-oai-image-generation-deployment": "gpt-image-2"}
PROJECT = EmulatorConfig(
    deployments={
        "gpt-4.1": "gpt-4.1",
        "gpt-image-2": "gpt-image-2",
        "gpt-image-1.5": "gpt-image-1.5",
        "gpt-image-1-mini": "gpt-image-1-mini",
        "flare": "gpt-image-2.5-flare-2026-09-08",
        "old": "gpt-image-1",
        "future": "gpt-image-3",
    },
    image_tool_placeholders=True,
)
"""A project with a deployment of each kind of image model: current, 2.5, retired (`old`) and unknown; it
binds structured-input placeholders in image-tool fields (off by default, as on the real service)."""


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator(PROJECT) as running:
        yield running


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}, timeout=30) as client:
        yield client


def definition(orchestrator: str = "gpt-4.1", **tool: Any) -> dict[str, Any]:
    return {
        "kind": "prompt",
        "model": orchestrator,
        "tools": [{"type": "image_generation", "model": "gpt-image-2", **tool}],
    }


def make_agent(http: httpx2.Client, name: str = "img-agent", **tool: Any) -> dict[str, Any]:
    reply = http.post(f"/agents/{name}/versions", params=V1, json={"definition": definition(**tool)})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def generate(
    http: httpx2.Client, prompt: Any = "a fox", name: str = "img-agent", deployment: str = "gpt-image-2", **extra: Any
) -> httpx2.Response:
    body = {"agent_reference": {"type": "agent_reference", "name": name}, "input": prompt, **extra}
    return http.post("/openai/v1/responses", json=body, headers={DEPLOYMENT_HEADER: deployment})


def image_of(reply: httpx2.Response) -> tuple[bytes, Image.Image]:
    assert reply.status_code == 200, reply.text
    call = next(item for item in reply.json()["output"] if item["type"] == "image_generation_call")
    data = base64.b64decode(call["result"])
    return data, Image.open(io.BytesIO(data))


def png_data_url(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def error_of(reply: httpx2.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    return error


# ---------------------------------------------------------------- agent-level restrictions


def test_agent_rejects_a_single_overridden_field(http: httpx2.Client) -> None:
    make_agent(http)
    error = error_of(generate(http, tools=[{"type": "image_generation"}]), 400)
    assert (error["code"], error["message"], error["param"]) == (
        "invalid_payload",
        "Not allowed when agent is specified.",
        "tools",
    )
    assert error["type"] == "invalid_request_error" and error["details"] == []
    assert len(error["additionalInfo"]["request_id"]) == 32


def test_agent_rejects_several_overridden_fields_with_details(http: httpx2.Client) -> None:
    make_agent(http)
    error = error_of(generate(http, temperature=0.2, top_p=0.5, text={"format": {"type": "text"}}), 400)
    assert error["code"] == "invalid_payload" and error["param"] is None
    assert [d["param"] for d in error["details"]] == ["temperature", "top_p", "text"]
    assert {d["message"] for d in error["details"]} == {"Not allowed when agent is specified."}


# ---------------------------------------------------------------- image deployment header


def test_missing_deployment_header_gets_the_generic_400(http: httpx2.Client) -> None:
    make_agent(http)
    body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}, "input": "x"}
    reply = http.post("/openai/v1/responses", json=body)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {
            "message": "There was an issue with your request. Please check your inputs and try again",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_unknown_and_mismatched_deployment_header(http: httpx2.Client) -> None:
    make_agent(http)
    body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}, "input": "x"}
    unknown = http.post("/openai/v1/responses", json=body, headers={DEPLOYMENT_HEADER: "dall-e-3"})
    assert error_of(unknown, 404)["code"] == "DeploymentNotFound"
    mismatched = http.post("/openai/v1/responses", json=body, headers={DEPLOYMENT_HEADER: "gpt-image-1-mini"})
    assert "must match" in error_of(mismatched, 400)["message"]


DEPLOYMENT_HEADER = "x-ms-oai-image-generation-deployment"


# ---------------------------------------------------------------- auth


def test_missing_credentials_are_rejected_and_recorded(emulator: RunningEmulator) -> None:
    with httpx2.Client(base_url=emulator.endpoint) as anonymous:
        reply = anonymous.get("/agents", params=V1)
        empty = anonymous.get("/agents", params=V1, headers={"api-key": ""})
        basic = anonymous.get("/agents", params=V1, headers={"authorization": "Basic dXNlcjpwdw=="})
    assert error_of(reply, 401)["message"].startswith("Access denied")
    assert empty.status_code == basic.status_code == 401
    assert emulator.state.count("GET", "/agents") == 3


def test_only_accepted_credentials_pass() -> None:
    config = EmulatorConfig(accepted_tokens=frozenset({"good"}), accepted_api_keys=frozenset({"key"}))
    with start_emulator(config) as emulator, httpx2.Client(base_url=emulator.endpoint) as client:
        assert client.get("/agents", params=V1, headers={"authorization": "Bearer bad"}).status_code == 401
        assert client.get("/agents", params=V1, headers={"api-key": "nope"}).status_code == 401
        assert client.get("/agents", params=V1, headers={"authorization": "Bearer good"}).status_code == 200
        assert client.get("/agents", params=V1, headers={"api-key": "key"}).status_code == 200


# ---------------------------------------------------------------- agent validation


@pytest.mark.parametrize(
    ("name", "body", "param"),
    [
        ("a", {"definition": definition(size="800x600")}, "definition.tools[0].size"),
        ("a", {"definition": definition(background="transparent", output_format="jpeg")}, "background"),
        ("a", {"definition": definition(output_compression=101)}, "definition.tools[0].output_compression"),
        ("a", {"definition": definition(partial_images=4)}, "definition.tools[0].partial_images"),
        ("a", {"definition": definition(orchestrator="gpt-3")}, "definition.model"),
        ("a", {"definition": {**definition(), "kind": "workflow"}}, "definition.kind"),
        ("a", {"definition": definition(quality="ultra")}, "definition.tools[0].quality"),
        ("a", {"definition": definition(model="gpt-image-1-mini", input_fidelity="high")}, "input_fidelity"),
        ("a", {"definition": definition(input_image_mask={"url": "x"})}, "input_image_mask"),
        ("-bad", {"definition": definition()}, "agent_name"),
        ("x" * 64, {"definition": definition()}, "agent_name"),
        ("a", {"definition": definition(), "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ("a", {"definition": definition(), "metadata": {"k": "v" * 513}}, "metadata.k"),
    ],
)
def test_agent_validation_errors(http: httpx2.Client, name: str, body: dict[str, Any], param: str) -> None:
    error = error_of(http.post(f"/agents/{name}/versions", params=V1, json=body), 400)
    assert error["code"] == "invalid_payload" and param in error["param"]
    assert "request_id" in error["additionalInfo"]


def test_unknown_orchestrator_model_is_named(http: httpx2.Client) -> None:
    reply = http.post("/agents/a/versions", params=V1, json={"definition": definition(orchestrator="gpt-3")})
    assert "'gpt-3'" in error_of(reply, 400)["message"]


def test_agents_require_api_version_v1(http: httpx2.Client) -> None:
    assert error_of(http.get("/agents"), 400)["param"] == "api-version"
    assert http.get("/agents", params={"api-version": "2025-05-01"}).status_code == 400


def test_agent_crud_and_version_paging(http: httpx2.Client, emulator: RunningEmulator) -> None:
    for _ in range(5):
        make_agent(http, name="pager")
    first = http.get("/agents/pager/versions", params={**V1, "limit": "2"}).json()
    assert [v["version"] for v in first["data"]] == ["5", "4"] and first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == ("pager:5", "pager:4")
    second = http.get("/agents/pager/versions", params={**V1, "limit": "2", "after": first["last_id"]}).json()
    assert [v["version"] for v in second["data"]] == ["3", "2"] and second["has_more"] is True
    ascending = http.get("/agents/pager/versions", params={**V1, "order": "asc"}).json()
    assert [v["id"] for v in ascending["data"]] == [f"pager:{i}" for i in range(1, 6)]
    assert ascending["has_more"] is False
    agent = http.get("/agents/pager", params=V1).json()
    assert agent["object"] == "agent" and agent["versions"]["latest"]["version"] == "5"
    deleted = http.delete("/agents/pager/versions/5", params=V1).json()
    assert deleted == {"object": "agent.version.deleted", "name": "pager", "version": "5", "deleted": True}
    assert http.get("/agents/pager/versions/5", params=V1).status_code == 404
    assert [v.version for v in emulator.state.agent_versions("pager")] == ["1", "2", "3", "4"]
    assert http.delete("/agents/pager", params=V1).json() == {
        "object": "agent.deleted",
        "name": "pager",
        "deleted": True,
    }
    assert error_of(http.get("/agents/pager", params=V1), 404)["code"] == "not_found"
    assert http.get("/agents/pager/versions", params=V1).status_code == 404


def test_create_agent_route(http: httpx2.Client) -> None:
    reply = http.post("/agents", params=V1, json={"name": "direct", "definition": definition(), "metadata": {"a": "b"}})
    assert reply.status_code == 200, reply.text
    latest = reply.json()["versions"]["latest"]
    assert (latest["id"], latest["status"], latest["metadata"]) == ("direct:1", "active", {"a": "b"})


# ---------------------------------------------------------------- structured inputs


def test_structured_inputs_bind_tool_placeholders(http: httpx2.Client) -> None:
    make_agent(http, size="{{size}}", output_format="{{fmt}}", output_compression="{{compression}}")
    inputs = {"size": "1024x1536", "fmt": "jpeg", "compression": "40"}
    _, image = image_of(generate(http, structured_inputs=inputs))
    assert (image.format, image.size) == ("JPEG", (1024, 1536))
    missing = error_of(generate(http, structured_inputs={"size": "1024x1024", "fmt": "png"}), 400)
    assert missing["code"] == "invalid_payload" and "compression" in missing["message"]
    bad = error_of(generate(http, structured_inputs={**inputs, "size": "huge"}), 400)
    assert bad["code"] == "invalid_payload" and "huge" in bad["message"]


# ---------------------------------------------------------------- inputs, follow-ups and masks


def direct_body(prompt: str = "add a dragon", **tool: Any) -> dict[str, Any]:
    tool = {"model": "gpt-image-2", **tool}
    return {"model": "gpt-4.1", "tools": [{"type": "image_generation", **tool}], "input": prompt}


def test_follow_up_edits_the_previous_image(http: httpx2.Client, emulator: RunningEmulator) -> None:
    make_agent(http)
    first_reply = generate(http, "a castle")
    _, first = image_of(first_reply)
    mask = Image.new("RGBA", first.size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 100, 100))
    body = {
        **direct_body(input_image_mask={"image_url": png_data_url(mask)}),
        "previous_response_id": first_reply.json()["id"],
    }
    edited_reply = http.post("/openai/v1/responses", json=body, headers=DEPLOYMENT)
    _, edited = image_of(edited_reply)
    assert edited_reply.json()["previous_response_id"] == first_reply.json()["id"]
    original, result = first.convert("RGB"), edited.convert("RGB")
    # Only the transparent corner of the mask may change; the rest is the previous image, pixel for pixel.
    assert result.crop((100, 100, 1024, 1024)).tobytes() == original.crop((100, 100, 1024, 1024)).tobytes()
    assert result.crop((0, 0, 100, 100)).tobytes() != original.crop((0, 0, 100, 100)).tobytes()
    unknown = http.post("/openai/v1/responses", json={**body, "previous_response_id": "resp_nope"}, headers=DEPLOYMENT)
    assert unknown.status_code == 404
    stored = emulator.state.responses[edited_reply.json()["id"]]
    assert stored.request["previous_response_id"] == first_reply.json()["id"]


def test_follow_up_without_mask_derives_from_the_previous_image(http: httpx2.Client) -> None:
    make_agent(http)
    first_reply = generate(http, "a castle")
    fresh, _ = image_of(generate(http, "make it night"))
    follow, _ = image_of(generate(http, "make it night", previous_response_id=first_reply.json()["id"]))
    assert follow != fresh


def test_mask_rules(http: httpx2.Client) -> None:
    source = Image.new("RGB", (256, 256), (200, 20, 20))
    no_alpha = Image.new("RGB", (256, 256), (0, 0, 0))
    wrong_size = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    image_part = {"type": "input_image", "image_url": png_data_url(source)}
    message = [{"role": "user", "content": [{"type": "input_text", "text": "edit"}, image_part]}]
    for mask in (no_alpha, wrong_size):
        body = {**direct_body(input_image_mask={"image_url": png_data_url(mask)}), "input": message}
        error = error_of(http.post("/openai/v1/responses", json=body, headers=DEPLOYMENT), 400)
        assert (error["code"], error["type"]) == ("invalid_mask_image_format", "image_generation_user_error")
    body = {**direct_body(input_image_mask={"image_url": png_data_url(no_alpha)}), "input": message}
    reply = http.post("/openai/v1/responses", json=body, headers=DEPLOYMENT)
    assert reply.json()["error"]["message"] == "Invalid mask image format - mask image missing alpha channel"


@pytest.mark.parametrize(
    ("part", "code"),
    [
        ({"image_url": "https://example.com/cat.png"}, "failed_to_download_image"),
        ({"image_url": "data:image/png;base64,@@not-base64@@"}, "invalid_base64_image"),
        ({"image_url": "data:image/png;base64," + base64.b64encode(b"plain text").decode()}, "invalid_image"),
        ({"file_id": "assistant-missing"}, "image_file_not_found"),
    ],
)
def test_bad_input_images(http: httpx2.Client, emulator: RunningEmulator, part: dict[str, str], code: str) -> None:
    message = [{"role": "user", "content": [{"type": "input_text", "text": "x"}, {"type": "input_image", **part}]}]
    reply = http.post("/openai/v1/responses", json={**direct_body(), "input": message}, headers=DEPLOYMENT)
    error = error_of(reply, 400)
    assert error["code"] == code
    if code == "failed_to_download_image":
        assert error["message"] == "Error while downloading https://example.com/cat.png."
    assert emulator.state.responses == {}


def test_request_limits(http: httpx2.Client) -> None:
    make_agent(http)
    assert error_of(generate(http, "x" * 32_001), 400)["param"] == "input"
    assert error_of(generate(http, background=True, store=False), 400)["param"] == "background"
    assert (
        error_of(http.post("/openai/v1/responses", json={**direct_body(), "model": "gpt-9"}), 400)["param"] == "model"
    )
    assert error_of(generate(http, name="ghost"), 404)["code"] == "not_found"
    bad_tool = {**direct_body(size="4096x4096")}
    assert error_of(http.post("/openai/v1/responses", json=bad_tool, headers=DEPLOYMENT), 400)["code"] == (
        "invalid_payload"
    )


def test_resume_requires_a_streamed_original(http: httpx2.Client) -> None:
    make_agent(http)
    response_id = generate(http).json()["id"]
    reply = http.get(f"/openai/v1/responses/{response_id}", params={"stream": "true", "starting_after": "0"})
    assert "stream=true" in error_of(reply, 400)["message"]
    assert http.get(f"/openai/v1/responses/{response_id}", params={"stream": "false"}).json()["id"] == response_id


def test_legacy_preview_routes(http: httpx2.Client) -> None:
    make_agent(http)
    body = {"agent": {"type": "agent_reference", "name": "img-agent"}, "input": "x"}
    legacy = {"api-version": "2025-11-15-preview"}
    reply = http.post("/openai/responses", params=legacy, json=body, headers=DEPLOYMENT)
    assert reply.status_code == 200 and reply.json()["status"] == "completed"
    fetched = http.get(f"/openai/responses/{reply.json()['id']}", params=legacy)
    assert fetched.json()["id"] == reply.json()["id"]
    assert http.post("/openai/responses", json=body, headers=DEPLOYMENT).status_code == 400


def test_unknown_project_and_route_are_json_404s(emulator: RunningEmulator, http: httpx2.Client) -> None:
    other = httpx2.Client(base_url=emulator.base_url + "/api/projects/other", headers={"api-key": "k"})
    with other:
        assert error_of(other.get("/agents", params=V1), 404)["code"] == "not_found"
    assert error_of(http.get("/no/such/route"), 404)["code"] == "not_found"
    recorded = emulator.state.requests[-1]
    assert recorded.path.endswith("/no/such/route") and recorded.headers["authorization"] == "Bearer t"


# ---------------------------------------------------------------- rendering


def test_rendering_honours_size_format_and_background(http: httpx2.Client) -> None:
    make_agent(http, name="clear", background="transparent", output_format="png", size="1536x1024")
    make_agent(http, name="photo", output_format="jpeg", output_compression=50)
    _, clear = image_of(generate(http, name="clear"))
    assert (clear.format, clear.mode, clear.size) == ("PNG", "RGBA", (1536, 1024))
    alpha = clear.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((768, 512)) == 255
    _, photo = image_of(generate(http, name="photo"))
    assert (photo.format, photo.mode, photo.size) == ("JPEG", "RGB", (1024, 1024))


def test_rendering_is_deterministic_per_prompt(http: httpx2.Client) -> None:
    make_agent(http)
    fox, _ = image_of(generate(http, "a fox in the snow"))
    fox_again, _ = image_of(generate(http, "a fox in the snow"))
    owl, _ = image_of(generate(http, "an owl at night"))
    assert fox == fox_again
    assert fox != owl


def test_input_items_list_the_request_input(http: httpx2.Client) -> None:
    make_agent(http)
    response_id = generate(http, "hello there").json()["id"]
    items = http.get(f"/openai/v1/responses/{response_id}/input_items").json()
    assert items["object"] == "list"
    assert items["data"][0]["content"] == [{"type": "input_text", "text": "hello there"}]


# ---------------------------------------------------------------- each model's own rules


def make_agent_on(http: httpx2.Client, name: str, deployment: str, **tool: Any) -> httpx2.Response:
    body = {"definition": {**definition(**tool), "tools": [{"type": "image_generation", "model": deployment, **tool}]}}
    return http.post(f"/agents/{name}/versions", params=V1, json=body)


@pytest.mark.parametrize(
    ("deployment", "tool", "field", "message"),
    [
        (
            "gpt-image-1.5",
            {"size": "2048x1152"},
            "size",
            "Invalid value '2048x1152' for 'size': gpt-image-1.5 supports 1024x1024, 1536x1024, 1024x1536 or auto.",
        ),
        (
            "gpt-image-2",
            {"size": "3840x1152"},
            "size",
            "Invalid value '3840x1152' for 'size': gpt-image-2 takes aspect ratios up to 3:1, and 3840x1152 is 3.33:1.",
        ),
        ("gpt-image-2", {"size": "1000x1000"}, "size", "multiples of 16"),
        ("gpt-image-2", {"size": "512x512"}, "size", "655,360 to 8,294,400 pixels"),
        ("gpt-image-2", {"size": "3856x2160"}, "size", "long edge of at most 3840"),
        ("gpt-image-2", {"quality": "xhigh"}, "quality", "gpt-image-2 supports quality auto, low, medium or high."),
        ("gpt-image-1-mini", {"input_fidelity": "low"}, "input_fidelity", "gpt-image-1-mini does not support"),
        ("future", {"size": "512x512"}, "size", "gpt-image-3 takes 655,360"),
    ],
)
def test_each_model_refuses_what_it_does_not_take(
    http: httpx2.Client, deployment: str, tool: dict[str, Any], field: str, message: str
) -> None:
    error = error_of(make_agent_on(http, "strict", deployment, **tool), 400)
    assert (error["code"], error["type"], error["param"]) == (
        "invalid_payload",
        "invalid_request_error",
        f"definition.tools[0].{field}",
    )
    assert message in error["message"]
    direct = {"model": "gpt-4.1", "tools": [{"type": "image_generation", "model": deployment, **tool}], "input": "x"}
    error = error_of(http.post("/openai/v1/responses", json=direct, headers={DEPLOYMENT_HEADER: deployment}), 400)
    assert (error["code"], error["param"]) == ("invalid_payload", f"tools[0].{field}") and message in error["message"]


def test_each_model_takes_its_own_sizes_and_qualities(http: httpx2.Client) -> None:
    for deployment, tool in (
        ("gpt-image-2", {"size": "3840x2160"}),
        ("gpt-image-2", {"size": "3840x1280", "quality": "high"}),
        ("gpt-image-1.5", {"size": "1536x1024", "input_fidelity": "high"}),
        ("flare", {"size": "2160x3840", "quality": "xhigh"}),
        ("future", {"quality": "max", "size": "2048x2048"}),
    ):
        reply = make_agent_on(http, "fine", deployment, **tool)
        assert reply.status_code == 200, (deployment, reply.text)
    assert make_agent_on(http, "wide", "gpt-image-2", size="2048x1152").status_code == 200
    _, wide = image_of(generate(http, name="wide"))
    assert wide.size == (2048, 1152)
    assert make_agent_on(http, "max", "flare", quality="max").status_code == 200
    reply = generate(http, name="max", deployment="flare")
    image_of(reply)
    assert reply.json()["tools"][0]["quality"] == "max"


def test_rules_bound_through_structured_inputs_are_checked_per_model(http: httpx2.Client) -> None:
    assert make_agent_on(http, "bound", "gpt-image-1.5", size="{{size}}").status_code == 200
    error = error_of(
        generate(http, name="bound", deployment="gpt-image-1.5", structured_inputs={"size": "2048x1152"}), 400
    )
    assert error["param"] == "agent.definition.tools[0].size" and "gpt-image-1.5 supports" in error["message"]


def test_a_retired_models_deployment_no_longer_answers(http: httpx2.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """UNVERIFIED shape: a retired model's deployment answers like a missing one (404 DeploymentNotFound)."""
    assert make_agent_on(http, "legacy", "old", size="1024x1024").status_code == 200, "the deployment still exists"
    error = error_of(generate(http, name="legacy", deployment="old"), 404)
    assert error["code"] == "DeploymentNotFound" and "'old'" in error["message"]
    direct = {"model": "gpt-4.1", "tools": [{"type": "image_generation", "model": "old"}], "input": "x"}
    assert error_of(http.post("/openai/v1/responses", json=direct, headers={DEPLOYMENT_HEADER: "old"}), 404)[
        "code"
    ] == ("DeploymentNotFound")
    monkeypatch.setattr(emulator_validation, "today", lambda: date(2026, 10, 22))
    image_of(generate(http, name="legacy", deployment="old"))
    refused = make_agent_on(http, "legacy", "old", size="2048x1152")
    assert "gpt-image-1 supports" in error_of(refused, 400)["message"], "before its retirement, its own rules"
