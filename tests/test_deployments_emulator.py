"""The emulator's deployments API against the recorded shape (REC-IMG entry 0, protocol §1.6 and §7.5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

RECORDING = Path(__file__).parent / "data" / "foundry_v1_image_generation_2026-03-04.json"
HEADERS = {"api-key": "k"}
PROJECT = {"chat": "gpt-4.1", "pictures": "gpt-image-1.5", "emb": "text-embedding-3-small", "new": "gpt-image-2"}


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorConfig(deployments=PROJECT)) as running:
        yield running


def get(emu: RunningEmulator, path: str, **params: str) -> httpx2.Response:
    return httpx2.get(f"{emu.endpoint}{path}", params={"api-version": "v1", **params}, headers=HEADERS)


def test_one_deployment_has_the_recorded_shape_and_headers(emu: RunningEmulator) -> None:
    recorded = json.loads(RECORDING.read_bytes())["Entries"][0]
    answer = get(emu, "/deployments/pictures")
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == list(recorded["ResponseBody"]), "the same keys, in the same order"
    assert body == {
        **recorded["ResponseBody"],
        "name": "pictures",
        "modelName": "gpt-image-1.5",
        "sku": {"name": "GlobalStandard", "capacity": 60},
    }, "gpt-image-1.5, version 2025-12-16, as recorded (the sanitizer mangled modelName)"
    assert answer.headers["x-ms-region"] and answer.headers["apim-request-id"]
    assert "x-request-id" not in answer.headers
    chat = get(emu, "/deployments/chat").json()
    assert (chat["capabilities"], chat["modelVersion"], chat["sku"]["name"]) == (
        {"chat_completion": "true"},
        "2025-04-14",
        "GlobalStandard",
    )


def test_an_unknown_deployment_is_a_404_in_the_foundry_error_shape(emu: RunningEmulator) -> None:
    answer = get(emu, "/deployments/nope")
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert (error["code"], error["type"], error["param"], error["details"]) == (
        "not_found",
        "invalid_request_error",
        None,
        [],
    )
    assert "nope" in error["message"] and len(error["additionalInfo"]["request_id"]) == 32


def test_the_list_holds_every_deployment_and_filters_by_model(emu: RunningEmulator) -> None:
    listed = get(emu, "/deployments").json()
    assert set(listed) == {"value"}, "no nextLink when everything fits on one page"
    assert {item["name"]: item["modelName"] for item in listed["value"]} == PROJECT
    only = get(emu, "/deployments", modelName="gpt-image-2").json()["value"]
    assert [item["name"] for item in only] == ["new"]
    assert len(get(emu, "/deployments", deploymentType="ModelDeployment").json()["value"]) == len(PROJECT)


def test_the_list_pages_on_next_link() -> None:
    with start_emulator(EmulatorConfig(deployments=PROJECT, deployments_page_size=3)) as emu:
        first = get(emu, "/deployments").json()
        second = httpx2.get(first["nextLink"], headers=HEADERS).json()
    assert len(first["value"]) == 3 and first["nextLink"].startswith(emu.endpoint + "/deployments?")
    assert len(second["value"]) == 1 and "nextLink" not in second


def test_the_api_version_is_required(emu: RunningEmulator) -> None:
    answer = httpx2.get(f"{emu.endpoint}/deployments", headers=HEADERS)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "api-version"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_the_deployments_api_can_be_refused(status: int) -> None:
    with start_emulator(EmulatorConfig(deployments_api_status=status)) as emu:
        assert get(emu, "/deployments").status_code == status
        assert get(emu, "/deployments/gpt-image-2").status_code == status
        assert get(emu, "/agents/x").status_code == 404, "only the deployments API is refused"


def test_a_refusal_status_must_be_one_a_project_gives() -> None:
    with pytest.raises(ValueError, match="deployments_api_status"):
        EmulatorConfig(deployments_api_status=500)
