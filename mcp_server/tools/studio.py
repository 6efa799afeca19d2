"""The image studio: an MCP Apps view (`ui://foundry-image/studio.html`) bound to both image tools.

Hosts that implement the MCP Apps extension (`io.modelcontextprotocol/ui`) render the view next to the
conversation: it shows the picture forming, the result at full resolution, before/after comparisons, the
lineage of edits, and refines or repaints a painted area in place by calling `edit_image` through the host.

Clients without Apps see exactly what they saw before the studio existed: `tools/list` without the
`_meta.ui` entries and `resources/list` without the `ui://` resource (the spec lets a server offer tool
variants by host capability, and omit UI-only resources from listings). Tool results are the same for
every client. The view's HTML, CSS and JavaScript ship in the package (`assets/studio/`), inlined into one
self-contained document: no CDN, no network beyond the host's bridge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any, Final

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, Apps, client_supports_apps
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from mcp.types import Resource as MCPResource
from mcp.types import Tool as MCPTool

from mcp_server.service.deployments import ResolvedDeployments

STUDIO_URI: Final = "ui://foundry-image/studio.html"
META_KEY: Final = "io.github.foundry-image-mcp/studio"
"""The result `_meta` entry the studio reads (the image model), sent only to clients with MCP Apps."""
UI_SCHEME: Final = "ui://"
_CSS_SLOT: Final = "/*STUDIO_CSS*/"
_JS_SLOT: Final = "/*STUDIO_JS*/"

__all__ = ["APP_MIME_TYPE", "EXTENSION_ID", "STUDIO_URI", "studio_apps", "studio_html", "visible_resources"]


def _asset(name: str) -> str:
    return files("mcp_server.tools").joinpath("assets", "studio", name).read_text(encoding="utf-8")


@cache
def studio_html() -> str:
    """The view as one HTML document: studio.html with studio.css and studio.js inlined."""
    page = _asset("studio.html")
    assert _CSS_SLOT in page and _JS_SLOT in page, "studio.html lost its slots"
    return page.replace(_CSS_SLOT, _asset("studio.css")).replace(_JS_SLOT, _asset("studio.js"))


def studio_apps(tools: Sequence[tuple[Callable[..., Any], dict[str, Any]]]) -> Apps:
    """The Apps extension: each (tool, `add_tool` keyword arguments) bound to the studio, and the view itself."""
    apps = Apps()
    for tool, options in tools:
        apps.tool(resource_uri=STUDIO_URI, **options)(tool)
    apps.add_html_resource(
        STUDIO_URI,
        studio_html(),
        name="studio",
        title="Foundry Image Studio",
        description="Watch the image form, compare edits, paint a mask and refine in place.",
        prefers_border=True,
    )
    return apps


def wants_ui(ctx: ServerRequestContext[Any, Any] | Context[Any, Any]) -> bool:
    """Whether the client negotiated MCP Apps (declared the extension with the view's MIME type)."""
    return client_supports_apps(ctx)


async def studio_meta(
    ctx: Context[Any, Any], result: CallToolResult, deployments: Callable[[], Awaitable[ResolvedDeployments]]
) -> CallToolResult:
    """`result`, with the image model and deployment in its `_meta` for a client with MCP Apps (the view shows
    them; the structured content stays the same for every client)."""
    if not wants_ui(ctx):
        return result
    resolved = await deployments()
    studio = {"model": resolved.image_model, "deployment": resolved.image_deployment}
    return result.model_copy(update={"meta": {**(result.meta or {}), META_KEY: studio}})


def without_ui(tools: list[MCPTool]) -> list[MCPTool]:
    """The tools as a client without Apps sees them: no `_meta.ui` (and no `_meta` left empty by its removal)."""
    plain = []
    for tool in tools:
        meta = {key: value for key, value in (tool.meta or {}).items() if key != "ui"}
        plain.append(tool.model_copy(update={"meta": meta or None}) if tool.meta is not None else tool)
    return plain


def visible_resources(resources: list[MCPResource], ui: bool) -> list[MCPResource]:
    """The `ui://` resources only for a client with Apps."""
    return resources if ui else [r for r in resources if not str(r.uri).startswith(UI_SCHEME)]
