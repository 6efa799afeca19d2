"""Input images for `edit_image`: each reference (resource URI, path, file:// URI, data URL,
https URL, Foundry file id, base64) resolved to checked bytes before any upstream call."""

from __future__ import annotations

from mcp_server.inputs.checks import MAX_INPUT_BYTES
from mcp_server.inputs.classify import looks_like_path
from mcp_server.inputs.fetch import UrlFetcher
from mcp_server.inputs.paths import roots_to_dirs
from mcp_server.inputs.references import MAX_IMAGES, InputResolver, ResolvedImage

__all__ = [
    "MAX_IMAGES",
    "MAX_INPUT_BYTES",
    "InputResolver",
    "ResolvedImage",
    "UrlFetcher",
    "looks_like_path",
    "roots_to_dirs",
]
