"""Agent versions: one per distinct image-tool configuration, created once and found again.

Foundry rejects per-request `tools` when `agent_reference` is sent, so every image option
has to live in an agent version. Each version we create carries a hash of its definition
in its metadata; on the first call after a start, the existing versions are listed once and
indexed by that hash, so a restarted server reuses them instead of creating new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from mcp_server import __version__
from mcp_server.errors import NotFoundError
from mcp_server.foundry.http import AmbiguousRequestError, FoundryHttp, validate_body
from mcp_server.protocol import (
    AGENTS_API_VERSION,
    AgentVersion,
    AgentVersionList,
    CreateAgentVersionRequest,
    ImageGenerationTool,
    PromptAgentDefinition,
)

logger = logging.getLogger(__name__)

HASH_KEY: Final = "foundry-image-mcp.config"
INSTRUCTIONS: Final = (
    "You create images with the image_generation tool. Call the tool exactly once per request, using the "
    "user's message as the image prompt without changing its meaning, and never ask questions back. "
    "When images are attached, treat the request as an edit of those images."
)
LIST_PAGE_SIZE: Final = 100


@dataclass(frozen=True)
class AgentVersionRef:
    name: str
    version: str
    config_hash: str


def definition_for(
    model_deployment: str, tool: ImageGenerationTool, structured_inputs: dict[str, Any] | None = None
) -> PromptAgentDefinition:
    return PromptAgentDefinition(
        model=model_deployment,
        instructions=INSTRUCTIONS,
        tools=[tool.to_wire()],
        tool_choice={"type": "image_generation"},
        structured_inputs=structured_inputs,
    )


def config_hash(definition: PromptAgentDefinition) -> str:
    canonical = json.dumps(definition.to_wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def describe(tool: ImageGenerationTool) -> str:
    fields = tool.to_wire()
    fields.pop("type", None)
    return "foundry-image-mcp image agent: " + ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))[:480]


@dataclass
class _Index:
    """What every view of one agent's registry shares: versions by config hash, and the locks around them."""

    by_hash: dict[str, str] = field(default_factory=dict[str, str])
    indexed: bool = False
    locks: dict[str, anyio.Lock] = field(default_factory=dict[str, anyio.Lock])
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class AgentRegistry:
    """Maps image-tool configurations to agent versions of one agent.

    The orchestrator model deployment of a version is part of its configuration: pass it to `version_for`
    (`model=`), or take a view of the registry with `using(model)`. The deployment is found per process
    by the service (`mcp_server.service.deployments`), after the registry is built.
    """

    def __init__(self, http: FoundryHttp, agent_name: str, model_deployment: str | None = None) -> None:
        self._http = http
        self.agent_name = agent_name
        self.model_deployment = model_deployment
        """The orchestrator deployment `version_for` uses when it is given none."""
        self._index = _Index()

    def using(self, model_deployment: str) -> AgentRegistry:
        """This registry (the same versions, found or created once) with `model_deployment` as orchestrator."""
        view = AgentRegistry(self._http, self.agent_name, model_deployment)
        view._index = self._index
        return view

    @property
    def _versions_path(self) -> str:
        return f"agents/{self.agent_name}/versions"

    async def version_for(
        self, tool: ImageGenerationTool, structured_inputs: dict[str, Any] | None = None, *, model: str | None = None
    ) -> AgentVersionRef:
        """The agent version whose single tool is `tool` and whose orchestrator is `model` (default: the
        registry's `model_deployment`), creating it on first use.

        `structured_inputs` declares the `{{placeholders}}` used in the tool's fields.
        """
        model = model or self.model_deployment
        if not model:
            raise ValueError("no orchestrator model deployment: pass model= or use using(model)")
        definition = definition_for(model, tool, structured_inputs)
        digest = config_hash(definition)
        index = self._index
        known = index.by_hash.get(digest)
        if known is not None:
            return AgentVersionRef(self.agent_name, known, digest)
        await self._index_existing()
        lock = index.locks.setdefault(digest, anyio.Lock())
        async with lock:
            known = index.by_hash.get(digest)
            if known is None:
                known = await self._create(definition, digest, tool)
                index.by_hash[digest] = known
        return AgentVersionRef(self.agent_name, known, digest)

    def forget(self, ref: AgentVersionRef) -> None:
        """Drop a version that the service no longer has, so the next call recreates it."""
        if self._index.by_hash.get(ref.config_hash) == ref.version:
            del self._index.by_hash[ref.config_hash]

    async def _index_existing(self) -> None:
        index = self._index
        if index.indexed:
            return
        async with index.lock:
            if index.indexed:
                return
            for version in await self._list_versions():
                digest = version.metadata.get(HASH_KEY)
                # Oldest first wins: the list is newest-first, so later entries overwrite.
                if digest:
                    index.by_hash[digest] = version.version
            index.indexed = True
            logger.info("Agent %r: %d reusable image configurations found", self.agent_name, len(index.by_hash))

    async def _list_versions(self) -> list[AgentVersion]:
        versions: list[AgentVersion] = []
        params = {"api-version": AGENTS_API_VERSION, "limit": str(LIST_PAGE_SIZE), "order": "desc"}
        while True:
            try:
                body = await self._http.request_json(
                    "GET", self._versions_path, params=params, what="list the image agent's versions"
                )
            except NotFoundError:
                return versions  # the agent does not exist yet: its first version creates it
            page = validate_body(AgentVersionList, body, "agent version list")
            versions.extend(page.data)
            if not page.has_more or not page.last_id or not page.data:
                return versions
            params = {**params, "after": page.last_id}

    async def _create(self, definition: PromptAgentDefinition, digest: str, tool: ImageGenerationTool) -> str:
        request = CreateAgentVersionRequest(
            definition=definition.to_wire(),
            description=describe(tool),
            metadata={HASH_KEY: digest, "created-by": f"foundry-image-mcp {__version__}"},
        )
        for attempt in (1, 2):
            try:
                body = await self._http.request_json(
                    "POST",
                    self._versions_path,
                    params={"api-version": AGENTS_API_VERSION},
                    json_body=request.to_wire(),
                    idempotent=False,
                    what="create an image agent version",
                )
                break
            except AmbiguousRequestError:
                # The answer was lost: the version may exist. Look before creating another one.
                existing = {v.metadata.get(HASH_KEY): v.version for v in await self._list_versions()}
                if digest in existing:
                    return existing[digest]
                if attempt == 2:
                    raise
        created = validate_body(AgentVersion, body, "agent version")
        logger.info("Created agent version %s:%s for %s", created.name, created.version, describe(tool))
        return created.version
