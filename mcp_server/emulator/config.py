"""Configuration of the local Foundry emulator."""

from __future__ import annotations

from dataclasses import dataclass

from .fault_names import parse_fault_spec

DEFAULT_IMAGE_DEPLOYMENTS = frozenset({"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"})
DEFAULT_MODEL_DEPLOYMENTS = frozenset(
    {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "gpt-5", "gpt-5-mini"}
)


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
    image_deployments: frozenset[str] = DEFAULT_IMAGE_DEPLOYMENTS
    model_deployments: frozenset[str] = DEFAULT_MODEL_DEPLOYMENTS
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

    def __post_init__(self) -> None:
        for name, count in self.faults:
            parse_fault_spec(f"{name}:{count}")
        if self.stall_seconds < 0:
            raise ValueError(f"stall_seconds must not be negative, not {self.stall_seconds}")
