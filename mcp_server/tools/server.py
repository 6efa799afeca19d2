"""The MCP server: `ImageServer` (its resources are the stored images), its lifespan, and `build_server`.

The tools are in `mcp_server.tools.tools`; protocol logic lives in `mcp_server.foundry` and
`mcp_server.service`; this module only wires them to MCP.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
)
from mcp.types import Resource as MCPResource
from mcp.types import ResourceTemplate as MCPResourceTemplate
from pydantic import AnyUrl, ValidationError

from mcp_server import __version__
from mcp_server.config import Settings
from mcp_server.foundry.agents import AgentRegistry
from mcp_server.foundry.auth import ApiKeyAuth, EntraTokenAuth
from mcp_server.foundry.deployments import DeploymentsClient
from mcp_server.foundry.http import FoundryHttp, build_client
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import RunSettings
from mcp_server.images.held import HeldImages
from mcp_server.images.partials import PARTIAL_PREFIX, PARTIAL_TEMPLATE, PartialPreviews
from mcp_server.images.records import URI_TEMPLATE, ImageRecord, image_id_from_uri
from mcp_server.images.stores import Stores, open_stores
from mcp_server.inputs import UrlFetcher
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.deployments import DeploymentResolver
from mcp_server.service.generation import ImageService
from mcp_server.service.pending import Sleep
from mcp_server.tools.icons import icon
from mcp_server.tools.params import tool_annotations
from mcp_server.tools.results import error_result, invalid_arguments, unexpected_failure
from mcp_server.tools.sdk_compat import check_sdk_once
from mcp_server.tools.studio import studio_apps, visible_resources, wants_ui, without_ui
from mcp_server.tools.tools import AppState, edit_image, generate_image

logger = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 30.0
EMULATOR_NOTE = "Rendered by the local Foundry emulator, not by Azure."

INSTRUCTIONS = """\
Generates images with Azure AI Foundry: the deployed GPT image model (gpt-image-2, gpt-image-1.5
or gpt-image-1-mini) through a Foundry agent.
Use generate_image to create a new image from a text description, and edit_image to change
existing images ("make the sky orange", combine references, repaint a masked area).
Each result has an inline preview, a resource_link (foundry-image://images/<id>) whose
resources/read returns the full-resolution original, and the path where the file was saved.
To edit an image this server made, pass its foundry-image:// URI in `images`: the edit then
continues the earlier conversation. Other images can be passed as a file path or file://
URI in an allowed directory, an https URL, a data: URL or base64, or a Foundry file id.
Describe subject, style, composition and any text to render in the prompt; choose size
1536x1024 for landscape and 1024x1536 for portrait (gpt-image-2 also takes sizes such as
2048x1152 or 3840x2160); background='transparent' needs png or webp. An option the deployed
model does not support is refused before any call, with the reason and one that works.
"""


@dataclass(frozen=True)
class InboundAuth:
    """How HTTP requests are authenticated (the SDK's verifier and settings)."""

    verifier: TokenVerifier
    settings: AuthSettings


class ImageServer(MCPServer[AppState]):
    """`MCPServer` whose resources are the images in the store, listed and read from disk (or from memory,
    for an image the disk refused), and whose tools fail only with structured errors."""

    def __init__(self, stores: Stores, partials: PartialPreviews, held: HeldImages, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stores = stores
        self.partials = partials
        self.held = held

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Every refusal in one shape: arguments the SDK rejects, and defects, become `structuredContent.error`."""
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            return error_result(unexpected_failure(name, exc))
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                return error_result(invalid_arguments(name, exc.__cause__))
            raise

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """`tools/list`; a client without MCP Apps gets the tools without their `_meta.ui` (studio.py)."""
        tools = await self.list_tools()
        return ListToolsResult(tools=tools if wants_ui(ctx) else without_ui(tools))

    async def list_resources(self) -> list[MCPResource]:
        """The first page of `resources/list`."""
        return (await self.resources_page(None)).resources

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """`resources/list`, a page at a time (the SDK's own handler lists everything at once)."""
        return await self.resources_page(params.cursor if params else None, ui=wants_ui(ctx))

    async def resources_page(self, cursor: str | None, *, ui: bool = True) -> ListResourcesResult:
        """Stored images newest first, `PAGE_SIZE` at most per page; the first page also holds the images the
        store refused (held in memory) and the static resources (the studio's `ui://` view only with `ui`)."""
        store = self.stores.current()
        try:
            page = await store.page(cursor)
        except ValueError:
            raise MCPError(INVALID_PARAMS, "Invalid cursor: pass a nextCursor this server returned.") from None
        records = page.records if cursor else [*self.held.records(store), *page.records]
        resources = [_resource_of(record) for record in records]
        if cursor is None:
            resources = [*visible_resources(await super().list_resources(), ui), *resources]
        return ListResourcesResult(resources=resources, next_cursor=page.next_cursor)

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        return [
            *await super().list_resource_templates(),
            MCPResourceTemplate(
                uri_template=URI_TEMPLATE,
                name="image",
                title="Stored image",
                description="An image generated or edited by this server; reading it returns the exact stored bytes.",
            ),
            MCPResourceTemplate(
                uri_template=PARTIAL_TEMPLATE,
                name="partial-image",
                title="Partial image preview",
                description="A small preview of a partial image streamed while an image is generated (kept in memory).",
                mime_type="image/jpeg",
            ),
        ]

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[AppState, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        if str(uri).startswith(PARTIAL_PREFIX):
            preview = await self.partials.get(str(uri))
            if preview is None:
                raise ResourceNotFoundError(f"No partial image with URI {uri} (they are kept only briefly)")
            return [ReadResourceContents(content=preview.data, mime_type=preview.mime_type)]
        image_id = image_id_from_uri(str(uri))
        if image_id is None:
            return await super().read_resource(uri, context)
        store = self.stores.current()
        record = await store.get(image_id)
        if record is None:
            held = self.held.get(store, image_id)
            if held is None:
                raise ResourceNotFoundError(f"No stored image with URI {uri}")
            return [ReadResourceContents(content=held.data, mime_type=held.record.mime_type)]
        return [ReadResourceContents(content=await store.read(record), mime_type=record.mime_type)]


def _resource_of(record: ImageRecord) -> MCPResource:
    return MCPResource(
        uri=record.uri,
        name=record.file_name,
        title=(record.prompt or record.image_id)[:80],
        description=f"{record.width}x{record.height} image created {record.created_at}",
        mime_type=record.mime_type,
        size=record.bytes,
    )


def build_server(
    settings: Settings,
    inbound: InboundAuth | None = None,
    *,
    retry: RetryPolicy | None = None,
    rescan_sleep: Sleep = anyio.sleep,
) -> ImageServer:
    """The server for `settings`; with `inbound`, HTTP requests are authenticated and each principal
    gets its own image store. `retry` replaces the default retry policy (tests pass short delays), and
    `rescan_sleep` the wait between looks at orphaned records and images the disk refused."""
    check_sdk_once()
    stores = open_stores(settings, isolated=inbound is not None)
    partials = PartialPreviews()
    held = HeldImages()
    named = ((generate_image, "Generate image", "generate"), (edit_image, "Edit image", "edit"))
    tools = [
        (tool, {"title": title, "icons": [icon(name, 64)], "annotations": tool_annotations(title)})
        for tool, title, name in named
    ]
    server = ImageServer(
        stores,
        partials,
        held,
        token_verifier=inbound.verifier if inbound else None,
        auth=inbound.settings if inbound else None,
        name="foundry-image-mcp",
        title="Foundry Image",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://github.com/foundry-image-mcp/foundry-image-mcp",
        icons=[icon("icon", 128)],
        lifespan=lambda _: app_state(settings, Shared(stores, partials, held), retry, rescan_sleep),
        # The tools, bound to the studio view for clients with MCP Apps (tools/studio.py).
        extensions=[studio_apps(tools)],
    )
    return server


@dataclass(frozen=True)
class Shared:
    """What the server and its lifespan both use."""

    stores: Stores
    partials: PartialPreviews
    held: HeldImages


@asynccontextmanager
async def app_state(
    settings: Settings, shared: Shared, retry: RetryPolicy | None, rescan_sleep: Sleep
) -> AsyncIterator[AppState]:
    """The server's lifespan: the Foundry client, the image service, and the background generations."""
    stores = shared.stores
    auth = ApiKeyAuth(settings.api_key.get_secret_value()) if settings.api_key else EntraTokenAuth()
    http = FoundryHttp(
        lambda: build_client(
            settings.endpoint, auth, connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout
        ),
        retry=retry,
    )
    # Found at the first tool call, never here: the handshake must not wait on Foundry.
    deployments = DeploymentResolver(
        DeploymentsClient(http), image_deployment=settings.image_deployment, model_deployment=settings.model_deployment
    )
    async with (
        UrlFetcher(trusted_hosts=settings.trusted_url_hosts) as fetcher,
        anyio.create_task_group() as background,
    ):
        jobs = BackgroundJobs(background)
        service = ImageService(
            http,
            AgentRegistry(http, settings.agent_name),
            deployments=deployments,
            max_concurrent=settings.max_concurrent,
            jobs=jobs,
            run_settings=RunSettings(
                poll_interval=settings.poll_interval, timeout=settings.timeout, heartbeat=settings.heartbeat
            ),
            partials=shared.partials,
            held=shared.held,
        )
        await service.resume_pending(await stores.every())
        background.start_soon(service.pending.watch, stores.every, rescan_sleep, settings.rescan_seconds)
        note = EMULATOR_NOTE if settings.emulator else None
        try:
            yield AppState(service=service, fetcher=fetcher, stores=stores, input_dirs=settings.input_dirs, note=note)
        finally:
            # Generations whose caller left get a grace period to land before the process exits;
            # whatever is still running stays recorded and is resumed at the next start.
            with anyio.CancelScope(shield=True):
                if not await jobs.drain(SHUTDOWN_GRACE_SECONDS):
                    logger.warning("Leaving unfinished generations to be resumed at the next start")
                background.cancel_scope.cancel()
                await shared.held.flush()
                await shared.held.release_all()
                await stores.backend.aclose()
            await http.aclose()


__all__ = ["AppState", "ImageServer", "InboundAuth", "build_server"]
