"""A faithful local emulator of the Azure AI Foundry project REST surface used for image generation.

It serves the agents CRUD, the OpenAI-compatible Responses API (with the `image_generation`
tool, streaming, background mode) and Files, rendering real images with Pillow. Faults (rate limits,
server errors, broken connections, stalls, content filters) can be injected; see `faults`. Only
`mcp_server.protocol` is shared with the rest of the package.
"""

from __future__ import annotations

from .app import create_app
from .config import EmulatorConfig
from .fault_names import FAULTS
from .runner import RunningEmulator, serve_emulator, start_emulator
from .state import EmulatorState, PendingFault, RecordedRequest, StoredResponse

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
