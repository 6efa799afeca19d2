"""The options of the `image_generation` tool, each defined once: values or bounds, default, description.

The MCP tools' parameters (`mcp_server.tools.params`), the service's `ImageOptions`
(`mcp_server.service.calls`) and the emulator's validation and echo are all built from this table,
so a value, a bound or a default changes here and nowhere else. A choice's values are its
`Literal`'s arguments, so the static type and the runtime table cannot disagree.

An option is a choice (`values`), an integer range (`bounds`) or a string form (`pattern`: `size`,
`auto` or `WIDTHxHEIGHT`). These are what every model accepts; each model's own, narrower rules (which
sizes, which qualities, input_fidelity) are in `mcp_server.protocol.models`.

To add an option, or a new kind of rule, extend `OptionSpec` and `accepts`, then add the spec to
`IMAGE_OPTIONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, get_args

from .models import SIZE_PATTERN

Size: TypeAlias = str
"""`auto` or `WIDTHxHEIGHT` (`SIZE_PATTERN`); which sizes a model takes is its own rule (`models`)."""
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max"]
"""Every quality any model takes; `xhigh` and `max` only the 2.5 models (`models.ALL_QUALITIES`)."""
OutputFormat = Literal["png", "jpeg", "webp"]
Background = Literal["auto", "transparent", "opaque"]
Moderation = Literal["auto", "low"]
InputFidelity = Literal["high", "low"]
Action = Literal["generate", "edit", "auto"]

T = TypeVar("T")


@dataclass(frozen=True)
class OptionSpec(Generic[T]):
    """One option of the `image_generation` tool.

    A choice has `values`; an integer has inclusive `bounds`; a string form has a `pattern` (a regular
    expression it must match, as in JSON Schema). `default` is what this project's tools
    use when the caller gives nothing (None: the option is left out of the request). `service_default`
    is what the service assumes, and echoes, for a left-out option when that differs from `default`.
    """

    name: str
    description: str
    default: T
    values: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None
    service_default: str | int | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        if [bool(self.values), self.bounds is not None, self.pattern is not None].count(True) != 1:
            raise ValueError(f"option {self.name!r} needs exactly one of values, bounds or pattern")
        for value in (self.default, self.service_default):
            if value is not None and not self.accepts(value):
                raise ValueError(f"option {self.name!r}: its default {value!r} is not one of its values")

    @property
    def echoed_default(self) -> Any:
        """What the service echoes for this option when a request leaves it out (None: nothing)."""
        return self.default if self.service_default is None else self.service_default

    def accepts(self, value: object) -> bool:
        """Whether the service takes `value` from any model (None, "left out", is the caller's concern)."""
        if self.pattern is not None:
            return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None
        if self.bounds is None:
            return isinstance(value, str) and value in self.values
        low, high = self.bounds
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


SIZE: Final[OptionSpec[Size]] = OptionSpec(
    "size",
    "auto (the model chooses) or WIDTHxHEIGHT. Every model: 1024x1024 (square, fastest), 1536x1024 "
    "(landscape), 1024x1536 (portrait). gpt-image-2 (and the 2.5 models) also take other sizes, e.g. "
    "2048x1152 or 3840x2160: both edges multiples of 16, long edge at most 3840, aspect ratio at most 3:1, "
    "655,360 to 8,294,400 pixels; above 2560x1440 is experimental.",
    "auto",
    pattern=SIZE_PATTERN,
)
QUALITY: Final[OptionSpec[Quality]] = OptionSpec(
    "quality",
    "Rendering quality; low is fastest. xhigh and max only on gpt-image-2.5-sunburst and gpt-image-2.5-flare.",
    "auto",
    get_args(Quality),
)
OUTPUT_FORMAT: Final[OptionSpec[OutputFormat]] = OptionSpec(
    "output_format", "File format of the image.", "png", get_args(OutputFormat)
)
OUTPUT_COMPRESSION: Final[OptionSpec[int | None]] = OptionSpec(
    "output_compression", "0-100 compression, only for jpeg and webp.", None, bounds=(0, 100), service_default=100
)
BACKGROUND: Final[OptionSpec[Background]] = OptionSpec(
    "background", "transparent needs output_format png or webp.", "auto", get_args(Background)
)
MODERATION: Final[OptionSpec[Moderation]] = OptionSpec(
    "moderation", "Content moderation strictness.", "auto", get_args(Moderation)
)
PARTIAL_IMAGES: Final[OptionSpec[int]] = OptionSpec(
    "partial_images", "Stream this many partial images as progress (0-3).", 0, bounds=(0, 3)
)
INPUT_FIDELITY: Final[OptionSpec[InputFidelity | None]] = OptionSpec(
    "input_fidelity",
    "high keeps faces, logos and details of the inputs more faithfully (slower). Not on gpt-image-1-mini.",
    None,
    get_args(InputFidelity),
)
ACTION: Final[OptionSpec[Action | None]] = OptionSpec(
    "action", "generate, edit, or auto to let the model decide.", None, get_args(Action)
)

OUTPUT_OPTIONS: Final[tuple[OptionSpec[Any], ...]] = (
    SIZE,
    QUALITY,
    OUTPUT_FORMAT,
    OUTPUT_COMPRESSION,
    BACKGROUND,
    MODERATION,
    PARTIAL_IMAGES,
)
"""The options of the output image, which both tools take, in the order their input schemas list them."""
IMAGE_OPTIONS: Final[tuple[OptionSpec[Any], ...]] = (*OUTPUT_OPTIONS, INPUT_FIDELITY, ACTION)
"""Every option of the `image_generation` tool this project knows."""

TRANSPARENT_FORMATS: Final[tuple[OutputFormat, ...]] = ("png", "webp")
"""The output formats `background='transparent'` works with."""
COMPRESSED_FORMATS: Final[tuple[OutputFormat, ...]] = ("jpeg", "webp")
"""The output formats `output_compression` applies to."""
MIME_TYPES: Final[dict[str, str]] = {fmt: f"image/{fmt}" for fmt in OUTPUT_FORMAT.values}
PIL_FORMATS: Final[dict[str, str]] = {fmt.upper(): fmt for fmt in OUTPUT_FORMAT.values}
"""Pillow's format name of each output format (`Image.format` -> `output_format`)."""
