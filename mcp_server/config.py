"""Settings: one pydantic model, read once at start from the environment, overridden by CLI flags."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from mcp_server.errors import ConfigurationError
from mcp_server.protocol import AGENT_NAME_MAX, AGENT_NAME_PATTERN

ENDPOINT_VARS = ("AZURE_AI_PROJECT_ENDPOINT", "AZURE_AI_FOUNDRY_PROJECT_ENDPOINT")
MODEL_VAR = "AZURE_AI_MODEL_DEPLOYMENT_NAME"
IMAGE_VAR = "AZURE_AI_IMAGE_DEPLOYMENT_NAME"
AGENT_VAR = "AZURE_AI_AGENT_NAME"
API_KEY_VAR = "AZURE_AI_API_KEY"
OUTPUT_DIR_VAR = "FOUNDRY_IMAGE_MCP_OUTPUT_DIR"
INPUT_DIRS_VAR = "FOUNDRY_IMAGE_MCP_INPUT_DIRS"
TRUSTED_HOSTS_VAR = "FOUNDRY_IMAGE_MCP_TRUSTED_URL_HOSTS"
POLL_INTERVAL_VAR = "FOUNDRY_IMAGE_MCP_POLL_INTERVAL"
TIMEOUT_VAR = "FOUNDRY_IMAGE_MCP_TIMEOUT"
HEARTBEAT_VAR = "FOUNDRY_IMAGE_MCP_HEARTBEAT"
CONNECT_TIMEOUT_VAR = "FOUNDRY_IMAGE_MCP_CONNECT_TIMEOUT"
READ_TIMEOUT_VAR = "FOUNDRY_IMAGE_MCP_READ_TIMEOUT"
MAX_CONCURRENT_VAR = "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT"

DEFAULT_IMAGE_DEPLOYMENT = "gpt-image-1"
DEFAULT_AGENT_NAME = "foundry-image-mcp"


def default_output_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user data directory for images, following each platform's convention."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "foundry-image-mcp" / "images"


class Settings(BaseModel):
    """Everything the server needs to know, validated once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(description="Foundry project endpoint")
    model_deployment: str = Field(min_length=1, description="orchestrator model deployment of the agent")
    image_deployment: str = Field(default=DEFAULT_IMAGE_DEPLOYMENT, min_length=1)
    agent_name: str = Field(
        default=DEFAULT_AGENT_NAME, min_length=1, max_length=AGENT_NAME_MAX, pattern=AGENT_NAME_PATTERN
    )
    api_key: SecretStr | None = None
    output_dir: Path
    input_dirs: tuple[Path, ...] = ()
    trusted_url_hosts: frozenset[str] = frozenset()
    poll_interval: float = Field(default=1.0, gt=0, le=60, description="seconds between background polls")
    timeout: float = Field(default=600.0, gt=0, description="overall seconds allowed for one generation")
    heartbeat: float = Field(default=5.0, gt=0, le=10, description="max seconds between progress notifications")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to open a connection to Foundry")
    read_timeout: float = Field(default=120.0, gt=0, description="longest silence tolerated on a Foundry connection")
    max_concurrent: int = Field(default=16, ge=1, le=1024, description="upstream generations running at once")
    emulator: bool = False

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_a_project_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(
                "must be an absolute URL such as https://<resource>.services.ai.azure.com/api/projects/<project>"
            )
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("must use https (plain http is only allowed for a loopback emulator)")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment, apply the non-None `overrides` (CLI flags), and validate.

        Raises:
            ConfigurationError: with one message naming every missing or malformed setting.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "endpoint": next((env[name] for name in ENDPOINT_VARS if env.get(name)), None),
            "model_deployment": env.get(MODEL_VAR) or None,
            "image_deployment": env.get(IMAGE_VAR) or None,
            "agent_name": env.get(AGENT_VAR) or None,
            "api_key": env.get(API_KEY_VAR) or None,
            "output_dir": env.get(OUTPUT_DIR_VAR) or None,
            "input_dirs": tuple(Path(p) for p in (env.get(INPUT_DIRS_VAR) or "").split(os.pathsep) if p) or None,
            "trusted_url_hosts": frozenset(
                h.strip().lower() for h in (env.get(TRUSTED_HOSTS_VAR) or "").split(",") if h.strip()
            )
            or None,
            "poll_interval": env.get(POLL_INTERVAL_VAR) or None,
            "timeout": env.get(TIMEOUT_VAR) or None,
            "heartbeat": env.get(HEARTBEAT_VAR) or None,
            "connect_timeout": env.get(CONNECT_TIMEOUT_VAR) or None,
            "read_timeout": env.get(READ_TIMEOUT_VAR) or None,
            "max_concurrent": env.get(MAX_CONCURRENT_VAR) or None,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        missing = [
            label
            for key, label in (
                ("endpoint", f"{ENDPOINT_VARS[0]} (or {ENDPOINT_VARS[1]}, or --endpoint)"),
                ("model_deployment", f"{MODEL_VAR} (or --model-deployment)"),
            )
            if not values.get(key)
        ]
        if missing:
            raise ConfigurationError(
                "foundry-image-mcp is not configured: set " + " and ".join(missing) + ".",
                hint="For example AZURE_AI_PROJECT_ENDPOINT="
                "https://<resource>.services.ai.azure.com/api/projects/<project> and "
                "AZURE_AI_MODEL_DEPLOYMENT_NAME=gpt-4.1. To try it without Azure, run "
                "`foundry-image-mcp --emulator` or `foundry-image-mcp demo`.",
            )
        values["output_dir"] = (
            Path(values["output_dir"]).expanduser() if values["output_dir"] else default_output_dir(env)
        )
        try:
            return cls.model_validate({key: value for key, value in values.items() if value is not None})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"foundry-image-mcp settings are invalid: {problems}.") from None

    @property
    def auth_mode(self) -> str:
        return "api-key" if self.api_key is not None else "entra-id"
