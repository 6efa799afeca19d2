"""The deployments API client (`foundry.deployments`) and discovery (`service.deployments`), against an
in-memory project behind `httpx2.MockTransport`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_server.errors import ConfigurationError, ServiceRefusedError, UnexpectedResponseError
from mcp_server.foundry.deployments import DeploymentsClient
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.protocol.models import is_image_model
from mcp_server.service.deployments import DeploymentResolver, ResolvedDeployments

pytestmark = pytest.mark.anyio

RECORDING = Path(__file__).parent / "data" / "foundry_v1_image_generation_2026-03-04.json"
BASE = "https://res.services.ai.azure.com/api/projects/p/"
PATH = "/api/projects/p/deployments"
IMAGE_VAR = "AZURE_AI_IMAGE_DEPLOYMENT_NAME"
MODEL_VAR = "AZURE_AI_MODEL_DEPLOYMENT_NAME"
LOGGER = "mcp_server.service.deployments"


def http_for(handler: Any) -> FoundryHttp:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url=BASE)
    return FoundryHttp(client, retry=RetryPolicy(attempts=1))


def body_of(name: str, model: str) -> dict[str, Any]:
    chat = {"chat_completion": "true"}
    return {
        "name": name,
        "type": "ModelDeployment",
        "modelName": model,
        "modelVersion": "1",
        "modelPublisher": "OpenAI",
        "capabilities": {} if is_image_model(model) else chat,
        "sku": {"name": "GlobalStandard", "capacity": 10},
    }


# ------------------------------------------------------------------ the client


async def test_get_reads_the_recorded_deployment_body() -> None:
    entry = json.loads(RECORDING.read_bytes())["Entries"][0]
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=entry["ResponseBody"], headers=entry["ResponseHeaders"])

    deployment = await DeploymentsClient(http_for(handler)).get("sanitized-gpt-image")
    (request,) = seen
    assert (request.method, request.url.path, dict(request.url.params)) == (
        "GET",
        f"{PATH}/sanitized-gpt-image",
        {"api-version": "v1"},
    )
    assert str(request.url).split("?")[0] == entry["RequestUri"].split("?")[0].replace("Sanitized", "res").replace(
        "sanitized-project-name", "p"
    )
    assert (deployment.name, deployment.type, deployment.model_version) == (
        "sanitized-gpt-image",
        "ModelDeployment",
        "2025-12-16",
    )
    assert deployment.capabilities == {} and deployment.sku is not None and deployment.sku.capacity == 60
    # The sanitizer wrote "sanitized-gpt-image" for "gpt-image-1" (protocol §9.0): the model is gpt-image-1.5.
    assert deployment.model_name is not None
    assert is_image_model(deployment.model_name.replace("sanitized-gpt-image", "gpt-image-1"))


async def test_a_name_is_quoted_into_the_path() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.raw_path.decode())
        return httpx2.Response(200, json=body_of("a b/c", "gpt-image-2"))

    await DeploymentsClient(http_for(handler)).get("a b/c")
    assert seen == [f"{PATH}/a%20b%2Fc?api-version=v1"]


async def test_the_list_follows_next_link_absolute_or_relative_and_keeps_its_query() -> None:
    pages = {
        None: {"value": [body_of("gpt-4.1", "gpt-4.1")], "nextLink": f"{BASE}deployments?$skipToken=one"},
        "one": {
            "value": [{**body_of("img", "gpt-image-2"), "newField": {"x": 1}}],
            "nextLink": f"{PATH}?api-version=v1&$skipToken=two",
        },
        "two": {"value": [body_of("emb", "text-embedding-3-large")], "unknown": True},
    }
    seen: list[httpx2.URL] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url)
        assert request.url.path == PATH and request.url.params["api-version"] == "v1"
        return httpx2.Response(200, json=pages[request.url.params.get("$skipToken")])

    deployments = await DeploymentsClient(http_for(handler)).list_all()
    assert [(d.name, d.model_name) for d in deployments] == [
        ("gpt-4.1", "gpt-4.1"),
        ("img", "gpt-image-2"),
        ("emb", "text-embedding-3-large"),
    ]
    assert [url.params.get("$skipToken") for url in seen] == [None, "one", "two"]
    assert {url.host for url in seen} == {"res.services.ai.azure.com"}


async def test_a_next_link_to_another_host_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.host)
        return httpx2.Response(200, json={"value": [], "nextLink": "https://elsewhere.example.com/deployments"})

    with pytest.raises(UnexpectedResponseError, match="another host"):
        await DeploymentsClient(http_for(handler)).list_all()
    assert seen == ["res.services.ai.azure.com"]


# ------------------------------------------------------------------ discovery


@dataclass
class Project:
    """A project's deployments API: name -> model; `refuse` answers every request with that status."""

    deployments: dict[str, str] = field(default_factory=dict[str, str])
    refuse: int | None = None
    fail_next: int = 0
    delay: float = 0.0
    requests: list[str] = field(default_factory=list[str])

    def count(self, kind: str) -> int:
        return sum(1 for seen in self.requests if seen == kind or (kind == "get" and seen.startswith("get ")))

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        name = request.url.path.removeprefix(PATH).strip("/")
        self.requests.append(f"get {name}" if name else "list")
        await anyio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            return httpx2.Response(500, json={"error": {"code": "server_error", "message": "boom"}})
        if self.refuse is not None:
            code = {401: "PermissionDenied", 403: "PermissionDenied", 404: "not_found"}[self.refuse]
            return httpx2.Response(self.refuse, json={"error": {"code": code, "message": "no"}})
        if not name:
            return httpx2.Response(200, json={"value": [body_of(n, m) for n, m in self.deployments.items()]})
        if name not in self.deployments:
            missing = {"error": {"code": "not_found", "message": f"Deployment {name} not found"}}
            return httpx2.Response(404, json=missing)
        return httpx2.Response(200, json=body_of(name, self.deployments[name]))


def resolver(project: Project, image: str | None = None, model: str | None = None) -> DeploymentResolver:
    return DeploymentResolver(DeploymentsClient(http_for(project)), image_deployment=image, model_deployment=model)


def names(resolved: ResolvedDeployments) -> tuple[str, str, str, str | None]:
    return (resolved.image_deployment, resolved.image_model, resolved.model_deployment, resolved.orchestrator.model)


async def test_one_image_and_one_orchestrator_deployment_are_found_with_one_listing() -> None:
    project = Project({"chat": "gpt-4.1-mini", "pictures": "gpt-image-2", "emb": "text-embedding-3-small"})
    found = await resolver(project).resolve()
    assert names(found) == ("pictures", "gpt-image-2", "chat", "gpt-4.1-mini")
    assert (found.image.how, found.orchestrator.how, found.refused) == ("discovered", "discovered", None)
    assert project.requests == ["list"]


@pytest.mark.parametrize(
    ("deployments", "variable", "listed"),
    [
        (
            {"a": "gpt-image-1.5", "b": "gpt-image-2", "chat": "gpt-4.1"},
            IMAGE_VAR,
            ["a -> gpt-image-1.5", "b -> gpt-image-2"],
        ),
        ({"chat": "gpt-4.1", "o": "o3", "img": "gpt-image-2"}, MODEL_VAR, ["chat -> gpt-4.1", "o -> o3"]),
    ],
)
async def test_several_candidates_are_an_error_that_lists_them_and_names_the_variable(
    deployments: dict[str, str], variable: str, listed: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await resolver(Project(deployments)).resolve()
    text = str(caught.value)
    assert all(entry in text for entry in listed) and variable in text, text
    assert caught.value.code == "configuration"


@pytest.mark.parametrize(
    ("deployments", "variable"),
    [({"chat": "gpt-4.1", "emb": "text-embedding-3-small"}, IMAGE_VAR), ({"img": "gpt-image-2"}, MODEL_VAR), ({}, "")],
)
async def test_no_candidate_is_an_error_that_lists_what_the_project_has(
    deployments: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await resolver(Project(deployments)).resolve()
    text = str(caught.value)
    assert f"{variable or IMAGE_VAR}" in text and "has no deployment" in text, text
    assert all(f"{name} -> {model}" in text for name, model in deployments.items()), text
    assert deployments or "no deployments" in text


async def test_names_given_are_looked_up_once_per_process() -> None:
    project = Project({"pictures": "gpt-image-1-mini", "chat": "gpt-4o", "other": "gpt-image-2"})
    found = resolver(project, image="pictures", model="chat")
    first = await found.resolve()
    assert names(first) == ("pictures", "gpt-image-1-mini", "chat", "gpt-4o")
    assert (first.image.how, first.orchestrator.how) == ("given", "given")
    assert await found.resolve() is first
    assert project.requests == ["get pictures", "get chat"]


async def test_one_name_given_and_one_discovered() -> None:
    project = Project({"a": "gpt-image-1.5", "b": "gpt-image-2", "chat": "gpt-4.1"})
    found = await resolver(project, image="b").resolve()
    assert names(found) == ("b", "gpt-image-2", "chat", "gpt-4.1")
    assert project.requests == ["get b", "list"]


async def test_a_name_given_that_the_project_lacks_lists_what_it_has() -> None:
    project = Project({"img": "gpt-image-2", "chat": "gpt-4.1"})
    with pytest.raises(ConfigurationError) as caught:
        await resolver(project, image="gpt-image-1").resolve()
    text = str(caught.value)
    assert "'gpt-image-1'" in text and IMAGE_VAR in text, text
    assert "img -> gpt-image-2" in text and "chat -> gpt-4.1" in text
    assert (caught.value.code, caught.value.status, caught.value.upstream_code) == ("configuration", 404, "not_found")
    assert project.requests == ["get gpt-image-1", "list"]


@pytest.mark.parametrize(("image", "model", "variable"), [("chat", None, IMAGE_VAR), (None, "img", MODEL_VAR)])
async def test_a_name_given_for_the_wrong_kind_of_model_is_refused(
    image: str | None, model: str | None, variable: str
) -> None:
    project = Project({"img": "gpt-image-2", "chat": "gpt-4.1"})
    with pytest.raises(ConfigurationError) as caught:
        await resolver(project, image=image, model=model).resolve()
    assert variable in str(caught.value) and "which is not an" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refusing_deployments_api_falls_back_to_the_names_given_and_says_so_once(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    project = Project({"img": "gpt-image-2", "chat": "gpt-4.1"}, refuse=status)
    found = resolver(project, image="img", model="chat")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        first = await found.resolve()
        second = await found.resolve()
    assert second is first
    assert names(first) == ("img", "img", "chat", None)
    assert first.refused is not None and first.refused.status == status
    assert project.count("list") == (1 if status == 404 else 0), "a 404 on one name asks the listing which it is"
    refusals = [r for r in caplog.records if r.name == LOGGER and "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert len(project.requests) == (2 if status == 404 else 1), "the refusal is not asked about again"


@pytest.mark.parametrize("given", [{}, {"image": "img"}, {"model": "chat"}])
async def test_a_refusing_api_with_a_name_missing_is_an_error_naming_the_variable(given: dict[str, str]) -> None:
    project = Project({"img": "gpt-image-2", "chat": "gpt-4.1"}, refuse=403)
    found = resolver(project, **given)
    for _ in range(2):
        with pytest.raises(ConfigurationError) as caught:
            await found.resolve()
        text = str(caught.value)
        assert "refused (HTTP 403" in text, text
        assert (IMAGE_VAR in text) == ("image" not in given) and (MODEL_VAR in text) == ("model" not in given)
    assert len(project.requests) == 1


async def test_concurrent_first_calls_share_one_lookup() -> None:
    project = Project({"img": "gpt-image-2", "chat": "gpt-4.1"}, delay=0.05)
    found = resolver(project)
    results: list[ResolvedDeployments] = []

    async def call() -> None:
        results.append(await found.resolve())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert project.requests == ["list"]
    assert len(results) == 10 and all(result is results[0] for result in results)


async def test_failures_are_not_kept_the_next_call_looks_again() -> None:
    project = Project({"a": "gpt-image-2", "b": "gpt-image-1.5", "chat": "gpt-4.1"}, fail_next=1)
    found = resolver(project)
    with pytest.raises(ServiceRefusedError):
        await found.resolve()
    with pytest.raises(ConfigurationError):
        await found.resolve()
    del project.deployments["b"]
    assert names(await found.resolve()) == ("a", "gpt-image-2", "chat", "gpt-4.1")
    assert project.requests == ["list", "list", "list"]
