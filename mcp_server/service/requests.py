"""Building the Responses request of an image call: through an agent version, or directly.

Masks. The mask belongs to the image tool (`input_image_mask`), and with an agent the tool lives
in the agent version, while a request that references an agent may not carry `tools` (protocol
§3.2). `structured_inputs` placeholders are substituted only in an allowlist of fields that leaves
out every `image_generation` field (§3.4); Foundry answers them with 400 `invalid_payload` "The
supplied value is invalid." (`param: ""`). So a masked edit skips the agent from its first call:
a direct Responses call with `model` + `tools`, whose image tool carries the uploaded mask.

Refusals are recognised by their status, `code` and `param`, never by the wording of their message.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from mcp_server.errors import NotFoundError
from mcp_server.foundry.agents import INSTRUCTIONS, AgentRegistry, AgentVersionRef
from mcp_server.foundry.responses import REQUEST_TAG_KEY
from mcp_server.protocol import (
    AgentReference,
    CreateResponseRequest,
    ImageMask,
    InputMessage,
    InputText,
)
from mcp_server.service.calls import Call

DIRECT: Final = AgentVersionRef(name="", version="", config_hash="")
"""Marks a result produced by a direct `model` + `tools` call, without an agent."""

PREVIOUS_RESPONSE_PARAM: Final = "previous_response_id"
PREVIOUS_RESPONSE_CODES: Final = frozenset({"previous_response_not_found"})


async def version_for(registry: AgentRegistry, call: Call, image_deployment: str) -> AgentVersionRef:
    """The agent version that carries `call`'s image tool (a masked edit has none: it goes direct)."""
    return await registry.version_for(call.options.tool(image_deployment, edit=call.edit))


def message(call: Call) -> list[dict[str, Any]]:
    """The one user message: the prompt, then the input images."""
    content = [InputText(text=call.prompt).to_wire(), *call.parts]
    return [InputMessage(content=content).to_wire()]


def new_tag() -> dict[str, str]:
    """Metadata with a fresh tag, by which a create whose answer was lost is found again."""
    return {REQUEST_TAG_KEY: uuid.uuid4().hex}


def agent_request(call: Call, ref: AgentVersionRef) -> CreateResponseRequest:
    return CreateResponseRequest(
        agent_reference=AgentReference(name=ref.name, version=ref.version),
        input=message(call),
        store=True,
        previous_response_id=call.previous_response_id,
        metadata=new_tag(),
    )


def direct_request(call: Call, *, image_deployment: str, model_deployment: str) -> CreateResponseRequest:
    """The same call without an agent: the orchestrator model, the instructions and the tool in the request."""
    mask = ImageMask(file_id=call.mask_file_id) if call.mask_file_id else None
    tool = call.options.tool(image_deployment, edit=call.edit, mask=mask)
    return CreateResponseRequest(
        model=model_deployment,
        instructions=INSTRUCTIONS,
        tools=[tool.to_wire()],
        tool_choice={"type": "image_generation"},
        input=message(call),
        store=True,
        previous_response_id=call.previous_response_id,
        metadata=new_tag(),
    )


def is_previous_response_error(exc: NotFoundError) -> bool:
    """The earlier turn named by `previous_response_id` is gone (expired or deleted)."""
    return exc.upstream_param == PREVIOUS_RESPONSE_PARAM or exc.upstream_code in PREVIOUS_RESPONSE_CODES


def is_version_gone(exc: NotFoundError) -> bool:
    """A 404 that says the agent version used is gone. Not a deployment, not the earlier turn, and never a 404
    for a response (expired or deleted while it was polled or resumed): recreating the version would start a
    second, billed generation."""
    param = exc.upstream_param or ""
    return exc.code == "not_found" and (not param or param.startswith("agent")) and not is_previous_response_error(exc)
