from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.config import Settings, default_output_dir
from mcp_server.errors import ConfigurationError

ENDPOINT = "https://res.services.ai.azure.com/api/projects/proj"


def test_settings_read_the_environment_with_defaults(tmp_path: Path) -> None:
    settings = Settings.load(
        {
            "AZURE_AI_PROJECT_ENDPOINT": ENDPOINT + "/",
            "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
            "HOME": str(tmp_path),
        }
    )
    assert settings.endpoint == ENDPOINT
    assert settings.image_deployment == "gpt-image-1"
    assert settings.agent_name == "foundry-image-mcp"
    assert settings.api_key is None and settings.auth_mode == "entra-id"
    assert settings.output_dir == default_output_dir({"HOME": str(tmp_path)})


def test_the_seed_documents_endpoint_variable_is_accepted() -> None:
    settings = Settings.load(
        {"AZURE_AI_FOUNDRY_PROJECT_ENDPOINT": ENDPOINT, "AZURE_AI_MODEL_DEPLOYMENT_NAME": "m", "HOME": "/tmp"}
    )
    assert settings.endpoint == ENDPOINT


def test_cli_flags_override_the_environment(tmp_path: Path) -> None:
    env = {
        "AZURE_AI_PROJECT_ENDPOINT": ENDPOINT,
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
        "AZURE_AI_IMAGE_DEPLOYMENT_NAME": "gpt-image-1",
        "AZURE_AI_API_KEY": "secret-key",
        "FOUNDRY_IMAGE_MCP_INPUT_DIRS": f"/a{__import__('os').pathsep}/b",
    }
    settings = Settings.load(env, image_deployment="gpt-image-1-mini", output_dir=tmp_path, agent_name="mine")
    assert (settings.image_deployment, settings.output_dir, settings.agent_name) == (
        "gpt-image-1-mini",
        tmp_path,
        "mine",
    )
    assert settings.input_dirs == (Path("/a"), Path("/b"))
    assert settings.auth_mode == "api-key"
    assert "secret-key" not in repr(settings) and "secret-key" not in str(settings.model_dump())


def test_missing_endpoint_names_every_variable_and_the_emulator() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({})
    text = str(caught.value)
    for name in ("AZURE_AI_PROJECT_ENDPOINT", "AZURE_AI_FOUNDRY_PROJECT_ENDPOINT", "AZURE_AI_MODEL_DEPLOYMENT_NAME"):
        assert name in text
    assert "--emulator" in text


@pytest.mark.parametrize(
    "endpoint",
    ["res.services.ai.azure.com/api/projects/p", "http://example.com/api/projects/p", f"{ENDPOINT}?x=1"],
)
def test_malformed_endpoints_are_refused_with_a_message(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({"AZURE_AI_PROJECT_ENDPOINT": endpoint, "AZURE_AI_MODEL_DEPLOYMENT_NAME": "m", "HOME": "/tmp"})
    assert "endpoint" in str(caught.value)


def test_invalid_agent_name_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        Settings.load(
            {"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT, "AZURE_AI_MODEL_DEPLOYMENT_NAME": "m"}, agent_name="-bad-"
        )


def test_server_without_endpoint_exits_with_one_clear_message_and_no_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "AZURE_AI_PROJECT_ENDPOINT" in done.stderr and "--emulator" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_flag_prints_the_package_version() -> None:
    from mcp_server import __version__

    done = subprocess.run([sys.executable, "-m", "mcp_server", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and __version__ in done.stdout
