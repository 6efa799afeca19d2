"""Validation of agent definitions and `image_generation` tools (protocol §1.2, §2, §8).

An image tool's options are checked twice: against what any model takes (`IMAGE_OPTIONS`), then
against the rules of the model its deployment serves (`rules_for(config.model_of(deployment))`),
both answered with 400 `invalid_payload` naming the field (`tools[0].size`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from mcp_server.protocol import (
    AGENT_NAME_MAX,
    AGENT_NAME_PATTERN,
    IMAGE_OPTIONS,
    METADATA_KEY_MAX,
    METADATA_MAX_PAIRS,
    METADATA_VALUE_MAX,
    OUTPUT_FORMAT,
    PERMISSIVE,
    TRANSPARENT_FORMATS,
    ModelRules,
    rules_for,
)

from .config import EmulatorConfig
from .errors import deployment_not_found, invalid_payload

DEFAULT_IMAGE_MODEL = "gpt-image-1"
"""The `image_generation` tool's `model` when left out: the spec's default (protocol §2), retired on
Azure since 2026-10-23, so such a tool only works in a project that still has this deployment."""
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
_AGENT_NAME = re.compile(AGENT_NAME_PATTERN)
_TOOL_KEYS = frozenset(
    {"type", "model", "input_image_mask", "n", "name", "description", "tool_configs"}
    | {spec.name for spec in IMAGE_OPTIONS}
)
NUMERIC_FIELDS = frozenset(spec.name for spec in IMAGE_OPTIONS if spec.bounds is not None)


def has_placeholder(value: object) -> bool:
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


def validate_agent_name(name: str) -> None:
    if len(name) > AGENT_NAME_MAX or not _AGENT_NAME.match(name):
        raise invalid_payload(
            f"Invalid agent name {name!r}: it must start and end with an alphanumeric character, may contain "
            f"hyphens in between, and be at most {AGENT_NAME_MAX} characters long.",
            "agent_name",
        )


def validate_metadata(metadata: object, param: str = "metadata") -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise invalid_payload("metadata must be an object of string pairs.", param)
    if len(metadata) > METADATA_MAX_PAIRS:
        raise invalid_payload(f"metadata may contain at most {METADATA_MAX_PAIRS} pairs.", param)
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise invalid_payload(f"metadata value for {key!r} must be a string.", f"{param}.{key}")
        if len(key) > METADATA_KEY_MAX:
            raise invalid_payload(f"metadata keys must be at most {METADATA_KEY_MAX} characters.", param)
        if len(value) > METADATA_VALUE_MAX:
            raise invalid_payload(f"metadata values must be at most {METADATA_VALUE_MAX} characters.", f"{param}.{key}")
    return dict(metadata)


def validate_definition(definition: object, config: EmulatorConfig) -> dict[str, Any]:
    if not isinstance(definition, dict):
        raise invalid_payload("definition is required and must be an object.", "definition")
    kind = definition.get("kind")
    if kind != "prompt":
        raise invalid_payload(
            f"Unsupported agent kind {kind!r}: this project only supports 'prompt' agents.", "definition.kind"
        )
    validate_model_deployment(definition.get("model"), config, "definition.model")
    validate_tools(definition.get("tools"), config, "definition.tools", allow_placeholders=True)
    if "structured_inputs" in definition and not isinstance(definition["structured_inputs"], dict | None):
        raise invalid_payload("structured_inputs must be an object.", "definition.structured_inputs")
    return definition


def validate_model_deployment(model: object, config: EmulatorConfig, param: str) -> str:
    if not isinstance(model, str) or not model:
        raise invalid_payload("A model deployment name is required.", param)
    if model not in config.model_deployments:
        known = ", ".join(sorted(config.model_deployments))
        raise invalid_payload(
            f"Model deployment {model!r} was not found in this project. Deployed models: {known}.", param
        )
    return model


def validate_tools(tools: object, config: EmulatorConfig, param: str, *, allow_placeholders: bool) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_payload("tools must be an array.", param)
    for index, tool in enumerate(tools):
        where = f"{param}[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid_payload("Each tool must be an object with a 'type'.", where)
        if tool["type"] == "image_generation":
            validate_image_tool(tool, config, where, allow_placeholders=allow_placeholders)


def validate_image_tool(tool: dict[str, Any], config: EmulatorConfig, where: str, *, allow_placeholders: bool) -> None:
    if allow_placeholders and not config.image_tool_placeholders and "{{" in json.dumps(tool):
        raise invalid_payload(
            "structured_inputs placeholders are not supported in image_generation tool fields.", where
        )

    def skip(value: object) -> bool:
        if has_placeholder(value):
            if allow_placeholders:
                return True
            raise invalid_payload(f"Unbound placeholder {value!r}.", where)
        return False

    for key in tool:
        if key not in _TOOL_KEYS:
            raise invalid_payload(f"Unknown parameter: '{where}.{key}'.", f"{where}.{key}")
    model = tool.get("model")
    if model is not None and not skip(model) and model not in config.image_deployments:
        known = ", ".join(sorted(config.image_deployments))
        raise invalid_payload(
            f"Image generation deployment {model!r} was not found in this project. Deployed image models: {known}.",
            f"{where}.model",
        )
    for spec in IMAGE_OPTIONS:
        value = tool.get(spec.name)
        if value is None or skip(value) or spec.accepts(value):
            continue
        if spec.pattern is not None:
            message = f"Invalid value {value!r} for '{spec.name}'. Expected 'auto' or WIDTHxHEIGHT, e.g. 1024x1024."
        elif spec.bounds is None:
            supported = ", ".join(spec.values)
            message = f"Invalid value {value!r} for '{spec.name}'. Supported values are: {supported}."
        else:
            low, high = spec.bounds
            message = f"Invalid '{spec.name}': {value!r}. Expected an integer between {low} and {high}."
        raise invalid_payload(message, f"{where}.{spec.name}")
    _check_model_rules(tool, config, where)
    _check_combinations(tool, where, skip)


def today() -> date:
    """The date that decides retirement (UTC); tests may replace it."""
    return datetime.now(UTC).date()


def model_rules(deployment: object, config: EmulatorConfig) -> tuple[str, ModelRules]:
    """The model a tool's deployment serves and its rules. A deployment this project does not have (or a
    placeholder) and a retired model's deployment, which no longer answers at all, get `PERMISSIVE`."""
    model = config.model_of(deployment) if isinstance(deployment, str) else None
    if model is None:
        return str(deployment), PERMISSIVE
    rules = rules_for(model)
    return (model, PERMISSIVE) if rules.retired(today()) else (model, rules)


def _check_model_rules(tool: dict[str, Any], config: EmulatorConfig, where: str) -> None:
    model, rules = model_rules(tool.get("model") or DEFAULT_IMAGE_MODEL, config)
    options = {spec.name: tool.get(spec.name) for spec in IMAGE_OPTIONS if not has_placeholder(tool.get(spec.name))}
    violation = rules.violation(options, model)
    if violation is not None:
        message = f"Invalid value {violation.value!r} for '{violation.option}': {violation.rule}."
        raise invalid_payload(message, f"{where}.{violation.option}")


def refuse_retired(deployment: str, config: EmulatorConfig) -> None:
    """A deployment whose model is retired answers like one that does not exist.

    UNVERIFIED: what the project endpoint answers for a retired model's deployment is not recorded;
    the Azure portal says "Inferencing on this endpoint will return error responses", and a retired
    Azure OpenAI deployment was seen answering 404 `{"code":"404","message":"Resource not found"}`
    ([3P] BerriAI/litellm #11116). This sends the 404 `DeploymentNotFound` of an unknown deployment.
    """
    model = config.model_of(deployment)
    if model is not None and rules_for(model).retired(today()):
        raise deployment_not_found(deployment)


def _check_combinations(tool: dict[str, Any], where: str, skip: Any) -> None:
    fmt = tool.get("output_format") or OUTPUT_FORMAT.echoed_default
    if tool.get("background") == "transparent" and not skip(fmt) and fmt not in TRANSPARENT_FORMATS:
        raise invalid_payload(
            "Transparent background is only supported with output_format 'png' or 'webp'.", f"{where}.background"
        )
    n = tool.get("n")
    if n is not None and n != 1:
        raise invalid_payload("Only one image per image_generation call is supported ('n' must be 1).", f"{where}.n")
    mask = tool.get("input_image_mask")
    if mask is None:
        return
    if not isinstance(mask, dict) or not mask or set(mask) - {"image_url", "file_id"}:
        raise invalid_payload(
            "input_image_mask must be an object with only 'image_url' or 'file_id'.", f"{where}.input_image_mask"
        )
    for key, value in mask.items():
        if not isinstance(value, str) or not value:
            raise invalid_payload(f"input_image_mask.{key} must be a non-empty string.", f"{where}.input_image_mask")


# ---------------------------------------------------------------- structured inputs


def bind_placeholders(value: Any, bindings: dict[str, Any], field: str | None = None) -> Any:
    """Replace `{{name}}` in every string; a whole-field placeholder takes the bound value itself."""
    if isinstance(value, dict):
        return {k: bind_placeholders(v, bindings, k) for k, v in value.items()}
    if isinstance(value, list):
        return [bind_placeholders(v, bindings, field) for v in value]
    if not isinstance(value, str) or not has_placeholder(value):
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole:
        bound = _lookup(whole.group(1), bindings)
        if field in NUMERIC_FIELDS and isinstance(bound, str):
            try:
                return int(bound)
            except ValueError:
                return bound
        return bound
    return PLACEHOLDER.sub(lambda m: str(_lookup(m.group(1), bindings)), value)


def _lookup(name: str, bindings: dict[str, Any]) -> Any:
    if name not in bindings:
        raise invalid_payload(f"No value was provided for structured input '{name}'.", "structured_inputs")
    return bindings[name]


def structured_defaults(definition: dict[str, Any]) -> dict[str, Any]:
    declared = definition.get("structured_inputs") or {}
    return {
        name: spec["default_value"]
        for name, spec in declared.items()
        if isinstance(spec, dict) and spec.get("default_value") is not None
    }
