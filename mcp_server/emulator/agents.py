"""Agents CRUD of the Foundry data plane (protocol §1.2)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from mcp_server.protocol import AGENTS_API_VERSION, AgentVersion

from .context import Ctx
from .errors import foundry_error, invalid_payload, not_found, template_refused
from .paging import page
from .validation import validate_agent_name, validate_definition, validate_metadata


def _placeholder_in_image_tool(definition: object) -> bool:
    tools = definition.get("tools") if isinstance(definition, dict) else None
    images = [t for t in tools or [] if isinstance(t, dict) and t.get("type") == "image_generation"]
    return any("{{" in json.dumps(tool) for tool in images)


def _create(ctx: Ctx, name: str, body: dict[str, Any]) -> AgentVersion:
    validate_agent_name(name)
    if not ctx.config.image_tool_placeholders and _placeholder_in_image_tool(body.get("definition")):
        # `structured_inputs` do not reach image-tool fields (protocol §3.4): the recorded refusal, verbatim.
        raise template_refused()
    definition = validate_definition(body.get("definition"), ctx.config)
    metadata = validate_metadata(body.get("metadata"))
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_payload("description must be a string.", "description")

    def build(version: str) -> AgentVersion:
        return AgentVersion(
            id=f"{name}:{version}",
            name=name,
            version=version,
            description=description,
            metadata=metadata,
            created_at=int(time.time()),
            definition=definition,
            status="active",
        )

    return ctx.state.add_agent_version(name, build)


def _details(name: str, versions: list[AgentVersion]) -> dict[str, Any]:
    latest = max(versions, key=lambda v: int(v.version))
    return {"object": "agent", "id": name, "name": name, "versions": {"latest": latest.to_wire()}}


def _versions_or_404(ctx: Ctx, name: str) -> list[AgentVersion]:
    versions = ctx.state.agent_versions(name)
    if not versions:
        raise not_found(f"Agent {name!r} was not found.", "agent_name")
    return versions


async def create_version(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    version = _create(ctx, ctx.params["name"], ctx.json_object())
    return JSONResponse(version.to_wire())


async def create_agent(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    body = ctx.json_object()
    name = body.get("name")
    if not isinstance(name, str):
        raise invalid_payload("name is required.", "name")
    if ctx.state.agent_versions(name):
        raise foundry_error(409, "conflict", f"Agent {name!r} already exists; create a new version instead.", "name")
    _create(ctx, name, body)
    return JSONResponse(_details(name, ctx.state.agent_versions(name)))


async def get_agent(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    name = ctx.params["name"]
    return JSONResponse(_details(name, _versions_or_404(ctx, name)))


async def list_agents(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    agents = [_details(name, ctx.state.agent_versions(name)) for name in ctx.state.agent_names()]
    agents = [a for a in agents if a["versions"]]
    return JSONResponse(page(ctx, agents, "id"))


async def list_versions(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    versions = sorted(_versions_or_404(ctx, ctx.params["name"]), key=lambda v: int(v.version))
    return JSONResponse(page(ctx, [v.to_wire() for v in versions], "id"))


def _find_version(ctx: Ctx) -> AgentVersion:
    name, number = ctx.params["name"], ctx.params["version"]
    for version in _versions_or_404(ctx, name):
        if version.version == number:
            return version
    raise not_found(f"Version {number!r} of agent {name!r} was not found.", "agent_version")


async def get_version(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    return JSONResponse(_find_version(ctx).to_wire())


async def delete_version(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    version = _find_version(ctx)
    ctx.state.delete_agent_version(version.name, version.version)
    body = {"object": "agent.version.deleted", "name": version.name, "version": version.version, "deleted": True}
    return JSONResponse(body)


async def delete_agent(ctx: Ctx) -> Response:
    ctx.require_api_version(AGENTS_API_VERSION)
    name = ctx.params["name"]
    if not ctx.state.delete_agent(name):
        raise not_found(f"Agent {name!r} was not found.", "agent_name")
    return JSONResponse({"object": "agent.deleted", "name": name, "deleted": True})
