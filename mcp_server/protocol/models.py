"""Each image model family's own rules, in one table (foundry-protocol.md §8.1, §8.2).

A deployment's `modelName` (from the project's deployments API) picks the family: the longest known
family name that the model name starts with (`gpt-image-2-2026-04-21` -> `gpt-image-2`). A model this
table does not know passes with the most permissive known rules (`known=False`); callers log that.

Client-side validation, doctor and the emulator all read this table, so a rule changes here only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Final

STANDARD_SIZES: Final = ("1024x1024", "1536x1024", "1024x1536")
"""The sizes every GPT image model takes (besides `auto`)."""
SIZE_PATTERN: Final = r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$"
"""What the `size` parameter accepts before any model's rules: `auto` or `WIDTHxHEIGHT`."""
SIZE_RE: Final = re.compile(SIZE_PATTERN)


@dataclass(frozen=True)
class FreeSizes:
    """Arbitrary `WIDTHxHEIGHT` within limits (gpt-image-2): DOC-DALLE 2026-04-17."""

    multiple: int = 16
    max_edge: int = 3840
    max_ratio: float = 3.0
    min_pixels: int = 655_360
    max_pixels: int = 8_294_400


FREE_SIZES: Final = FreeSizes()


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
    known: bool = True


_BASE_QUALITIES: Final = ("auto", "low", "medium", "high")
_ALL_FORMATS: Final = ("png", "jpeg", "webp")

MODEL_RULES: Final[tuple[ModelRules, ...]] = (
    ModelRules("gpt-image-1", STANDARD_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2026, 10, 23)),
    ModelRules("gpt-image-1-mini", STANDARD_SIZES, _BASE_QUALITIES, False, True, _ALL_FORMATS, date(2027, 4, 7)),
    ModelRules("gpt-image-1.5", STANDARD_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2027, 6, 16)),
    ModelRules("gpt-image-2", FREE_SIZES, _BASE_QUALITIES, True, True, _ALL_FORMATS, date(2027, 10, 21)),
    ModelRules(
        "gpt-image-2.5-sunburst", FREE_SIZES, (*_BASE_QUALITIES, "xhigh", "max"), True, True, _ALL_FORMATS, None
    ),
    ModelRules("gpt-image-2.5-flare", FREE_SIZES, (*_BASE_QUALITIES, "xhigh", "max"), True, True, _ALL_FORMATS, None),
)
"""Every image model family this project knows (foundry-protocol.md §8)."""

PERMISSIVE: Final = ModelRules(
    "unknown", FREE_SIZES, (*_BASE_QUALITIES, "xhigh", "max"), True, True, _ALL_FORMATS, None, known=False
)
"""The rules of a model this table does not know: the most permissive known ones."""

ALL_QUALITIES: Final = PERMISSIVE.qualities
"""Every quality any known model takes (the tool schema's enum)."""

ORCHESTRATOR_FAMILIES: Final = ("gpt-4o", "gpt-4.1", "o3", "gpt-5")
"""Chat models the image tool supports as orchestrator (DOC-IG): gpt-4o(-mini), the gpt-4.1 family,
o3 and the gpt-5 series."""


def is_image_model(model_name: str) -> bool:
    """Whether a deployment's `modelName` is an image model (deployments report `capabilities: {}`)."""
    return model_name.lower().startswith("gpt-image-") or model_name.lower().startswith("chatgpt-image")


def is_orchestrator_model(model_name: str) -> bool:
    name = model_name.lower()
    return any(name == family or name.startswith(family + "-") for family in ORCHESTRATOR_FAMILIES)


def rules_for(model_name: str) -> ModelRules:
    """The rules of `model_name`'s family (longest known prefix), or `PERMISSIVE` for an unknown model."""
    name = model_name.lower()
    matches = [rules for rules in MODEL_RULES if name == rules.family or name.startswith(rules.family + "-")]
    return max(matches, key=lambda rules: len(rules.family)) if matches else PERMISSIVE
