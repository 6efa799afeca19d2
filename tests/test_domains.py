"""Each image option is defined once (mcp_server.protocol.options) and every layer agrees with that table:
the static Literal types, the service's `ImageOptions` and its checks, the emulator's validation and echo.
Each model's own rules are defined once too (mcp_server.protocol.models): the service and the emulator
refuse the same options for the same model."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args, get_origin, get_type_hints

import httpx2
import pytest

from mcp_server.emulator import EmulatorConfig, RunningEmulator
from mcp_server.emulator.errors import ApiError
from mcp_server.emulator.planning import resolve_tool
from mcp_server.emulator.validation import NUMERIC_FIELDS, validate_image_tool
from mcp_server.errors import InvalidInputError
from mcp_server.protocol import (
    ACTION,
    BACKGROUND,
    COMPRESSED_FORMATS,
    IMAGE_OPTIONS,
    INPUT_FIDELITY,
    MIME_TYPES,
    MODERATION,
    OUTPUT_FORMAT,
    QUALITY,
    SIZE,
    SIZE_PATTERN,
    TRANSPARENT_FORMATS,
    Action,
    Background,
    InputFidelity,
    Moderation,
    OptionSpec,
    OutputFormat,
    Quality,
    Size,
)
from mcp_server.service.calls import ImageOptions
from mcp_server.tools.params import with_image_options

MODELS = ("gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "gpt-image-2.5-flare", "gpt-image-next")
CONFIG = EmulatorConfig(deployments={"gpt-4.1": "gpt-4.1", **{f"{model}-dep": model for model in MODELS}})
"""A project with a deployment of each current model; `gpt-image-next` is one no table knows (permissive)."""
CHOICES = [spec for spec in IMAGE_OPTIONS if spec.values]
INTEGERS = [spec for spec in IMAGE_OPTIONS if spec.bounds is not None]
PATTERNS = [spec for spec in IMAGE_OPTIONS if spec.pattern is not None]


def emulator_refusal(tool: dict[str, Any], model: str = "gpt-image-next") -> str | None:
    """The emulator's error message for this `image_generation` tool on a deployment of `model`, or None
    when it accepts it."""
    tool = {"type": "image_generation", "model": f"{model}-dep", **tool}
    try:
        validate_image_tool(tool, CONFIG, "tools[0]", allow_placeholders=False)
    except ApiError as error:
        return str(error)
    return None


def test_the_literal_types_are_the_table_values() -> None:
    literals = {
        QUALITY: Quality,
        OUTPUT_FORMAT: OutputFormat,
        BACKGROUND: Background,
        MODERATION: Moderation,
        INPUT_FIDELITY: InputFidelity,
        ACTION: Action,
    }
    assert set(literals) == set(CHOICES)
    for spec, literal in literals.items():
        assert spec.values == get_args(literal), spec.name
    assert PATTERNS == [SIZE] and SIZE.pattern == SIZE_PATTERN and Size is str
    assert len({spec.name for spec in IMAGE_OPTIONS}) == len(IMAGE_OPTIONS)
    assert set(MIME_TYPES) == set(OUTPUT_FORMAT.values)
    assert {*TRANSPARENT_FORMATS, *COMPRESSED_FORMATS} <= set(OUTPUT_FORMAT.values)


def test_a_spec_whose_default_is_not_one_of_its_values_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of its values"):
        OptionSpec("size", "d", "4096x4096", ("auto", "1024x1024"))
    with pytest.raises(ValueError, match="not one of its values"):
        OptionSpec("partial_images", "d", 5, bounds=(0, 3))
    with pytest.raises(ValueError, match="not one of its values"):
        OptionSpec("size", "d", "huge", pattern=SIZE_PATTERN)
    with pytest.raises(ValueError, match="exactly one of values, bounds or pattern"):
        OptionSpec("odd", "d", None)
    with pytest.raises(ValueError, match="exactly one of values, bounds or pattern"):
        OptionSpec("odd", "d", "auto", ("auto",), pattern=SIZE_PATTERN)


def test_image_options_has_the_table_fields_types_and_defaults() -> None:
    fields = {field.name: field for field in dataclasses.fields(ImageOptions)}
    per_call = {ACTION.name}  # set by the service for each call, not an agent option
    assert list(fields) == [spec.name for spec in IMAGE_OPTIONS if spec.name not in per_call]
    hints = get_type_hints(ImageOptions)
    for spec in IMAGE_OPTIONS:
        if spec.name in per_call:
            continue
        assert fields[spec.name].default == spec.default, spec.name
        if spec.values:
            hint = hints[spec.name]
            literal = next(arg for arg in (hint, *get_args(hint)) if get_origin(arg) is Literal)
            assert get_args(literal) == spec.values, spec.name


def test_the_service_and_the_emulator_agree_on_format_combinations() -> None:
    for fmt in OUTPUT_FORMAT.values:
        transparent = ImageOptions(background="transparent", output_format=fmt)  # type: ignore[arg-type]
        compressed = ImageOptions(output_format=fmt, output_compression=50)  # type: ignore[arg-type]
        for options, allowed in ((transparent, TRANSPARENT_FORMATS), (compressed, COMPRESSED_FORMATS)):
            if fmt in allowed:
                options.check("gpt-image-2")
            else:
                with pytest.raises(InvalidInputError):
                    options.check("gpt-image-2")
        refusal = emulator_refusal({"background": "transparent", "output_format": fmt})
        assert (refusal is None) == (fmt in TRANSPARENT_FORMATS), fmt


@pytest.mark.parametrize("spec", CHOICES, ids=lambda spec: spec.name)
def test_the_emulator_accepts_exactly_the_values_of_each_choice(spec: OptionSpec[Any]) -> None:
    for value in spec.values:
        assert emulator_refusal({spec.name: value}) is None, value
    refusal = emulator_refusal({spec.name: "no-such-value"})
    assert refusal is not None and f"Supported values are: {', '.join(spec.values)}." in refusal


@pytest.mark.parametrize("spec", PATTERNS, ids=lambda spec: spec.name)
def test_the_emulator_accepts_exactly_the_form_of_each_pattern(spec: OptionSpec[Any]) -> None:
    for value in ("auto", "1024x1024", "3840x2160"):
        assert spec.accepts(value) and emulator_refusal({spec.name: value}) is None, value
    for value in ("huge", "1024X1024", "1024x1024\n"):
        refusal = emulator_refusal({spec.name: value})
        assert not spec.accepts(value) and refusal is not None and "Expected 'auto' or WIDTHxHEIGHT" in refusal


@pytest.mark.parametrize(
    "options",
    [
        {"size": "2048x1152"},
        {"size": "3840x2160"},
        {"size": "3840x1152"},
        {"size": "1000x1000"},
        {"size": "512x512"},
        {"size": "1536x1024"},
        {"quality": "xhigh"},
        {"quality": "max"},
        {"quality": "high"},
        {"input_fidelity": "high"},
        {"background": "transparent", "output_format": "webp"},
    ],
    ids=str,
)
def test_the_service_and_the_emulator_refuse_the_same_options_per_model(options: dict[str, Any]) -> None:
    for model in MODELS:
        service = ImageOptions(**options).problem(model)
        emulator = emulator_refusal(options, model)
        assert (service is None) == (emulator is None), (model, service, emulator)
        if service is not None and emulator is not None:
            assert model in service.message and model in emulator


@pytest.mark.parametrize("spec", INTEGERS, ids=lambda spec: spec.name)
def test_the_emulator_accepts_exactly_the_range_of_each_integer(spec: OptionSpec[Any]) -> None:
    assert spec.bounds is not None
    low, high = spec.bounds
    assert spec.name in NUMERIC_FIELDS
    fmt = {"output_format": COMPRESSED_FORMATS[0]}
    assert emulator_refusal({spec.name: low, **fmt}) is None and emulator_refusal({spec.name: high, **fmt}) is None
    for bad in (low - 1, high + 1, True, "1"):
        refusal = emulator_refusal({spec.name: bad, **fmt})
        assert refusal is not None and f"between {low} and {high}" in refusal, bad


def test_the_emulator_echoes_the_table_defaults() -> None:
    echoed = resolve_tool({"type": "image_generation"})
    expected = {spec.name: spec.echoed_default for spec in IMAGE_OPTIONS if spec.echoed_default is not None}
    assert {key: echoed[key] for key in expected} == expected
    assert echoed["output_compression"] == 100, "the service's default, not the tools' (left out)"
    assert "input_fidelity" not in echoed and "action" not in echoed
    given = resolve_tool({"type": "image_generation", "quality": "low", "partial_images": 2, "action": "edit"})
    assert (given["quality"], given["partial_images"], given["action"]) == ("low", 2, "edit")


def test_an_agent_made_from_default_options_is_echoed_with_the_table_defaults(emulator: RunningEmulator) -> None:
    tool = ImageOptions().tool("gpt-image-2").to_wire()
    definition = {"kind": "prompt", "model": "gpt-4.1", "tools": [tool]}
    with httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}, timeout=30) as http:
        made = http.post("/agents/defaults/versions", params={"api-version": "v1"}, json={"definition": definition})
        assert made.status_code == 200, made.text
        reply = http.post(
            "/openai/v1/responses",
            json={"agent_reference": {"type": "agent_reference", "name": "defaults"}, "input": "a fox"},
            headers={"x-ms-oai-image-generation-deployment": "gpt-image-2"},
        )
    assert reply.status_code == 200, reply.text
    echoed = reply.json()["tools"][0]
    for spec in IMAGE_OPTIONS:
        if spec.echoed_default is not None:
            assert echoed[spec.name] == spec.echoed_default, spec.name


@pytest.mark.anyio
async def test_with_image_options_hands_the_tool_one_image_options() -> None:
    @with_image_options
    async def probe(prompt: str, *, options: ImageOptions) -> tuple[str, ImageOptions]:
        """Doc."""
        return prompt, options

    assert await probe(prompt="p", quality="low", partial_images=2) == (
        "p",
        ImageOptions(quality="low", partial_images=2),
    )
    assert probe.__name__ == "probe" and probe.__doc__ == "Doc."

    async def positional(prompt: str, options: ImageOptions) -> None: ...

    with pytest.raises(TypeError, match="keyword-only"):
        with_image_options(positional)
