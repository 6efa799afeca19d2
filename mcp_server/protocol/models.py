"""Each image model family's own rules, in one table (foundry-protocol.md §2, §8.1, §8.2).

A deployment's `modelName` (from the project's deployments API) picks the family: the longest known
family name that the model name is, or starts with followed by `-` (`gpt-image-2-2026-04-21` ->
`gpt-image-2`). A model this table does not know passes with the most permissive known rules
(`known=False`); callers log that (`unknown_model_note`).

Client-side validation, doctor and the emulator all read this table, so a rule changes here only.
The rules that do not depend on the model (transparent needs png or webp, compression only for jpeg
and webp) live with the options, in `mcp_server.protocol.options`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

STANDARD_SIZES: Final = ("1024x1024", "1536x1024", "1024x1536")
"""The sizes every GPT image model takes (besides `auto`): square, landscape, portrait."""
SIZE_PATTERN: Final = r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$"
"""What the `size` parameter accepts before any model's rules: `auto` or `WIDTHxHEIGHT`."""
SIZE_RE: Final = re.compile(SIZE_PATTERN)


def parse_size(size: str) -> tuple[int, int] | None:
    """`(width, height)` of a `WIDTHxHEIGHT` size; None for `auto` or anything that is not a size."""
    if size == "auto" or not SIZE_RE.fullmatch(size):
        return None
    width, height = size.split("x")
    return int(width), int(height)


@dataclass(frozen=True)
class FreeSizes:
    """Arbitrary `WIDTHxHEIGHT` within limits (gpt-image-2, DOC-DALLE 2026-04-17): both edges multiples
    of 16, long edge at most 3840 (max 3840x2160), aspect ratio at most 3:1, 655,360 to 8,294,400
    pixels. Sizes above 2560x1440 are experimental; `auto` may yield a size outside these limits."""

    multiple: int = 16
    max_edge: int = 3840
    max_ratio: int = 3
    min_pixels: int = 655_360
    max_pixels: int = 8_294_400

    def problem(self, width: int, height: int) -> str | None:
        """The first limit `width x height` breaks, as the end of a sentence; None when within all."""
        size, long, short, pixels = f"{width}x{height}", max(width, height), min(width, height), width * height
        if width % self.multiple or height % self.multiple:
            return f"takes sizes whose edges are multiples of {self.multiple}, and {size} is not"
        if long > self.max_edge:
            return f"takes a long edge of at most {self.max_edge} pixels, and {size} has {long}"
        if long > self.max_ratio * short:
            return f"takes aspect ratios up to {self.max_ratio}:1, and {size} is {long / short:.2f}:1"
        if not self.min_pixels <= pixels <= self.max_pixels:
            return f"takes {self.min_pixels:,} to {self.max_pixels:,} pixels, and {size} has {pixels:,}"
        return None

    def accepts(self, width: int, height: int) -> bool:
        return self.problem(width, height) is None

    def nearest(self, width: int, height: int) -> tuple[int, int]:
        """The valid size closest to `width x height`: each edge rounded to a multiple when that is
        valid, otherwise the least squared distance, ties going to the closer aspect ratio."""
        m = self.multiple
        rounded = (max(m, (width + m // 2) // m * m), max(m, (height + m // 2) // m * m))
        if self.accepts(*rounded):
            return rounded
        best: tuple[tuple[int, int], tuple[int, int]] | None = None
        for w in range(m, self.max_edge + 1, m):
            low = max(m, -(-w // self.max_ratio), -(-self.min_pixels // w))
            high = min(self.max_edge, w * self.max_ratio, self.max_pixels // w)
            low, high = -(-low // m) * m, high // m * m
            if low > high:
                continue
            h = min(max(rounded[1], low), high)
            key = ((w - width) ** 2 + (h - height) ** 2, abs(w * height - h * width))
            if best is None or key < best[0]:
                best = (key, (w, h))
        assert best is not None, "the limits admit no size at all"
        return best[1]


FREE_SIZES: Final = FreeSizes()


@dataclass(frozen=True)
class Violation:
    """One option a model refuses: `rule` names the model and what it takes, `advice` a valid way out."""

    option: str
    value: object
    rule: str
    advice: str

    @property
    def message(self) -> str:
        return f"{self.rule}; {self.advice}."


@dataclass(frozen=True)
class ModelRules:
    """What one image model family accepts."""

    family: str
    sizes: tuple[str, ...] | FreeSizes
    """The fixed sizes (besides `auto`), or the limits of arbitrary sizes."""
    qualities: tuple[str, ...]
    input_fidelity: bool
    transparent: bool
    """Whether `background='transparent'` is offered (gpt-image-2: in preview, so allowed)."""
    formats: tuple[str, ...]
    retires: date | None
    """The retirement date on Azure (DOC-RETIRE); on and after it the model's deployments stop working."""
    known: bool = True

    def retired(self, today: date) -> bool:
        return self.retires is not None and self.retires <= today

    def violation(self, options: Mapping[str, object], model: str | None = None) -> Violation | None:
        """The first of `options` (tool field -> value; None or absent: left out) this family refuses.

        `model` is the deployment's model name the messages use (the family name when not given).
        """
        name = model or self.family
        for check in (_size, _quality, _input_fidelity, _background, _output_format):
            found = check(self, name, options)
            if found is not None:
                return found
        return None


_BASE_QUALITIES: Final = ("auto", "low", "medium", "high")
_TOP_QUALITIES: Final = (*_BASE_QUALITIES, "xhigh", "max")
_ALL_FORMATS: Final = ("png", "jpeg", "webp")
"""Azure's docs say png and jpeg only; webp through the Responses tool is unverified (§8.2), so allowed."""

MODEL_RULES: Final[tuple[ModelRules, ...]] = (
    ModelRules("gpt-image-1", STANDARD_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2026, 10, 23)),
    ModelRules("gpt-image-1-mini", STANDARD_SIZES, _BASE_QUALITIES, False, True, _ALL_FORMATS, date(2027, 4, 7)),
    ModelRules("gpt-image-1.5", STANDARD_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2027, 6, 16)),
    ModelRules("gpt-image-2", FREE_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2027, 10, 21)),
    # The document gives no size rules for the 2.5 models (2026-09-08, not on the retirement page):
    # assumed to take gpt-image-2's free sizes; xhigh and max are theirs alone (AIP-2.10 CHANGELOG).
    ModelRules("gpt-image-2.5-sunburst", FREE_SIZES, _TOP_QUALITIES, True, True, _ALL_FORMATS, None),
    ModelRules("gpt-image-2.5-flare", FREE_SIZES, _TOP_QUALITIES, True, True, _ALL_FORMATS, None),
)
"""Every image model family this project knows (foundry-protocol.md §8)."""

PERMISSIVE: Final = ModelRules("unknown", FREE_SIZES, _TOP_QUALITIES, True, True, _ALL_FORMATS, None, known=False)
"""The rules of a model this table does not know: the most permissive known ones (what any known model
refuses, this refuses too)."""

ALL_QUALITIES: Final = PERMISSIVE.qualities
"""Every quality any known model takes (the tool schema's enum)."""

REPLACEMENTS: Final = ("gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini")
"""What to deploy instead of a retired model, best first (the 2.5 models' Azure availability is open, §10)."""
FREE_SIZE_MODEL: Final = "gpt-image-2"
"""The model to deploy for sizes beyond the standard three."""

ORCHESTRATOR_FAMILIES: Final = ("gpt-4o", "gpt-4.1", "o3", "gpt-5")
"""Chat models the image tool supports as orchestrator (DOC-IG): gpt-4o(-mini), the gpt-4.1 family,
o3 and the gpt-5 series (gpt-5, gpt-5-mini, gpt-5.1, ...)."""


def is_image_model(model_name: str) -> bool:
    """Whether a deployment's `modelName` is an image model (deployments report `capabilities: {}`)."""
    return model_name.lower().startswith(("gpt-image-", "chatgpt-image"))


def is_orchestrator_model(model_name: str) -> bool:
    """Whether a deployment's `modelName` is a chat model the image tool works with (DOC-IG)."""
    name = model_name.lower()
    return any(name == family or name.startswith((family + "-", family + ".")) for family in ORCHESTRATOR_FAMILIES)


def rules_for(model_name: str) -> ModelRules:
    """The rules of `model_name`'s family (longest known prefix), or `PERMISSIVE` for an unknown model."""
    name = model_name.lower()
    matches = [rules for rules in MODEL_RULES if name == rules.family or name.startswith(rules.family + "-")]
    return max(matches, key=lambda rules: len(rules.family)) if matches else PERMISSIVE


def find_violation(model_name: str, options: Mapping[str, object]) -> Violation | None:
    """The first of `options` the model `model_name` refuses (see `ModelRules.violation`)."""
    return rules_for(model_name).violation(options, model_name)


def retirement_notice(model_name: str, today: date) -> str | None:
    """Why `model_name` no longer works and what to deploy instead, once it is retired; else None."""
    rules = rules_for(model_name)
    if rules.retires is None or not rules.retired(today):
        return None
    live = [family for family in REPLACEMENTS if family != rules.family and not rules_for(family).retired(today)]
    live = live or [other.family for other in MODEL_RULES if other is not rules and not other.retired(today)]
    instead = live[0] + (f" (or {' / '.join(live[1:])})" if live[1:] else "") if live else "a current image model"
    return f"{model_name} was retired on {rules.retires.isoformat()}; deploy {instead}"


def unknown_model_note(model_name: str) -> str | None:
    """The line to log once for a model this table does not know (None: known, nothing to log)."""
    if rules_for(model_name).known:
        return None
    return (
        f"Image model {model_name!r} is not in this server's table; its options are checked against the "
        "most permissive known rules and Foundry decides the rest."
    )


# ---------------------------------------------------------------- the checks, one per option


def _either(values: tuple[str, ...], last: str = "or") -> str:
    return ", ".join(values[:-1]) + f" {last} {values[-1]}" if len(values) > 1 else values[0]


def _orientation_size(width: int, height: int) -> str:
    return "1536x1024" if width > height else "1024x1536" if height > width else "1024x1024"


def _size(rules: ModelRules, model: str, options: Mapping[str, object]) -> Violation | None:
    size = options.get("size")
    if not isinstance(size, str) or size == "auto":
        return None
    parsed = parse_size(size)
    if parsed is None:
        return Violation("size", size, f"size is auto or WIDTHxHEIGHT, not {size!r}", "for example 1024x1024")
    if isinstance(rules.sizes, FreeSizes):
        problem = rules.sizes.problem(*parsed)
        if problem is None:
            return None
        width, height = rules.sizes.nearest(*parsed)
        return Violation("size", size, f"{model} {problem}", f"the nearest valid size is {width}x{height}")
    if size in rules.sizes:
        return None
    rule = f"{model} supports {_either((*rules.sizes, 'auto'))}"
    if FREE_SIZES.accepts(*parsed):
        return Violation("size", size, rule, f"for {size} deploy {FREE_SIZE_MODEL}")
    return Violation("size", size, rule, f"the closest in shape is {_orientation_size(*parsed)}")


def _quality(rules: ModelRules, model: str, options: Mapping[str, object]) -> Violation | None:
    quality = options.get("quality")
    if quality is None or quality in rules.qualities:
        return None
    rule = f"{model} supports quality {_either(rules.qualities)}"
    offering = tuple(r.family for r in MODEL_RULES if quality in r.qualities and r.family != rules.family)
    if offering:
        return Violation("quality", quality, rule, f"use high, or deploy {_either(offering)} for {quality}")
    return Violation("quality", quality, rule, "use high for the most detail")


def _input_fidelity(rules: ModelRules, model: str, options: Mapping[str, object]) -> Violation | None:
    if options.get("input_fidelity") is None or rules.input_fidelity:
        return None
    advice = f"leave it out, or deploy {_either(REPLACEMENTS[:2])} for edits that keep faces and logos"
    return Violation("input_fidelity", options["input_fidelity"], f"{model} does not support input_fidelity", advice)


def _background(rules: ModelRules, model: str, options: Mapping[str, object]) -> Violation | None:
    if options.get("background") != "transparent" or rules.transparent:
        return None
    rule = f"{model} does not support background='transparent'"
    return Violation("background", "transparent", rule, "use background='auto' or 'opaque'")


def _output_format(rules: ModelRules, model: str, options: Mapping[str, object]) -> Violation | None:
    fmt = options.get("output_format")
    if fmt is None or fmt in rules.formats:
        return None
    return Violation("output_format", fmt, f"{model} supports output_format {_either(rules.formats)}", "use png")
