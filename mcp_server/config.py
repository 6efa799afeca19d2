"""Settings: read once at start from the environment (pydantic-settings), overridden by CLI flags.

Every setting the server reads is a field here, named by its environment variable; nothing else
in the package reads `os.environ` except to hand the environment on to a child process.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from mcp_server.config_source import (
    EnvironSettings,
    blank_is_unset,
    current_environ,
    reading,
    split_values,
    variables,
)
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
RESCAN_VAR = "FOUNDRY_IMAGE_MCP_RESCAN_SECONDS"
CONNECT_TIMEOUT_VAR = "FOUNDRY_IMAGE_MCP_CONNECT_TIMEOUT"
READ_TIMEOUT_VAR = "FOUNDRY_IMAGE_MCP_READ_TIMEOUT"
MAX_CONCURRENT_VAR = "FOUNDRY_IMAGE_MCP_MAX_CONCURRENT"
AUTH_TOKENS_VAR = "FOUNDRY_IMAGE_MCP_AUTH_TOKENS"
ENTRA_TENANT_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_TENANT_ID"
ENTRA_AUDIENCE_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_AUDIENCE"
ENTRA_SCOPES_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_SCOPES"
ENTRA_ISSUER_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_ISSUER"
ENTRA_JWKS_URL_VAR = "FOUNDRY_IMAGE_MCP_ENTRA_JWKS_URL"
STORE_VAR = "FOUNDRY_IMAGE_MCP_STORE"
BLOB_URL_VAR = "FOUNDRY_IMAGE_MCP_BLOB_ACCOUNT_URL"
BLOB_CONNECTION_VAR = "FOUNDRY_IMAGE_MCP_BLOB_CONNECTION_STRING"
BLOB_CONTAINER_VAR = "FOUNDRY_IMAGE_MCP_BLOB_CONTAINER"

DEFAULT_AGENT_NAME = "foundry-image-mcp"
DEFAULT_CONTAINER = "foundry-images"
CONTAINER_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
"""An Azure Blob Storage container name (3 to 63 characters): lowercase letters and digits, single hyphens."""
EXAMPLE_URLS = {
    "endpoint": "https://<resource>.services.ai.azure.com/api/projects/<project>",
    "blob_account_url": "https://<account>.blob.core.windows.net",
}

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The loopback names this package recognizes (any other loopback IP address counts too)."""


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a name or an IP address, IPv6 with or without brackets) is this machine only."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_output_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user data directory for images, following each platform's convention."""
    env = current_environ() if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "foundry-image-mcp" / "images"


class InboundAuthSettings(EnvironSettings):
    """HTTP transport only: who may call this server (see `mcp_server.http.verifiers.build_verifier`)."""

    auth_tokens: SecretStr | None = Field(default=None, validation_alias=AUTH_TOKENS_VAR)
    entra_tenant_id: str | None = Field(default=None, validation_alias=ENTRA_TENANT_VAR)
    entra_audience: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias=ENTRA_AUDIENCE_VAR)
    entra_scopes: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias=ENTRA_SCOPES_VAR)
    entra_issuer: str | None = Field(default=None, validation_alias=ENTRA_ISSUER_VAR)
    entra_jwks_url: str | None = Field(default=None, validation_alias=ENTRA_JWKS_URL_VAR)

    _blank = field_validator("entra_tenant_id", "entra_issuer", "entra_jwks_url", mode="before")(blank_is_unset)

    @field_validator("entra_audience", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return split_values(",", value)

    @field_validator("entra_scopes", mode="before")
    @classmethod
    def _space_or_comma_separated(cls, value: Any) -> Any:
        return split_values(r"[\s,]", value)

    @property
    def entra_configured(self) -> bool:
        """Whether any Microsoft Entra ID setting is given (a half-given one is an error to report)."""
        return any(
            (self.entra_tenant_id, self.entra_audience, self.entra_scopes, self.entra_issuer, self.entra_jwks_url)
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> InboundAuthSettings:
        """Read `environ` (default `os.environ`)."""
        with reading(environ):
            return cls()


class Settings(EnvironSettings):
    """Everything the server needs to know, validated once."""

    endpoint: str = Field(validation_alias=AliasChoices(*ENDPOINT_VARS), description="Foundry project endpoint")
    model_deployment: str | None = Field(
        default=None,
        validation_alias=MODEL_VAR,
        description="orchestrator model deployment of the agent; None: the project's one such deployment",
    )
    image_deployment: str | None = Field(
        default=None,
        validation_alias=IMAGE_VAR,
        description="image model deployment; None: the project's one image model deployment",
    )
    agent_name: str = Field(
        default=DEFAULT_AGENT_NAME,
        min_length=1,
        max_length=AGENT_NAME_MAX,
        pattern=AGENT_NAME_PATTERN,
        validation_alias=AGENT_VAR,
    )
    api_key: SecretStr | None = Field(default=None, validation_alias=API_KEY_VAR)
    output_dir: Path = Field(default_factory=default_output_dir, validation_alias=OUTPUT_DIR_VAR)
    input_dirs: Annotated[tuple[Path, ...], NoDecode] = Field(default=(), validation_alias=INPUT_DIRS_VAR)
    trusted_url_hosts: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias=TRUSTED_HOSTS_VAR
    )
    poll_interval: float = Field(default=1.0, gt=0, le=60, validation_alias=POLL_INTERVAL_VAR)
    timeout: float = Field(default=600.0, gt=0, validation_alias=TIMEOUT_VAR, description="seconds per generation")
    heartbeat: float = Field(default=5.0, gt=0, le=10, validation_alias=HEARTBEAT_VAR)
    rescan_seconds: float = Field(default=60.0, gt=0, le=3600, validation_alias=RESCAN_VAR)
    connect_timeout: float = Field(default=10.0, gt=0, validation_alias=CONNECT_TIMEOUT_VAR)
    read_timeout: float = Field(default=120.0, gt=0, validation_alias=READ_TIMEOUT_VAR)
    max_concurrent: int = Field(default=16, ge=1, le=1024, validation_alias=MAX_CONCURRENT_VAR)
    store: Literal["local", "azure-blob"] = Field(default="local", validation_alias=STORE_VAR)
    blob_account_url: str | None = Field(default=None, validation_alias=BLOB_URL_VAR)
    blob_connection_string: SecretStr | None = Field(default=None, validation_alias=BLOB_CONNECTION_VAR)
    blob_container: str = Field(
        default=DEFAULT_CONTAINER,
        min_length=3,
        max_length=63,
        pattern=CONTAINER_PATTERN,
        validation_alias=BLOB_CONTAINER_VAR,
    )
    inbound: InboundAuthSettings = Field(default_factory=InboundAuthSettings, description="HTTP only")
    emulator: bool = False

    @field_validator("endpoint", "blob_account_url")
    @classmethod
    def _service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The project endpoint, or the storage account's blob endpoint (which must not carry a SAS token)."""
        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"must be an absolute URL such as {EXAMPLE_URLS[info.field_name or 'endpoint']}")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must use https (plain http is only allowed for a loopback emulator)")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value

    @field_validator("model_deployment", "image_deployment", "blob_account_url", mode="before")
    @classmethod
    def _blank_name_is_unset(cls, value: Any) -> Any:
        """A blank deployment name (an empty flag) means: discover it, as an empty variable does."""
        return blank_is_unset(value)

    @model_validator(mode="after")
    def _one_storage_account(self) -> Settings:
        """Azure Blob Storage is reached either with Entra ID (the account URL) or with a connection string."""
        if self.store == "azure-blob" and (self.blob_account_url is None) == (self.blob_connection_string is None):
            raise ValueError(f"{STORE_VAR}=azure-blob needs exactly one of {BLOB_URL_VAR} and {BLOB_CONNECTION_VAR}")
        return self

    @field_validator("output_dir")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("input_dirs", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        return tuple(Path(p) for p in value.split(os.pathsep) if p) if isinstance(value, str) else value

    @field_validator("trusted_url_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        return frozenset(host.lower() for host in split_values(",", value)) if isinstance(value, str) else value

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `environ` (default `os.environ`), apply the non-None `overrides` (CLI flags), and validate.

        Raises:
            ConfigurationError: with one message naming every missing or malformed setting.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        try:
            with reading(environ):
                return cls(**given)
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    @property
    def auth_mode(self) -> str:
        return "api-key" if self.api_key is not None else "entra-id"


_REQUIRED = {"endpoint": f"{ENDPOINT_VARS[0]} (or {ENDPOINT_VARS[1]}, or --endpoint)"}


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """One message for every problem; it never repeats a value, which may be a secret."""
    names = {**variables(InboundAuthSettings), **variables(Settings)}
    located = [([names.get(str(part), str(part)) for part in err["loc"]], err) for err in exc.errors()]
    missing = [_REQUIRED[loc[0]] for loc, err in located if err["type"] == "missing" and loc and loc[0] in _REQUIRED]
    if missing:
        return ConfigurationError(
            "foundry-image-mcp is not configured: set " + " and ".join(missing) + ".",
            hint=f"For example {ENDPOINT_VARS[0]}=https://<resource>.services.ai.azure.com/api/projects/<project>; "
            f"the image and orchestrator model deployments are found in the project ({IMAGE_VAR} and "
            f"{MODEL_VAR} choose others). To try it without Azure, run "
            "`foundry-image-mcp --emulator` or `foundry-image-mcp demo`.",
        )
    problems = "; ".join(f"{'.'.join(loc) or 'settings'}: {err['msg']}" for loc, err in located)
    return ConfigurationError(f"foundry-image-mcp settings are invalid: {problems}.")
