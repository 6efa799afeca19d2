"""The published metadata agrees with itself: server.json, the package version, the README and .ci/run.

The MCP Registry rejects a server.json whose name is not announced as `mcp-name: <name>` in the README
published on PyPI, so these tests compare the real files rather than copies of their contents.
"""

from __future__ import annotations

import json
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import mcp_server

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "tests" / "data" / "server.schema.2025-12-11.json"  # vendored from the MCP Registry
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$")
VERSION_RANGE_CHARACTERS = re.compile(r"[\^~<>=*\s]")
# hatch's default version pattern for `[tool.hatch.version] path = ...`
HATCH_VERSION_PATTERN = re.compile(r"""(?im)^(?:__version__|VERSION)\s*=\s*(['"])v?(?P<version>.+?)\1""")
ENV_VAR_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
DOCUMENTED_ALIASES = {"AZURE_AI_FOUNDRY_PROJECT_ENDPOINT"}


def load_server_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return data


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def read_readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def hatch_version() -> str:
    """The version hatch builds with: read from the file that pyproject's `[tool.hatch.version]` names."""
    version_file = ROOT / load_pyproject()["tool"]["hatch"]["version"]["path"]
    match = HATCH_VERSION_PATTERN.search(version_file.read_text(encoding="utf-8"))
    assert match is not None, f"no __version__ assignment in {version_file}"
    return match.group("version")


def readme_section(readme: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, flags=re.MULTILINE | re.DOTALL)
    assert match is not None, f"README has no '## {heading}' section"
    return match.group(1)


def readme_env_table_names(readme: str) -> list[str]:
    """Variable names in the first column of the README's environment-variable table."""
    names = []
    for line in readme_section(readme, "Environment variables").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and (found := ENV_VAR_NAME.fullmatch(cells[0])):
            names.append(found.group(1))
    return names


def declared_env_vars(server: dict[str, Any]) -> dict[str, dict[str, Any]]:
    declared: dict[str, dict[str, Any]] = {}
    for package in server["packages"]:
        for variable in package["environmentVariables"]:
            assert declared.setdefault(variable["name"], variable) == variable, variable["name"]
    return declared


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def readme_test_command(readme: str) -> str:
    """The last command of the README's copy-paste line that installs the test extra and runs the tests."""
    for block in fenced_blocks(readme, "sh"):
        for line in block.splitlines():
            if ".[test]" in line and "pytest" in line:
                return line.split("&&")[-1].strip()
    raise AssertionError("README has no shell line that installs '.[test]' and runs pytest")


def test_server_json_validates_against_the_2025_12_11_registry_schema() -> None:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(load_server_json())
    ]
    assert errors == []


def test_server_json_names_the_2025_12_11_schema() -> None:
    assert load_server_json()["$schema"] == SCHEMA_URL


def test_server_name_has_the_registry_namespace_form() -> None:
    name = load_server_json()["name"]
    assert NAME_PATTERN.fullmatch(name), name
    assert 3 <= len(name) <= 200


def test_server_description_fits_in_100_characters() -> None:
    description = load_server_json()["description"]
    assert 1 <= len(description) <= 100, f"{len(description)} characters"


def test_every_version_equals_the_package_version() -> None:
    server = load_server_json()
    package_versions = {package["identifier"]: package["version"] for package in server["packages"]}
    assert "version" in load_pyproject()["project"]["dynamic"]
    assert hatch_version() == mcp_server.__version__
    assert server["version"] == mcp_server.__version__
    assert package_versions == dict.fromkeys(package_versions, mcp_server.__version__)


def test_versions_are_exact_not_ranges() -> None:
    server = load_server_json()
    versions = [server["version"], *(package["version"] for package in server["packages"])]
    for version in versions:
        assert version and version != "latest" and not VERSION_RANGE_CHARACTERS.search(version), version


def test_the_pypi_package_is_this_distribution_run_by_uvx_over_stdio() -> None:
    stdio, http = load_server_json()["packages"]
    project = load_pyproject()["project"]
    for package in (stdio, http):
        assert package["registryType"] == "pypi"
        assert package["registryBaseUrl"] == "https://pypi.org"
        assert package["identifier"] == project["name"]
        assert package["runtimeHint"] == "uvx"
        assert "fileSha256" not in package
        # uvx runs the console script named like the package
        assert package["identifier"] in project["scripts"]
    assert stdio["transport"] == {"type": "stdio"}


def test_the_http_package_entry_starts_the_http_transport_on_the_port_of_its_url() -> None:
    _, http = load_server_json()["packages"]
    arguments = {a.get("name", a.get("value")): a.get("value") for a in http["packageArguments"]}
    assert arguments["serve"] == "serve" and arguments["--transport"] == "http"
    assert http["transport"]["type"] == "streamable-http"
    assert http["transport"]["url"] == f"http://127.0.0.1:{arguments['--port']}/mcp"
    assert {"FOUNDRY_IMAGE_MCP_AUTH_TOKENS", "FOUNDRY_IMAGE_MCP_ENTRA_TENANT_ID"} <= {
        v["name"] for v in http["environmentVariables"]
    }


def test_readme_announces_the_server_name_for_the_registry() -> None:
    readme = read_readme()
    name = load_server_json()["name"]
    assert load_pyproject()["project"]["readme"] == "README.md"
    assert re.search(rf"mcp-name: {re.escape(name)}(?=\s|<|-->|$)", readme), f"README lacks 'mcp-name: {name}'"
    assert re.findall(r"mcp-name:\s*(\S+?)(?=\s|<|-->|$)", readme) == [name]


def test_readme_environment_table_and_server_json_declare_the_same_variables() -> None:
    table = readme_env_table_names(read_readme())
    declared = declared_env_vars(load_server_json())
    assert len(table) == len(set(table)), table
    assert sorted(table) == sorted(declared)


def test_every_environment_variable_the_readme_mentions_is_declared() -> None:
    mentioned = set(re.findall(r"\b(?:AZURE_AI|FOUNDRY_IMAGE_MCP)_[A-Z0-9_]+\b", read_readme()))
    assert mentioned - DOCUMENTED_ALIASES <= set(declared_env_vars(load_server_json()))


def test_required_and_secret_flags_match_the_configuration() -> None:
    declared = declared_env_vars(load_server_json())
    assert declared["AZURE_AI_API_KEY"]["isSecret"] is True
    assert {name for name, variable in declared.items() if variable.get("isRequired")} == {"AZURE_AI_PROJECT_ENDPOINT"}
    assert {name for name, variable in declared.items() if variable.get("isSecret")} == {
        "AZURE_AI_API_KEY",
        "FOUNDRY_IMAGE_MCP_AUTH_TOKENS",
        "FOUNDRY_IMAGE_MCP_BLOB_CONNECTION_STRING",
    }
    assert declared["AZURE_AI_PROJECT_ENDPOINT"]["placeholder"]
    for variable in declared.values():
        assert variable["description"], variable["name"]


def test_readme_json_snippets_are_valid_json() -> None:
    blocks = fenced_blocks(read_readme(), "json")
    assert blocks, "README has no json client configuration"
    for block in blocks:
        json.loads(block)


def test_readme_starts_with_the_demo_and_the_test_commands() -> None:
    first_block = fenced_blocks(read_readme(), "sh")[0]
    assert first_block.strip().endswith("pip install . && foundry-image-mcp demo")
    assert readme_test_command(read_readme()) == "python -m pytest -q"


def test_ci_run_calls_the_readme_test_command() -> None:
    script = ROOT / ".ci" / "run"
    text = script.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert readme_test_command(read_readme()) in lines
    assert script.stat().st_mode & stat.S_IXUSR, ".ci/run is not executable"


def test_the_readme_and_server_json_agree_on_what_is_required_and_what_is_discovered() -> None:
    readme = read_readme()
    required = {}
    for line in readme_section(readme, "Environment variables").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and (found := ENV_VAR_NAME.fullmatch(cells[0])):
            required[found.group(1)] = cells[1]
    declared = declared_env_vars(load_server_json())
    for name, variable in declared.items():
        assert required[name].startswith("yes") == bool(variable.get("isRequired")), name
    for name in ("AZURE_AI_MODEL_DEPLOYMENT_NAME", "AZURE_AI_IMAGE_DEPLOYMENT_NAME"):
        assert required[name] == "no, default: discovered", name
        assert "discovered" in declared[name]["description"] and "default" not in declared[name], name
