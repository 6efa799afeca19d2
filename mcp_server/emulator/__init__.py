"""A faithful local emulator of the Azure AI Foundry project REST surface used for image generation.

It serves the agents CRUD, the OpenAI-compatible Responses API (with the `image_generation`
tool, streaming, background mode) and Files, rendering real images with Pillow. Faults (rate limits,
server errors, broken connections, stalls, content filters) can be injected; see `faults`. Only
`mcp_server.protocol` is shared with the rest of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import EmulatorConfig
    from .fault_names import FAULTS
    from .runner import RunningEmulator, serve_emulator, start_emulator
    from .state import EmulatorState, PendingFault, RecordedRequest, StoredResponse

_HOMES = {
    "FAULTS": "fault_names",
    "EmulatorConfig": "config",
    "EmulatorState": "state",
    "PendingFault": "state",
    "RecordedRequest": "state",
    "RunningEmulator": "runner",
    "StoredResponse": "state",
    "create_app": "app",
    "serve_emulator": "runner",
    "start_emulator": "runner",
}


def __getattr__(name: str) -> Any:
    """Imported on first use, so `serve` (whose --help names the faults) does not load the emulator's app."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "FAULTS",
    "EmulatorConfig",
    "EmulatorState",
    "PendingFault",
    "RecordedRequest",
    "RunningEmulator",
    "StoredResponse",
    "create_app",
    "serve_emulator",
    "start_emulator",
]
