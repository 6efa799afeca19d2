"""Each image model's own rules (mcp_server.protocol.models) against foundry-protocol.md §2, §8.1, §8.2,
and `ImageOptions.check`, which applies them to the deployment's model before any upstream call."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from mcp_server.errors import InvalidInputError
from mcp_server.protocol import (
    ALL_QUALITIES,
    FREE_SIZES,
    MODEL_RULES,
    PERMISSIVE,
    QUALITY,
    SIZE,
    SIZE_PATTERN,
    STANDARD_SIZES,
    FreeSizes,
    ModelRules,
    find_violation,
    is_image_model,
    is_orchestrator_model,
    parse_size,
    retirement_notice,
    rules_for,
    unknown_model_note,
)
from mcp_server.service.calls import ImageOptions

BEFORE_ANY_RETIREMENT = date(2026, 10, 1)
BASE = ("auto", "low", "medium", "high")
FORMATS = ("png", "jpeg", "webp")

# ---------------------------------------------------------------- the table against the document


DOCUMENT: dict[str, dict[str, Any]] = {
    # §8.1 retirement schedule; §8.2 sizes, qualities, input_fidelity, transparent background, formats.
    "gpt-image-1": {"sizes": STANDARD_SIZES, "fidelity": True, "retires": date(2026, 10, 23)},
    "gpt-image-1-mini": {"sizes": STANDARD_SIZES, "fidelity": False, "retires": date(2027, 4, 7)},
    "gpt-image-1.5": {"sizes": STANDARD_SIZES, "fidelity": True, "retires": date(2027, 6, 16)},
    "gpt-image-2": {"sizes": FREE_SIZES, "fidelity": True, "retires": date(2027, 10, 21)},
    "gpt-image-2.5-sunburst": {"sizes": FREE_SIZES, "fidelity": True, "retires": None, "top": True},
    "gpt-image-2.5-flare": {"sizes": FREE_SIZES, "fidelity": True, "retires": None, "top": True},
}


@pytest.mark.parametrize("family", DOCUMENT)
def test_each_family_has_the_documented_rules(family: str) -> None:
    expected = DOCUMENT[family]
    rules = rules_for(family)
    assert rules.family == family and rules.known
    assert rules.sizes == expected["sizes"]
    assert rules.qualities == ((*BASE, "xhigh", "max") if expected.get("top") else BASE)
    assert rules.input_fidelity is expected["fidelity"]
    assert rules.transparent, "transparent background: yes on gpt-image-1*, preview (allowed) on gpt-image-2"
    assert rules.formats == FORMATS, "webp on Azure is unverified (§8.2), so not refused"
    assert rules.retires == expected["retires"]


def test_the_table_has_exactly_the_documented_families() -> None:
    assert [rules.family for rules in MODEL_RULES] == list(DOCUMENT)
    assert STANDARD_SIZES == ("1024x1024", "1536x1024", "1024x1536")
    limits = (FREE_SIZES.multiple, FREE_SIZES.max_edge, FREE_SIZES.max_ratio, FREE_SIZES.min_pixels)
    assert (*limits, FREE_SIZES.max_pixels) == (16, 3840, 3, 655_360, 8_294_400)
    assert FreeSizes() == FREE_SIZES


def test_the_tool_options_are_the_union_of_the_models() -> None:
    assert QUALITY.values == ALL_QUALITIES == tuple(dict.fromkeys(q for r in MODEL_RULES for q in r.qualities))
    assert SIZE.pattern == SIZE_PATTERN and SIZE.values == ()
    for size in (*STANDARD_SIZES, "auto", "2048x1152", "3840x2160"):
        assert SIZE.accepts(size), size
    for size in ("huge", "1024X1024", "1024x", "x1024", "0x1024", "1024x1024 ", "-1x5", 1024):
        assert not SIZE.accepts(size), size
    assert PERMISSIVE.sizes == FREE_SIZES and not PERMISSIVE.known
    for size in STANDARD_SIZES:
        assert FREE_SIZES.accepts(*_dims(size)), "what any known model takes, the permissive rules take"


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-image-1", "gpt-image-1"),
        ("gpt-image-1-2025-04-15", "gpt-image-1"),
        ("gpt-image-1-mini", "gpt-image-1-mini"),
        ("GPT-Image-1-Mini-2025-10-06", "gpt-image-1-mini"),
        ("gpt-image-1.5", "gpt-image-1.5"),
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-sunburst"),
        ("gpt-image-2.5-flare", "gpt-image-2.5-flare"),
        ("gpt-image-2.5", "unknown"),
        ("gpt-image-20", "unknown"),
        ("chatgpt-image-latest", "unknown"),
        ("gpt-image-3", "unknown"),
    ],
)
def test_a_model_name_picks_its_family_by_longest_prefix(model: str, family: str) -> None:
    rules = rules_for(model)
    assert rules.family == family
    assert rules.known == (family != "unknown")
    assert (unknown_model_note(model) is None) == rules.known


def test_image_and_orchestrator_models_are_told_apart() -> None:
    for name in ("gpt-image-2", "gpt-image-1-mini", "chatgpt-image-latest", "GPT-IMAGE-1.5"):
        assert is_image_model(name) and not is_orchestrator_model(name), name
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-nano", "o3", "gpt-5", "gpt-5-mini", "gpt-5.1"):
        assert is_orchestrator_model(name) and not is_image_model(name), name
    for name in ("gpt-50", "gpt-4", "text-embedding-3-small", "o1"):
        assert not is_orchestrator_model(name) and not is_image_model(name), name


# ---------------------------------------------------------------- gpt-image-2's free sizes at the boundaries


@pytest.mark.parametrize(
    ("size", "broken"),
    [
        ("2048x1152", None),
        ("3840x2160", None),  # the largest: long edge 3840 and the most pixels, exactly
        ("2160x3840", None),
        ("2880x2880", None),  # 8,294,400 pixels, exactly
        ("1024x640", None),  # 655,360 pixels, exactly
        ("3840x1280", None),  # 3:1, exactly
        ("1280x3840", None),
        ("1024x1000", "multiples of 16"),
        ("1030x1024", "multiples of 16"),
        ("3856x2160", "long edge of at most 3840"),
        ("2176x3856", "long edge of at most 3840"),
        ("3840x1152", "aspect ratios up to 3:1"),
        ("3840x1264", "aspect ratios up to 3:1"),
        ("1152x3840", "aspect ratios up to 3:1"),
        ("512x512", "655,360 to 8,294,400 pixels"),
        ("1024x624", "655,360 to 8,294,400 pixels"),
        ("2896x2880", "655,360 to 8,294,400 pixels"),
    ],
)
def test_free_size_limits(size: str, broken: str | None) -> None:
    violation = find_violation("gpt-image-2", {"size": size})
    if broken is None:
        assert violation is None
        return
    assert violation is not None and violation.option == "size"
    assert violation.message.startswith("gpt-image-2 takes ") and broken in violation.message
    nearest = re.search(r"the nearest valid size is (\d+x\d+)\.$", violation.message)
    assert nearest is not None, violation.message
    assert FREE_SIZES.accepts(*_dims(nearest.group(1)))


def test_the_nearest_valid_size() -> None:
    assert FREE_SIZES.nearest(1000, 1000) == (1008, 1008), "rounded to multiples of 16"
    assert FREE_SIZES.nearest(1020, 760) == (1024, 768)
    assert FREE_SIZES.nearest(512, 512) == (816, 816), "scaled up to the fewest pixels"
    assert FREE_SIZES.nearest(4096, 4096) == (2880, 2880), "scaled down to the most pixels"
    width, height = FREE_SIZES.nearest(3840, 1152)
    assert width == 3 * height, "the widest valid shape"
    for width in range(16, 6000, 377):
        for height in range(16, 6000, 419):
            near = FREE_SIZES.nearest(width, height)
            assert FREE_SIZES.accepts(*near), (width, height, near)
            if FREE_SIZES.accepts(width, height):
                assert near == (width, height)


def test_parse_size() -> None:
    assert parse_size("2048x1152") == (2048, 1152)
    assert parse_size("auto") is None and parse_size("big") is None and parse_size("1024x1024\n") is None


# ---------------------------------------------------------------- ImageOptions.check, per model


def refusal(model: str, today: date = BEFORE_ANY_RETIREMENT, **options: Any) -> str | None:
    try:
        ImageOptions(**options).check(model, today=today)
    except InvalidInputError as error:
        assert error.code == "invalid_input"
        return error.message
    return None


def test_gpt_image_1_5_refuses_a_gpt_image_2_size_and_says_what_to_deploy() -> None:
    assert refusal("gpt-image-1.5", size="2048x1152") == (
        "gpt-image-1.5 supports 1024x1024, 1536x1024, 1024x1536 or auto; for 2048x1152 deploy gpt-image-2."
    )
    assert refusal("gpt-image-2", size="2048x1152") is None
    assert refusal("gpt-image-1.5", size="1536x1024") is None and refusal("gpt-image-1.5", size="auto") is None
    landscape = refusal("gpt-image-1-mini", size="800x600")
    assert landscape is not None and landscape.endswith("the closest in shape is 1536x1024.")


def test_gpt_image_2_names_the_rule_and_the_nearest_size() -> None:
    assert refusal("gpt-image-2", size="1000x1000") == (
        "gpt-image-2 takes sizes whose edges are multiples of 16, and 1000x1000 is not; "
        "the nearest valid size is 1008x1008."
    )
    assert refusal("gpt-image-2-2026-04-21", size="3840x1152") == (
        "gpt-image-2-2026-04-21 takes aspect ratios up to 3:1, and 3840x1152 is 3.33:1; "
        "the nearest valid size is 3792x1264."
    )
    assert refusal("gpt-image-2", size="512x512") == (
        "gpt-image-2 takes 655,360 to 8,294,400 pixels, and 512x512 has 262,144; the nearest valid size is 816x816."
    )


def test_gpt_image_1_mini_refuses_input_fidelity() -> None:
    message = refusal("gpt-image-1-mini", input_fidelity="high")
    assert message is not None and message.startswith("gpt-image-1-mini does not support input_fidelity; leave it out")
    assert "gpt-image-2" in message
    for model in ("gpt-image-1.5", "gpt-image-2", "gpt-image-2.5-flare"):
        assert refusal(model, input_fidelity="high") is None, model
        assert refusal(model, input_fidelity="low") is None, model


@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_xhigh_and_max_only_on_the_2_5_models(quality: str) -> None:
    for model in ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare-2026-09-08"):
        assert refusal(model, quality=quality) is None, model
    for model in ("gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"):
        assert refusal(model, quality=quality) == (
            f"{model} supports quality auto, low, medium or high; use high, "
            f"or deploy gpt-image-2.5-sunburst or gpt-image-2.5-flare for {quality}."
        )


def test_an_unknown_model_passes_with_the_permissive_rules() -> None:
    generous = {"size": "3840x2160", "quality": "max", "input_fidelity": "high", "background": "transparent"}
    assert refusal("gpt-image-3", **generous) is None
    assert unknown_model_note("gpt-image-3") is not None and "gpt-image-3" in str(unknown_model_note("gpt-image-3"))
    assert unknown_model_note("gpt-image-2") is None
    nonsense = refusal("gpt-image-3", size="512x512")
    assert nonsense is not None and "gpt-image-3 takes 655,360" in nonsense, "what every known model refuses"


def test_a_retired_model_is_refused_with_its_date_and_the_fix() -> None:
    retired = "gpt-image-1 was retired on 2026-10-23; deploy gpt-image-2 (or gpt-image-1.5 / gpt-image-1-mini)"
    assert refusal("gpt-image-1", today=date(2026, 10, 23)) == (
        f"{retired} and set AZURE_AI_IMAGE_DEPLOYMENT_NAME to its deployment name."
    )
    assert refusal("gpt-image-1-2025-04-15", today=date(2026, 11, 28), size="1024x1024") is not None
    assert refusal("gpt-image-1", today=date(2026, 10, 22)) is None, "the day before, it still works"
    with pytest.raises(InvalidInputError, match="retired on 2026-10-23"):
        ImageOptions().check("gpt-image-1")  # today's date, past the retirement
    assert retirement_notice("gpt-image-1-mini", date(2027, 5, 1)) == (
        "gpt-image-1-mini was retired on 2027-04-07; deploy gpt-image-2 (or gpt-image-1.5)"
    )
    assert retirement_notice("gpt-image-2", date(2027, 10, 21)) == (
        "gpt-image-2 was retired on 2027-10-21; deploy gpt-image-2.5-sunburst (or gpt-image-2.5-flare)"
    )
    assert retirement_notice("gpt-image-2.5-flare", date(2030, 1, 1)) is None
    assert retirement_notice("gpt-image-9", date(2030, 1, 1)) is None


def test_the_check_returns_the_error_it_raises() -> None:
    options = ImageOptions(size="2048x1152")
    problem = options.problem("gpt-image-1.5", today=BEFORE_ANY_RETIREMENT)
    assert isinstance(problem, InvalidInputError) and "deploy gpt-image-2" in problem.message
    assert options.problem("gpt-image-2", today=BEFORE_ANY_RETIREMENT) is None


def test_a_model_without_transparency_or_a_format_refuses_them() -> None:
    opaque = ModelRules("gpt-image-x", STANDARD_SIZES, BASE, True, False, ("png", "jpeg"), None)
    transparent = opaque.violation({"background": "transparent"})
    assert transparent is not None and transparent.message == (
        "gpt-image-x does not support background='transparent'; use background='auto' or 'opaque'."
    )
    webp = opaque.violation({"output_format": "webp"}, "gpt-image-x-2030")
    assert webp is not None and webp.option == "output_format" and webp.message.startswith("gpt-image-x-2030 ")
    assert opaque.violation({"background": "opaque", "output_format": "png", "size": None}) is None


def _dims(size: str) -> tuple[int, int]:
    parsed = parse_size(size)
    assert parsed is not None
    return parsed
