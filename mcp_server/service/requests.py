"""Building the Responses request of an image call: through an agent version, or directly.

Masks. The mask belongs to the image tool (`input_image_mask`), and with an agent the tool
lives in the agent version, so a mask per call would mean an agent version per mask. Instead
a masked edit uses an agent version whose mask is a structured-input placeholder,
`{"file_id": "{{mask_file_id}}"}`, bound per request through `structured_inputs` to the
uploaded mask: one version per option set, reused for every mask. Whether Foundry binds
placeholders inside image-tool fields is unverified, so when the service refuses them the
caller switches to a direct Responses call with `model` + `tools`, which can carry the mask
itself.

Refusals are recognised by their status, `code` and `param`, never by the wording of their message.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from mcp_server.errors import NotFoundError, ServiceRefusedError
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

MASK_INPUT: Final = "mask_file_id"

MASK_INPUT_DECLARATION: Final = {
    MASK_INPUT: {"description": "File id of the uploaded edit mask (PNG with alpha).", "required": True}
}

DIRECT: Final = AgentVersionRef(name="", version="", config_hash="")
"""Marks a result produced by a direct `model` + `tools` call, without an agent."""

PREVIOUS_RESPONSE_PARAM: Final = "previous_response_id"
PREVIOUS_RESPONSE_CODES: Final = frozenset({"previous_response_not_found"})
PLACEHOLDER_PARAM: Final = re.compile(r"(^|\.)(tools(\[\d+\])?(\.input_image_mask(\.file_id)?)?|structured_inputs\S*)$")
"""Where a refusal of the mask placeholder points: the image tool, its mask, or the structured inputs."""


async def version_for(registry: AgentRegistry, call: Call, image_deployment: str) -> AgentVersionRef:
    """The agent version that carries `call`'s image tool; a masked edit's mask is a placeholder in it."""
    if call.mask_file_id:
        tool = call.options.tool(image_deployment, edit=True, mask=ImageMask(file_id="{{mask_file_id}}"))
        return await registry.version_for(tool, MASK_INPUT_DECLARATION)
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
        structured_inputs={MASK_INPUT: call.mask_file_id} if call.mask_file_id else None,
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
    """A 404 that says the agent version used is gone, rather than a deployment or the earlier turn."""
    return exc.code != "deployment_not_found" and not is_previous_response_error(exc)


def is_placeholder_refusal(exc: ServiceRefusedError) -> bool:
    """A 400 `invalid_payload` refusing the mask placeholder: Foundry's own form names no param, the
    emulator's names the tool field."""
    if exc.status != 400 or exc.upstream_code != "invalid_payload":
        return False
    param = exc.upstream_param or ""
    return not param or PLACEHOLDER_PARAM.search(param) is not None
