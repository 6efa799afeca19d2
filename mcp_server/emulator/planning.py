"""Turns a Responses create request into a validated generation plan (protocol §3)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER, IMAGE_OPTIONS, AgentVersion

from .config import EmulatorConfig
from .errors import (
    deployment_not_found,
    generic_bad_request,
    invalid_payload,
    multi_invalid_payload,
    not_found,
    openai_error,
)
from .inputs import load_mask, open_image, parse_input
from .render import RenderSpec
from .state import EmulatorState
from .validation import (
    DEFAULT_IMAGE_MODEL,
    bind_placeholders,
    refuse_retired,
    structured_defaults,
    validate_image_tool,
    validate_metadata,
    validate_model_deployment,
    validate_tools,
)

_FORBIDDEN_WITH_AGENT = ("tools", "temperature", "top_p", "text")
_DEFAULT_QUALITY = "medium"


@dataclass
class Plan:
    response_id: str
    base: dict[str, Any]  # the Response JSON fields that never change
    prompt: str
    stream: bool
    background: bool
    input_items: list[dict[str, Any]]
    image_tool: dict[str, Any] | None = None
    spec: RenderSpec | None = None
    images: list[Image.Image] = field(default_factory=list[Image.Image])
    mask: Image.Image | None = None
    content_filter: str | None = None
    """An injected content-filter outcome: filter-failed, filter-call or filter-incomplete (see faults.py)."""
    agent_ref: dict[str, Any] | None = None
    """The agent reference (resolved version) every output item carries (protocol §9.3)."""


def resolve_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool as the service echoes it, with every default filled in (protocol §2 "Observed echo")."""
    resolved: dict[str, Any] = {"type": "image_generation", "model": tool.get("model") or DEFAULT_IMAGE_MODEL, "n": 1}
    for spec in IMAGE_OPTIONS:
        value = spec.echoed_default if tool.get(spec.name) is None else tool[spec.name]
        if value is not None:
            resolved[spec.name] = value
    if tool.get("input_image_mask") is not None:
        resolved["input_image_mask"] = tool["input_image_mask"]
    return resolved


def _agent_reference(body: dict[str, Any]) -> dict[str, Any] | None:
    ref = body.get("agent_reference") or body.get("agent")
    if ref is None:
        return None
    param = "agent_reference" if "agent_reference" in body else "agent"
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise invalid_payload("agent_reference must be an object with a 'name'.", param)
    version = ref.get("version")
    return {"type": "agent_reference", "name": ref["name"], **({"version": str(version)} if version else {})}


def _find_agent(ref: dict[str, Any], state: EmulatorState) -> AgentVersion:
    versions = state.agent_versions(ref["name"])
    if not versions:
        raise not_found(f"Agent {ref['name']!r} was not found.", "agent_reference.name")
    if "version" not in ref:
        return max(versions, key=lambda v: int(v.version))
    for version in versions:
        if version.version == ref["version"]:
            return version
    raise not_found(f"Version {ref['version']!r} of agent {ref['name']!r} was not found.", "agent_reference.version")


def _image_tool_index(tools: list[dict[str, Any]]) -> int | None:
    return next((i for i, t in enumerate(tools) if isinstance(t, dict) and t.get("type") == "image_generation"), None)


@dataclass(frozen=True)
class _Setup:
    """What the response runs with: the agent's definition (placeholders bound) or the request's own fields."""

    model: str
    tools: list[dict[str, Any]]
    tools_param: str
    instructions: Any
    tool_choice: Any
    temperature: Any
    top_p: Any


def _agent_setup(body: dict[str, Any], ref: dict[str, Any], state: EmulatorState) -> _Setup:
    present = [key for key in _FORBIDDEN_WITH_AGENT if key in body]
    if present:
        raise multi_invalid_payload([("Not allowed when agent is specified.", key) for key in present])
    agent = _find_agent(ref, state)
    ref["version"] = agent.version
    definition = agent.definition
    supplied = body.get("structured_inputs") or {}
    if not isinstance(supplied, dict):
        raise invalid_payload("structured_inputs must be an object.", "structured_inputs")
    bindings = {**structured_defaults(definition), **supplied}
    return _Setup(
        model=definition["model"],
        tools=bind_placeholders(definition.get("tools") or [], bindings),
        tools_param="agent.definition.tools",
        instructions=bind_placeholders(definition.get("instructions"), bindings),
        tool_choice=body.get("tool_choice") or definition.get("tool_choice") or "auto",
        temperature=definition.get("temperature", 1.0),
        top_p=definition.get("top_p", 1.0),
    )


def _direct_setup(body: dict[str, Any], config: EmulatorConfig) -> _Setup:
    model = validate_model_deployment(body.get("model"), config, "model")
    tools = body.get("tools") or []
    validate_tools(tools, config, "tools", allow_placeholders=False)
    return _Setup(
        model=model,
        tools=tools,
        tools_param="tools",
        instructions=body.get("instructions"),
        tool_choice=body.get("tool_choice") or "auto",
        temperature=body.get("temperature", 1.0),
        top_p=body.get("top_p", 1.0),
    )


def build_plan(body: dict[str, Any], headers: dict[str, str], state: EmulatorState, config: EmulatorConfig) -> Plan:
    ref = _agent_reference(body)
    setup = _agent_setup(body, ref, state) if ref is not None else _direct_setup(body, config)
    background = bool(body.get("background"))
    if background and body.get("store", True) is False:
        raise invalid_payload("Background mode requires store=true.", "background")
    metadata = validate_metadata(body.get("metadata"))

    index = _image_tool_index(setup.tools)
    image_tool = setup.tools[index] if index is not None else None
    if image_tool is not None:
        validate_image_tool(image_tool, config, f"{setup.tools_param}[{index}]", allow_placeholders=False)
        _check_deployment_header(headers, image_tool, config)

    parsed = parse_input(body.get("input"), state)
    images = [*_previous_image(body.get("previous_response_id"), state), *parsed.images]
    if body.get("stream") and config.refuse_image_streaming:
        # What Azure answered in 2025 (vercel/ai #9064); clients must fall back to non-streamed calls.
        raise openai_error(400, None, "ImageGen as a tool is not supported in streaming mode.", "stream")

    response_id = "resp_" + uuid.uuid4().hex
    plan = Plan(
        response_id=response_id,
        base=_base_response(response_id, ref, setup, image_tool, body, metadata),
        prompt=parsed.prompt,
        stream=bool(body.get("stream")),
        background=background,
        input_items=parsed.items,
        images=images,
        agent_ref=ref,
    )
    if image_tool is not None:
        _plan_image(plan, resolve_tool(image_tool), state, f"{setup.tools_param}[{index}]", config)
    return plan


def _previous_image(previous_id: object, state: EmulatorState) -> list[Image.Image]:
    """The image of the response this one follows up, if any: the first input of an edit."""
    if previous_id is None:
        return []
    previous = state.get_response(str(previous_id))
    if previous is None:
        raise not_found(f"Previous response with id {previous_id!r} not found.", "previous_response_id")
    if previous.image_bytes is None:
        return []
    return [open_image(previous.image_bytes, "previous_response_id")]


def _check_deployment_header(headers: dict[str, str], tool: dict[str, Any], config: EmulatorConfig) -> None:
    deployment = headers.get(IMAGE_DEPLOYMENT_HEADER, "").strip()
    if not deployment:
        raise generic_bad_request()
    if deployment not in config.image_deployments:
        raise deployment_not_found(deployment)
    expected = tool.get("model") or DEFAULT_IMAGE_MODEL
    if deployment != expected:
        raise invalid_payload(
            f"The {IMAGE_DEPLOYMENT_HEADER} header ({deployment!r}) must match the image_generation tool's model "
            f"deployment ({expected!r}).",
            IMAGE_DEPLOYMENT_HEADER,
        )
    refuse_retired(deployment, config)


def _plan_image(plan: Plan, tool: dict[str, Any], state: EmulatorState, param: str, config: EmulatorConfig) -> None:
    if tool.get("action") == "edit" and not plan.images:
        raise invalid_payload("action 'edit' requires an input image.", f"{param}.action")
    mask = tool.get("input_image_mask")
    if mask is not None:
        first = plan.images[0] if plan.images else None
        plan.mask = load_mask(mask, state, first, f"{param}.input_image_mask")
    size = "1024x1024" if tool["size"] == "auto" else tool["size"]
    width, height = (int(v) for v in size.split("x"))
    quality = _DEFAULT_QUALITY if tool["quality"] == "auto" else tool["quality"]
    background = "opaque" if tool["background"] == "auto" else tool["background"]
    action = (
        "edit" if tool.get("action") == "edit" or (tool.get("action") != "generate" and plan.images) else "generate"
    )
    plan.image_tool = {**tool, "size": size, "quality": quality, "background": background, "action": action}
    partials = tool["partial_images"] or (1 if config.unrequested_partial_image else 0)
    plan.spec = RenderSpec(
        prompt=plan.prompt,
        width=width,
        height=height,
        quality=quality,
        output_format=tool["output_format"],
        compression=tool["output_compression"],
        transparent=background == "transparent",
        partial_images=partials if plan.stream else 0,
        grain=config.grain,
    )


def _base_response(
    response_id: str,
    ref: dict[str, Any] | None,
    setup: _Setup,
    image_tool: dict[str, Any] | None,
    body: dict[str, Any],
    metadata: dict[str, str],
) -> dict[str, Any]:
    """The Response's fields, with the keys and types of the recorded one (protocol §9.3); a stream's carries
    `content_filters` (§4), and the optional request fields are echoed only when given."""
    tools = [resolve_tool(tool) if tool is image_tool else tool for tool in setup.tools]
    optional = ("previous_response_id", "max_output_tokens", "max_tool_calls")
    return {
        **{key: body[key] for key in optional if body.get(key) is not None},
        **({"content_filters": None} if body.get("stream") else {}),
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": None,
        "status": "queued",
        "background": bool(body.get("background")),
        "error": None,
        "incomplete_details": None,
        "instructions": setup.instructions,
        "model": setup.model,
        "agent_reference": ref,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": {"effort": "none"},
        "service_tier": "default",
        "temperature": setup.temperature,
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "top_logprobs": 0,
        "tool_choice": setup.tool_choice,
        "tools": tools,
        "top_p": setup.top_p,
        "truncation": "disabled",
        "usage": None,
        "metadata": metadata,
    }
