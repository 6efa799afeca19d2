"""How the settings are read: from the environment `load` is given (else `os.environ`), only the variables the
settings declare, an empty one counting as unset; keyword arguments (CLI flags) first. `config` declares the
settings themselves on top of `EnvironSettings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

_environ: ContextVar[Mapping[str, str] | None] = ContextVar("foundry_image_mcp_environ", default=None)
"""The environment `load` was given in place of `os.environ`, while it builds the settings."""


def current_environ() -> Mapping[str, str]:
    environ = _environ.get()
    return os.environ if environ is None else environ


@contextmanager
def reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _environ.set(environ)
    try:
        yield
    finally:
        _environ.reset(token)


def variables(model: type[BaseSettings]) -> dict[str, str]:
    """Field name by environment variable, for every variable `model` reads."""
    found: dict[str, str] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        for choice in alias.choices if isinstance(alias, AliasChoices) else [alias]:
            if isinstance(choice, str):
                found[choice] = name
    return found


class _EnvironSource(EnvSettingsSource):
    """The environment `load` was given (else `os.environ`): only the declared variables, empty ones unset.

    Fields without a variable (a nested group, the emulator flag) and field names are never read from it.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        declared = variables(self.settings_cls)
        return {name: value for name, value in current_environ().items() if name in declared and value != ""}


class EnvironSettings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", case_sensitive=True, validate_by_name=True, validate_by_alias=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments (CLI flags) first, then the environment; no .env file, no secrets dir.
        return init_settings, _EnvironSource(settings_cls)


def split_values(separators: str, value: Any) -> Any:
    """A variable's list value: split on `separators` (a regex class), blanks trimmed and dropped."""
    if not isinstance(value, str):
        return value
    return tuple(part.strip() for part in re.split(separators, value) if part.strip())


def blank_is_unset(value: Any) -> Any:
    """A blank value (an empty flag) means unset, as an empty variable does."""
    return (value.strip() or None) if isinstance(value, str) else value
