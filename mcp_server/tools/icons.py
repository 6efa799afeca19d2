"""Icons for the server and its tools, shipped as PNG files and sent as data: URIs (no network needed)."""

from __future__ import annotations

import base64
from functools import cache
from importlib.resources import files

from mcp.types import Icon


@cache
def icon(name: str, size: int) -> Icon:
    data = files("mcp_server.tools").joinpath("assets", f"{name}.png").read_bytes()
    src = "data:image/png;base64," + base64.b64encode(data).decode()
    return Icon(src=src, mime_type="image/png", sizes=[f"{size}x{size}"])
