"""What every route handler receives: the request, its parsed parts, and the emulator's state and configuration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .config import EmulatorConfig
from .errors import foundry_error, invalid_payload
from .state import EmulatorState


@dataclass
class Ctx:
    request: Request
    body: Any | None
    raw: bytes
    headers: dict[str, str]
    query: dict[str, str]
    params: dict[str, str]
    state: EmulatorState
    config: EmulatorConfig
    fault: str | None = None
    """The injected fault this request is answered with (see faults.py), for handlers that shape their answer."""

    def json_object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise invalid_payload("The request body must be a JSON object.", None)
        return self.body

    def require_api_version(self, expected: str) -> None:
        got = self.query.get("api-version")
        if got != expected:
            shown = "missing" if got is None else repr(got)
            raise foundry_error(
                400,
                "invalid_payload" if got is None else "UnsupportedApiVersion",
                f"The api-version query parameter is {shown}; this route supports api-version={expected}.",
                "api-version",
            )


Handler = Callable[[Ctx], Awaitable[Response]]
