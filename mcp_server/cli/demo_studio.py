"""`foundry-image-mcp demo --open`: the image studio in the browser, against the emulator, no Azure needed.

It starts the Foundry emulator (spacing its partial images so the picture is seen forming), serves this
server over streamable HTTP on a free loopback port, and opens the default browser on `/studio`. It runs
until interrupted (Ctrl-C), like `serve --transport http`.
"""

from __future__ import annotations

import threading
import webbrowser
from typing import Any, Final

from mcp_server.config import Settings

PARTIAL_INTERVAL: Final = 0.7
"""Seconds between the emulator's partial images, so each one is seen before the next."""


def run_studio_demo(overrides: dict[str, Any], port: int = 0) -> int:
    from mcp_server.emulator import EmulatorConfig, start_emulator
    from mcp_server.http.app import HttpOptions, serve_http
    from mcp_server.http.studio import studio_url

    with start_emulator(EmulatorConfig(partial_interval=PARTIAL_INTERVAL)) as emulator:
        print(f"Foundry emulator running at {emulator.endpoint}", flush=True)
        settings = Settings.load(**overrides, endpoint=emulator.endpoint, emulator=True)

        def open_studio(base_url: str) -> None:
            url = studio_url(base_url)
            print(f"Image studio: {url} (Ctrl-C stops the server)", flush=True)
            # In a thread: a browser command that blocks must not hold the server back.
            threading.Thread(target=webbrowser.open, args=(url,), name="open-studio", daemon=True).start()

        serve_http(settings, HttpOptions(port=port), on_listening=open_studio)
    return 0
