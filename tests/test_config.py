from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.config import (
    AUTH_TOKENS_VAR,
    ENTRA_AUDIENCE_VAR,
    ENTRA_ISSUER_VAR,
    ENTRA_JWKS_URL_VAR,
    ENTRA_SCOPES_VAR,
    ENTRA_TENANT_VAR,
    InboundAuthSettings,
    Settings,
    default_output_dir,
    is_loopback,
)
from mcp_server.errors import ConfigurationError

ENDPOINT = "https://res.services.ai.azure.com/api/projects/proj"
REQUIRED = {"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT, "HOME": "/tmp"}
SECRET = "alice-token-0123456789abcdef"


def test_settings_read_the_environment_with_defaults(tmp_path: Path) -> None:
    settings = Settings.load({"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT + "/", "HOME": str(tmp_path)})
    assert settings.endpoint == ENDPOINT
    assert (settings.image_deployment, settings.model_deployment) == (None, None), "found in the project"
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
    message = caught.value.message
    assert message == (
        "foundry-image-mcp is not configured: set AZURE_AI_PROJECT_ENDPOINT (or AZURE_AI_FOUNDRY_PROJECT_ENDPOINT, "
        "or --endpoint)."
    )
    hint = caught.value.hint or ""
    assert "--emulator" in hint and "found in the project" in hint
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in hint and "AZURE_AI_MODEL_DEPLOYMENT_NAME" in hint


def test_only_the_endpoint_is_required_and_no_image_model_is_assumed() -> None:
    import mcp_server.config as config

    settings = Settings.load({"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT})
    assert (settings.model_deployment, settings.image_deployment) == (None, None)
    assert not hasattr(config, "DEFAULT_IMAGE_DEPLOYMENT")
    given = Settings.load(
        {"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT, "AZURE_AI_IMAGE_DEPLOYMENT_NAME": " pictures "},
        model_deployment="chat",
    )
    assert (given.model_deployment, given.image_deployment) == ("chat", "pictures")
    blank_flags = Settings.load({"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT}, model_deployment=" ", image_deployment="")
    assert (blank_flags.model_deployment, blank_flags.image_deployment) == (None, None)


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


def test_the_inbound_auth_settings_are_read_and_split_and_the_tokens_stay_secret() -> None:
    settings = Settings.load(
        {
            **REQUIRED,
            AUTH_TOKENS_VAR: f"alice:{SECRET}",
            ENTRA_TENANT_VAR: " 11111111-2222-4333-8444-555555555555 ",
            ENTRA_AUDIENCE_VAR: "api://images, 0c0c0c0c ,",
            ENTRA_SCOPES_VAR: "Images.Write, Images.Read  Other",
            ENTRA_ISSUER_VAR: "https://login.microsoftonline.us/t/v2.0",
            ENTRA_JWKS_URL_VAR: "https://login.microsoftonline.us/t/discovery/v2.0/keys",
        }
    )
    inbound = settings.inbound
    assert inbound.auth_tokens is not None and inbound.auth_tokens.get_secret_value() == f"alice:{SECRET}"
    assert inbound.entra_tenant_id == "11111111-2222-4333-8444-555555555555"
    assert inbound.entra_audience == ("api://images", "0c0c0c0c")
    assert inbound.entra_scopes == ("Images.Write", "Images.Read", "Other")
    assert inbound.entra_issuer == "https://login.microsoftonline.us/t/v2.0"
    assert inbound.entra_jwks_url == "https://login.microsoftonline.us/t/discovery/v2.0/keys"
    assert inbound.entra_configured
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_without_inbound_auth_settings_the_group_is_empty() -> None:
    inbound = Settings.load(REQUIRED).inbound
    assert inbound == InboundAuthSettings.load({})
    assert (inbound.auth_tokens, inbound.entra_tenant_id, inbound.entra_audience) == (None, None, ())
    assert not inbound.entra_configured
    assert not InboundAuthSettings.load({ENTRA_TENANT_VAR: "  ", ENTRA_SCOPES_VAR: " , "}).entra_configured


def test_a_given_environment_replaces_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REQUIRED, AUTH_TOKENS_VAR: f"alice:{SECRET}", "FOUNDRY_IMAGE_MCP_TIMEOUT": "7"}.items():
        monkeypatch.setenv(name, value)
    from_process = Settings.load()
    assert (from_process.endpoint, from_process.timeout) == (ENDPOINT, 7.0)
    assert from_process.inbound.auth_tokens is not None
    given = Settings.load({**REQUIRED, "AZURE_AI_MODEL_DEPLOYMENT_NAME": "other"})
    assert (given.model_deployment, given.timeout, given.inbound.auth_tokens) == ("other", 600.0, None)
    assert InboundAuthSettings.load({}).auth_tokens is None
    with pytest.raises(ConfigurationError, match="not configured"):
        Settings.load({})


def test_only_the_documented_variables_are_read_and_empty_ones_count_as_unset() -> None:
    env = {
        **REQUIRED,
        "FOUNDRY_IMAGE_MCP_TIMEOUT": "",
        "AZURE_AI_IMAGE_DEPLOYMENT_NAME": "",
        "emulator": "true",
        "inbound": '{"auth_tokens": "x"}',
        "timeout": "1",
    }
    settings = Settings.load(env)
    assert (settings.timeout, settings.image_deployment, settings.emulator) == (600.0, None, False)
    assert settings.inbound.auth_tokens is None
    with pytest.raises(ConfigurationError, match="not configured: set AZURE_AI_PROJECT_ENDPOINT"):
        Settings.load({"endpoint": ENDPOINT, "AZURE_AI_MODEL_DEPLOYMENT_NAME": "m"})
    assert Settings.load({**REQUIRED, "AZURE_AI_MODEL_DEPLOYMENT_NAME": ""}).model_deployment is None


def test_every_malformed_setting_is_named_in_one_message() -> None:
    env = {**REQUIRED, "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT": "many", "FOUNDRY_IMAGE_MCP_HEARTBEAT": "11"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(env, timeout=-1)
    message = caught.value.message
    assert message.startswith("foundry-image-mcp settings are invalid: ")
    for name in ("timeout:", "heartbeat:", "max_concurrent:"):
        assert name in message


def test_a_secret_is_never_repeated_in_an_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({**REQUIRED, "AZURE_AI_API_KEY": SECRET}, bogus=SECRET)
    assert "bogus" in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"])
def test_plain_http_is_allowed_for_a_loopback_emulator(host: str) -> None:
    settings = Settings.load({**REQUIRED, "AZURE_AI_PROJECT_ENDPOINT": f"http://{host}/api/projects/emulator"})
    assert settings.endpoint == f"http://{host}/api/projects/emulator"


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
