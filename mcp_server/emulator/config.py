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
    `None` for the accepted credential sets means any non-empty credential is accepted.
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
    image_tool_placeholders: bool = True
    """Whether `{{name}}` structured-input placeholders may appear in `image_generation` tool fields.

    Unverified on the real service (foundry-protocol.md §10.7); turning it off lets tests
    exercise the client's fallback to direct `model` + `tools` calls for masks."""
    faults: tuple[tuple[str, int], ...] = ()
    """Faults scheduled at start, as (name, count): each is given to the next `count` responses creates
    (`EmulatorState.inject(name, times=count)`). The names are those of `fault_names.FAULTS`."""
    stall_seconds: float = 30.0
    """How long the `stall` fault holds an answer back."""

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
