"""Wire models of the Foundry Agent Service and its OpenAI-compatible Responses API.

Every model tolerates unknown fields: the service adds fields over time and an older
client must keep working. Only what this project reads or writes is declared.
See ../shared/docs/foundry-protocol.md for the sources behind each field.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

AGENTS_API_VERSION: Final = "v1"
"""`api-version` sent on every agents call (azure-ai-projects 2.x GA)."""

LEGACY_RESPONSES_API_VERSION: Final = "2025-11-15-preview"
"""api-version of the preview route `/openai/responses`, still served by the emulator."""

TOKEN_SCOPE: Final = "https://ai.azure.com/.default"
IMAGE_DEPLOYMENT_HEADER: Final = "x-ms-oai-image-generation-deployment"

MAX_PROMPT_CHARS: Final = 32_000
MAX_INPUT_IMAGE_URL_CHARS: Final = 20_971_520
METADATA_MAX_PAIRS: Final = 16
METADATA_KEY_MAX: Final = 64
METADATA_VALUE_MAX: Final = 512
AGENT_NAME_MAX: Final = 63
AGENT_NAME_PATTERN: Final = r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$"
"""Agent names: letters, digits and inner hyphens (the service's rule; config and emulator share it)."""


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object to send: nulls dropped, as the Azure SDKs do."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# ---------------------------------------------------------------- agents


class ImageMask(WireModel):
    image_url: str | None = None
    file_id: str | None = None


class ImageGenerationTool(WireModel):
    """The `image_generation` tool as it appears in an agent definition."""

    type: Literal["image_generation"] = "image_generation"
    model: str | None = None
    size: str | None = None
    quality: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    background: str | None = None
    moderation: str | None = None
    partial_images: int | None = None
    input_fidelity: str | None = None
    input_image_mask: ImageMask | None = None
    action: str | None = None


class PromptAgentDefinition(WireModel):
    kind: Literal["prompt"] = "prompt"
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]])
    tool_choice: str | dict[str, Any] | None = None
    structured_inputs: dict[str, Any] | None = None


class CreateAgentVersionRequest(WireModel):
    definition: dict[str, Any]
    description: str | None = None
    metadata: dict[str, str] | None = None


class AgentVersion(WireModel):
    object: str = "agent.version"
    id: str
    name: str
    version: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict[str, str])
    created_at: int = 0
    definition: dict[str, Any] = Field(default_factory=dict[str, Any])
    status: str | None = None


class AgentVersionList(WireModel):
    object: str = "list"
    data: list[AgentVersion] = Field(default_factory=list[AgentVersion])
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class Agent(WireModel):
    object: str = "agent"
    id: str
    name: str
    versions: dict[str, AgentVersion] = Field(default_factory=dict[str, AgentVersion])


# ---------------------------------------------------------------- responses


class AgentReference(WireModel):
    type: Literal["agent_reference"] = "agent_reference"
    name: str
    version: str | None = None


class InputText(WireModel):
    type: Literal["input_text"] = "input_text"
    text: str


class InputImage(WireModel):
    type: Literal["input_image"] = "input_image"
    image_url: str | None = None
    file_id: str | None = None
    detail: str = "auto"


class InputMessage(WireModel):
    type: Literal["message"] = "message"
    role: str = "user"
    content: str | list[dict[str, Any]]


class CreateResponseRequest(WireModel):
    """Body of `POST /openai/v1/responses` as this project sends it."""

    agent_reference: AgentReference | None = None
    model: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    input: str | list[dict[str, Any]]
    store: bool | None = True
    background: bool | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    structured_inputs: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None


class ResponseError(WireModel):
    code: str | None = None
    message: str = ""


class IncompleteDetails(WireModel):
    reason: str | None = None


class ImageGenerationCall(WireModel):
    """An `image_generation_call` item: only a non-null `result` is an image, whatever `status` says (§4, §5.2)."""

    type: Literal["image_generation_call"] = "image_generation_call"
    id: str
    status: str | None = None
    result: str | None = None
    revised_prompt: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    action: str | None = None
    agent_reference: AgentReference | None = None
    response_id: str | None = None
    error: ResponseError | None = None


class Response(WireModel):
    id: str
    object: str = "response"
    created_at: float = 0
    completed_at: float | None = None
    status: str | None = None
    background: bool | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str | None = None
    output: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]])
    agent_reference: AgentReference | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    content_filters: list[dict[str, Any]] | None = None  # Azure: absent, null or an array (§4)

    def image_calls(self) -> list[ImageGenerationCall]:
        return [ImageGenerationCall.model_validate(item) for item in self.output if is_image_call(item)]


def is_image_call(item: object) -> bool:
    return isinstance(item, dict) and item.get("type") == "image_generation_call"


TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "incomplete"})
PENDING_STATUSES: Final = frozenset({"queued", "in_progress"})


# ---------------------------------------------------------------- files


class FileObject(WireModel):
    id: str
    object: str = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"


# ---------------------------------------------------------------- errors


class ErrorDetail(WireModel):
    code: str | None = None
    message: str = ""
    param: str | None = None
    type: str | None = None
    details: list[dict[str, Any]] | None = None
    additional_info: dict[str, Any] | None = Field(default=None, alias="additionalInfo")
    innererror: dict[str, Any] | None = None
    moderation_details: dict[str, Any] | None = None  # {moderation_stage, categories} (§4.1)
    content_filters: list[dict[str, Any]] | None = None  # [{blocked, source_type, content_filter_results}] (§4.1)


class ErrorBody(WireModel):
    error: ErrorDetail
    content_filters: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------- stream events

STREAM_PARTIAL_IMAGE: Final = "response.image_generation_call.partial_image"
STREAM_OUTPUT_ITEM_DONE: Final = "response.output_item.done"
STREAM_TERMINAL_EVENTS: Final = frozenset({"response.completed", "response.failed", "response.incomplete"})
STREAM_ERROR: Final = "error"


class StreamEvent(WireModel):
    """One server-sent event of a Responses stream; the typed fields are those all events share."""

    type: str
    sequence_number: int = 0


class PartialImageEvent(StreamEvent):
    output_index: int = 0
    item_id: str = ""
    partial_image_index: int = 0
    partial_image_b64: str
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None


# ---------------------------------------------------------------- deployments

DEPLOYMENTS_API_VERSION: Final = "v1"
"""`api-version` of the project's deployments API (foundry-protocol.md §1.6)."""


class DeploymentSku(WireModel):
    name: str | None = None
    capacity: int | None = None


class Deployment(WireModel):
    """One deployment of the project, `GET /deployments/{name}` (§1.6). Image models report `capabilities: {}`,
    so they are told apart by `model_name`, never by capabilities."""

    name: str
    type: str = "ModelDeployment"
    model_name: str | None = Field(default=None, alias="modelName")
    model_version: str | None = Field(default=None, alias="modelVersion")
    model_publisher: str | None = Field(default=None, alias="modelPublisher")
    capabilities: dict[str, Any] = Field(default_factory=dict[str, Any])
    sku: DeploymentSku | None = None
    connection_name: str | None = Field(default=None, alias="connectionName")


class DeploymentList(WireModel):
    """One page of `GET /deployments`: the list key is `value`; `nextLink` is absent on the last page."""

    value: list[Deployment] = Field(default_factory=list[Deployment])
    next_link: str | None = Field(default=None, alias="nextLink")
