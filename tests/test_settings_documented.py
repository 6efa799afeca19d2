"""Every variable the settings read is documented in server.json (and so, by test_packaging, in the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_server.config import ENDPOINT_VARS, InboundAuthSettings, Settings, variables

ROOT = Path(__file__).resolve().parents[1]
ALIASES = set(ENDPOINT_VARS[1:])
"""Accepted spellings documented in their main variable's description rather than in a row of their own."""


def packages() -> list[dict[str, Any]]:
    server: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return list(server["packages"])


def declared(package: dict[str, Any]) -> set[str]:
    return {variable["name"] for variable in package["environmentVariables"]}


def test_every_setting_is_declared_and_every_declared_variable_is_a_setting() -> None:
    server_settings = set(variables(Settings)) - ALIASES
    inbound_settings = set(variables(InboundAuthSettings))
    stdio, http = packages()
    # stdio never reads the inbound auth settings; the HTTP entry declares every setting.
    assert declared(stdio) == server_settings
    assert declared(http) == server_settings | inbound_settings


def test_the_settings_read_the_variables_the_documentation_names() -> None:
    assert variables(Settings)["AZURE_AI_FOUNDRY_PROJECT_ENDPOINT"] == "endpoint"
    assert variables(InboundAuthSettings)["FOUNDRY_IMAGE_MCP_ENTRA_JWKS_URL"] == "entra_jwks_url"
    assert "inbound" not in variables(Settings).values() and "emulator" not in variables(Settings).values()


def test_a_variable_is_declared_required_exactly_when_the_settings_require_it() -> None:
    fields = Settings.model_fields
    for package in packages():
        for variable in package["environmentVariables"]:
            name = variables(Settings).get(variable["name"])
            if name is not None:
                assert bool(variable.get("isRequired")) == fields[name].is_required(), variable["name"]
    assert fields["image_deployment"].default is None and fields["model_deployment"].default is None
