"""`AgentRegistry` on its own, against an in-memory agents service behind `httpx2.MockTransport`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest

from mcp_server.errors import NotFoundError
from mcp_server.foundry.agents import HASH_KEY, AgentRegistry, config_hash, definition_for
from mcp_server.foundry.http import AmbiguousRequestError, FoundryHttp
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.protocol import ImageGenerationTool, ImageMask

pytestmark = pytest.mark.anyio

AGENT = "image-agent"
MODEL = "gpt-4.1"
LOW = ImageGenerationTool(model="gpt-image-1", quality="low", size="1024x1024")
HIGH = ImageGenerationTool(model="gpt-image-1", quality="high", size="1536x1024")


def digest(tool: ImageGenerationTool, structured_inputs: dict[str, Any] | None = None) -> str:
    return config_hash(definition_for(MODEL, tool, structured_inputs))


@dataclass
class AgentsService:
    """Agent versions of one agent, newest first in listings; `lose_answers` cuts the next create answers."""

    versions: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    page_size: int = 100
    lose_answers: int = 0
    lose_before_creating: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    created: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    serial: int = 0
    """Version numbers are never reused, as on the service."""

    def add(self, metadata: dict[str, str]) -> dict[str, Any]:
        self.serial += 1
        number = str(self.serial)
        version: dict[str, Any] = {"object": "agent.version", "id": f"{AGENT}:{number}", "name": AGENT}
        version.update(version=number, metadata=metadata, created_at=1772609840 + self.serial, definition={})
        self.versions.append(version)
        return version

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.requests if m == method)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, str(request.url)))
        assert request.url.path == f"/api/projects/p/agents/{AGENT}/versions"
        assert request.url.params["api-version"] == "v1"
        if request.method == "GET":
            return self._list(request.url.params)
        body = json.loads(request.content)
        self.created.append(body)
        if self.lose_answers and self.lose_before_creating:
            self.lose_answers -= 1
            raise httpx2.ReadError("connection reset")
        version = self.add(body["metadata"])
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx2.ReadError("connection reset")
        return httpx2.Response(200, json=version)

    def _list(self, params: httpx2.QueryParams) -> httpx2.Response:
        if not self.versions:
            body = {"error": {"code": "not_found", "message": f"Agent {AGENT} not found", "param": None}}
            return httpx2.Response(404, json=body)
        newest_first = list(reversed(self.versions))
        if "after" in params:
            newest_first = newest_first[[v["id"] for v in newest_first].index(params["after"]) + 1 :]
        page = newest_first[: min(int(params["limit"]), self.page_size)]
        more = len(newest_first) > len(page)
        return httpx2.Response(200, json={"object": "list", "data": page, "last_id": page[-1]["id"], "has_more": more})


def registry_for(service: AgentsService) -> AgentRegistry:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(service), base_url="http://foundry/api/projects/p/")
    http = FoundryHttp(client, image_deployment="gpt-image-1", retry=RetryPolicy(attempts=1))
    return AgentRegistry(http, AGENT, MODEL)


async def test_an_existing_version_is_found_by_the_config_hash_in_its_metadata() -> None:
    service = AgentsService()
    service.add({"owner": "someone else"})
    service.add({HASH_KEY: digest(LOW)})
    service.add({HASH_KEY: digest(HIGH)})
    ref = await registry_for(service).version_for(LOW)
    assert (ref.name, ref.version, ref.config_hash) == (AGENT, "2", digest(LOW))
    assert service.count("POST") == 0


async def test_the_oldest_version_with_a_hash_wins() -> None:
    service = AgentsService()
    service.add({HASH_KEY: digest(LOW)})
    service.add({HASH_KEY: digest(LOW)})
    assert (await registry_for(service).version_for(LOW)).version == "1"


async def test_every_page_of_the_listing_is_read() -> None:
    service = AgentsService(page_size=2)
    service.add({HASH_KEY: digest(LOW)})
    for _ in range(4):
        service.add({})
    ref = await registry_for(service).version_for(LOW)
    assert ref.version == "1" and service.count("GET") == 3 and service.count("POST") == 0


async def test_a_missing_configuration_is_created_with_its_hash() -> None:
    service = AgentsService()
    ref = await registry_for(service).version_for(HIGH)
    assert ref.version == "1" and service.count("POST") == 1
    (body,) = service.created
    assert body["metadata"][HASH_KEY] == digest(HIGH)
    assert body["definition"] == definition_for(MODEL, HIGH).to_wire()
    assert body["description"].startswith("foundry-image-mcp image agent:")


async def test_the_mask_placeholder_declaration_is_part_of_the_configuration() -> None:
    service = AgentsService()
    masked = ImageGenerationTool(model="gpt-image-1", action="edit", input_image_mask=ImageMask(file_id="{{mask}}"))
    declaration = {"mask": {"description": "the mask", "required": True}}
    registry = registry_for(service)
    with_inputs = await registry.version_for(masked, declaration)
    without = await registry.version_for(masked)
    assert with_inputs.config_hash != without.config_hash and service.count("POST") == 2
    assert service.created[0]["definition"]["structured_inputs"] == declaration


async def test_versions_are_listed_once_per_process_and_each_configuration_created_once() -> None:
    service = AgentsService()
    registry = registry_for(service)
    low = await registry.version_for(LOW)
    high = await registry.version_for(HIGH)
    again = await registry.version_for(LOW)
    assert low == again and low != high
    assert service.count("GET") == 1 and service.count("POST") == 2


async def test_concurrent_first_calls_list_once_and_create_once() -> None:
    service = AgentsService()
    registry = registry_for(service)
    refs: list[Any] = []

    async def one() -> None:
        refs.append(await registry.version_for(LOW))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
    assert len(set(refs)) == 1
    assert service.count("GET") == 1 and service.count("POST") == 1


async def test_a_create_whose_answer_was_lost_is_looked_up_by_hash_and_not_repeated() -> None:
    service = AgentsService(lose_answers=1)
    ref = await registry_for(service).version_for(LOW)
    assert ref.version == "1"
    assert service.count("POST") == 1, "the version exists: creating it again would duplicate it"
    assert service.count("GET") == 2, "the first-use listing, then the look-up"


async def test_a_create_that_never_happened_is_sent_again_once() -> None:
    service = AgentsService(lose_answers=1, lose_before_creating=True)
    ref = await registry_for(service).version_for(LOW)
    assert ref.version == "1" and service.count("POST") == 2 and len(service.versions) == 1


async def test_two_lost_creates_give_up_as_ambiguous() -> None:
    service = AgentsService(lose_answers=2, lose_before_creating=True)
    with pytest.raises(AmbiguousRequestError):
        await registry_for(service).version_for(LOW)
    assert service.count("POST") == 2


async def test_a_forgotten_version_is_recreated_once() -> None:
    service = AgentsService()
    registry = registry_for(service)
    first = await registry.version_for(LOW)
    service.versions.clear()  # deleted upstream
    registry.forget(first)
    second = await registry.version_for(LOW)
    third = await registry.version_for(LOW)
    assert (first.version, second.version) == ("1", "2")
    assert second == third and service.count("POST") == 2
    assert service.count("GET") == 1, "forgetting one version does not list again"


async def test_forgetting_a_version_that_was_already_replaced_keeps_the_replacement() -> None:
    service = AgentsService()
    registry = registry_for(service)
    old = await registry.version_for(LOW)
    registry.forget(old)
    new = await registry.version_for(LOW)
    registry.forget(old)  # a late report about the old version
    assert await registry.version_for(LOW) == new and service.count("POST") == 2


async def test_a_listing_error_other_than_404_is_raised() -> None:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(403, json={"error": {"code": "PermissionDenied", "message": "no"}})

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handle), base_url="http://foundry/")
    registry = AgentRegistry(FoundryHttp(client, image_deployment="x", retry=RetryPolicy(attempts=1)), AGENT, MODEL)
    with pytest.raises(Exception) as caught:
        await registry.version_for(LOW)
    assert not isinstance(caught.value, NotFoundError) and getattr(caught.value, "status", None) == 403


# ------------------------------------------------------------------ the orchestrator, found per process


def bare_registry(service: AgentsService) -> AgentRegistry:
    """A registry as the server builds it: no orchestrator yet (the deployments are found at the first call)."""
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(service), base_url="http://foundry/api/projects/p/")
    return AgentRegistry(FoundryHttp(client, retry=RetryPolicy(attempts=1)), AGENT)


async def test_the_orchestrator_is_part_of_the_configuration() -> None:
    service = AgentsService()
    registry = bare_registry(service)
    chat = await registry.version_for(LOW, model="gpt-4.1")
    other = await registry.version_for(LOW, model="gpt-4o")
    assert chat.config_hash == digest(LOW) and chat != other
    assert [body["definition"]["model"] for body in service.created] == ["gpt-4.1", "gpt-4o"]


async def test_views_on_one_orchestrator_share_the_versions_found_and_made() -> None:
    service = AgentsService()
    service.add({HASH_KEY: digest(LOW)})
    registry = bare_registry(service)
    first = await registry.using(MODEL).version_for(LOW)
    second = await registry.using(MODEL).version_for(HIGH)
    again = await registry.using(MODEL).version_for(HIGH)
    assert (first.version, second.version, again.version) == ("1", "2", "2")
    assert service.count("GET") == 1 and service.count("POST") == 1, "one listing, one create, for every view"
    registry.using(MODEL).forget(second)
    assert (await registry.version_for(HIGH, model=MODEL)).version == "3"


async def test_a_version_without_an_orchestrator_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="orchestrator"):
        await bare_registry(AgentsService()).version_for(LOW)
