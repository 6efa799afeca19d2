"""Configuration of the local Foundry emulator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mcp_server.protocol.models import is_image_model

from .fault_names import parse_fault_spec

DEFAULT_DEPLOYMENTS: Mapping[str, str] = {"gpt-4.1": "gpt-4.1", "gpt-image-2": "gpt-image-2"}
"""A typical project: one orchestrator and one image deployment (deployment name -> model name)."""


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulated Foundry project contains and how it behaves.

    `latency` delays each image generation (never the agents CRUD) so clients can observe
    queued/in_progress states; `partial_interval` spaces streamed partial images.
    `None` for the accepted credential sets means any non-empty credential is accepted. A key is taken as the
    `api-key` header on `/agents` and `/deployments` and as a bearer token on `/openai/*` (protocol §1.5).
    """

    project: str = "emulator"
    latency: float = 0.0
    partial_interval: float = 0.0
    deployments: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DEPLOYMENTS))
    """The project's model deployments, name -> `modelName` (served by `GET /deployments`)."""
    accepted_tokens: frozenset[str] | None = None
    accepted_api_keys: frozenset[str] | None = None
    drop_stream_after: int | None = None
    """Abort each response's original event stream after this many events (a network fault), so that
    clients must resume with `GET ...?stream=true&starting_after=N`; replays are never dropped."""
    refuse_image_streaming: bool = False
    """Answer `stream: true` with the 400 Azure gave in 2025 ("ImageGen as a tool is not supported in
    streaming mode."), so clients' fallback to non-streamed calls can be tested."""
    grain: int = 0
    """Film grain (0-255) on rendered images, for photograph-like file sizes (megabytes, as gpt-image-1
    returns) where a benchmark needs them; 0 keeps the small, flat pictures."""
    image_tool_placeholders: bool = False
    """Whether `{{name}}` structured-input placeholders may appear in `image_generation` tool fields. Off, as on
    the real service (protocol §3.4, §10.7): an agent version with one is refused with the recorded 400
    `invalid_payload` "The supplied value is invalid." (`param: ""`). On, they are bound per request."""
    openai_image_events: bool = False
    """Stream image calls as api.openai.com does: a `response.image_generation_call.completed` event, and the
    item's `status` "completed" in `response.output_item.done` and in the final Response. Off, as Azure was
    recorded (protocol §5.2, §9.5): no such event, and the status stays "generating" in a stream."""
    unrequested_partial_image: bool = False
    """Stream one partial image even with `partial_images: 0`, as Foundry did until September 2026 (§5.2)."""
    null_result_on_retrieve: bool = False
    """Answer `GET .../responses/{id}` with `result: null` in every image item, as Foundry was reported to do
    (protocol §4, MAF #8422); the stream and its replay still carry the image."""
    faults: tuple[tuple[str, int], ...] = ()
    """Faults scheduled at start, as (name, count): each is given to the next `count` responses creates
    (`EmulatorState.inject(name, times=count)`). The names are those of `fault_names.FAULTS`."""
    stall_seconds: float = 30.0
    """How long the `stall` fault holds an answer back."""
    deployments_api_status: int | None = None
    """Refuse the deployments API (`GET /deployments`, `GET /deployments/{name}`) with this status (401, 403
    or 404), as a project whose identity may not read them does; None serves them."""
    deployments_page_size: int | None = None
    """Serve `GET /deployments` in pages of this many, linked by `nextLink`; None: one page."""

    @property
    def image_deployments(self) -> frozenset[str]:
        return frozenset(name for name, model in self.deployments.items() if is_image_model(model))

    @property
    def model_deployments(self) -> frozenset[str]:
        return frozenset(name for name, model in self.deployments.items() if not is_image_model(model))

    def model_of(self, deployment: str) -> str | None:
        """The model a deployment serves, or None when the project has no such deployment."""
        return self.deployments.get(deployment)

    def __post_init__(self) -> None:
        for name, count in self.faults:
            parse_fault_spec(f"{name}:{count}")
        if self.stall_seconds < 0:
            raise ValueError(f"stall_seconds must not be negative, not {self.stall_seconds}")
        if self.deployments_api_status not in (None, 401, 403, 404):
            raise ValueError(f"deployments_api_status must be 401, 403 or 404, not {self.deployments_api_status}")
        if self.deployments_page_size is not None and self.deployments_page_size < 1:
            raise ValueError(f"deployments_page_size must be at least 1, not {self.deployments_page_size}")
