"""The MCP surface: tools and resources registered on an `MCPServer`, errors mapped to results.

Protocol logic lives in `mcp_server.foundry` and `mcp_server.service.generation`; this module only
wires them to MCP.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx2
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import CallToolResult, InputRequiredResult, ListRootsResult
from mcp.types import Resource as MCPResource
from mcp.types import ResourceTemplate as MCPResourceTemplate
from mcp_types.version import is_version_at_least
from pydantic import AnyUrl, Field

from mcp_server import __version__
from mcp_server.config import Settings
from mcp_server.errors import FoundryImageError
from mcp_server.foundry.agents import AgentRegistry
from mcp_server.foundry.auth import ApiKeyAuth, EntraTokenAuth
from mcp_server.foundry.http import FoundryHttp, build_client
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import RunSettings
from mcp_server.images.partials import PARTIAL_PREFIX, PARTIAL_TEMPLATE, PartialPreviews
from mcp_server.images.store import URI_TEMPLATE, image_id_from_uri
from mcp_server.images.stores import Stores
from mcp_server.inputs import MAX_IMAGES, InputResolver, UrlFetcher, looks_like_path, roots_to_dirs
from mcp_server.protocol import (
    MAX_PROMPT_CHARS,
    InputFidelity,
)
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import ImageOptions
from mcp_server.service.generation import ImageService
from mcp_server.tools.icons import icon
from mcp_server.tools.params import (
    BackgroundParam,
    CompressionParam,
    ModerationParam,
    OutputFormatParam,
    PartialImagesParam,
    QualityParam,
    SizeParam,
    tool_annotations,
)
from mcp_server.tools.results import ImageResult, error_result, image_result

logger = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 30.0

INSTRUCTIONS = """\
Generates images with Azure AI Foundry (gpt-image-1 through a Foundry agent).
Use generate_image to create a new image from a text description, and edit_image to change
existing images ("make the sky orange", combine references, repaint a masked area).
Each result has an inline preview, a resource_link (foundry-image://images/<id>) whose
resources/read returns the full-resolution original, and the path where the file was saved.
To edit an image this server made, pass its foundry-image:// URI in `images`: the edit then
continues the earlier conversation. Other images can be passed as a file path or file://
URI in an allowed directory, an https URL, a data: URL or base64, or a Foundry file id.
Describe subject, style, composition and any text to render in the prompt; choose size
1536x1024 for landscape and 1024x1536 for portrait; background='transparent' needs png or webp.
"""


@dataclass
class AppState:
    service: ImageService
    fetcher: UrlFetcher


@dataclass(frozen=True)
class InboundAuth:
    """How HTTP requests are authenticated (the SDK's verifier and settings)."""

    verifier: TokenVerifier
    settings: AuthSettings


def client_roots(
    ctx: Context[AppState, Any], images: list[str], mask: str | None = None
) -> ListRoots | ListRootsResult:
    """Ask the client for its roots only when a path needs them and the client can answer."""
    references = [ref for ref in [*images, mask] if isinstance(ref, str)]
    if not any(looks_like_path(ref) for ref in references):
        return ListRootsResult(roots=[])
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return ListRootsResult(roots=[])
    version = ctx.protocol_version
    modern = version is not None and is_version_at_least(version, "2026-07-28")
    if not modern and not ctx.session.can_send_request:
        return ListRootsResult(roots=[])  # e.g. stateless HTTP: no back-channel to ask on
    return ListRoots()


class ImageServer(MCPServer[AppState]):
    """`MCPServer` whose resources are the images in the store, listed and read from disk."""

    def __init__(self, stores: Stores, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stores = stores
        self.partials = PartialPreviews()

    async def list_resources(self) -> list[MCPResource]:
        records = self.stores.current().records()
        return [
            *await super().list_resources(),
            *(
                MCPResource(
                    uri=record.uri,
                    name=record.file_name,
                    title=(record.prompt or record.image_id)[:80],
                    description=f"{record.width}x{record.height} image created {record.created_at}",
                    mime_type=record.mime_type,
                    size=record.bytes,
                )
                for record in records
            ),
        ]

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
        record = store.get(image_id)
        if record is None:
            raise ResourceNotFoundError(f"No stored image with URI {uri}")
        return [ReadResourceContents(content=store.read_bytes(record), mime_type=record.mime_type)]


def build_server(
    settings: Settings, inbound: InboundAuth | None = None, *, retry: RetryPolicy | None = None
) -> ImageServer:
    """The server for `settings`; with `inbound`, HTTP requests are authenticated and each principal
    gets its own image store. `retry` replaces the default retry policy (tests pass short delays)."""
    stores = Stores(settings.output_dir, isolated=inbound is not None)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        auth = ApiKeyAuth(settings.api_key.get_secret_value()) if settings.api_key else EntraTokenAuth()
        http = FoundryHttp(
            lambda: build_client(settings.endpoint, auth, _timeouts(settings)),
            image_deployment=settings.image_deployment,
            retry=retry,
        )
        async with (
            UrlFetcher(trusted_hosts=settings.trusted_url_hosts) as fetcher,
            anyio.create_task_group() as background,
        ):
            jobs = BackgroundJobs(background)
            registry = AgentRegistry(http, settings.agent_name, settings.model_deployment)
            service = ImageService(
                http,
                registry,
                model_deployment=settings.model_deployment,
                max_concurrent=settings.max_concurrent,
                jobs=jobs,
                run_settings=RunSettings(
                    poll_interval=settings.poll_interval, timeout=settings.timeout, heartbeat=settings.heartbeat
                ),
                partials=server.partials,
            )
            await service.resume_pending(stores.every())
            try:
                yield AppState(service=service, fetcher=fetcher)
            finally:
                # Generations whose caller left get a grace period to land before the process exits;
                # whatever is still running stays recorded and is resumed at the next start.
                with anyio.CancelScope(shield=True):
                    if not await jobs.drain(SHUTDOWN_GRACE_SECONDS):
                        logger.warning("Leaving unfinished generations to be resumed at the next start")
                background.cancel_scope.cancel()
                await http.aclose()

    server = ImageServer(
        stores,
        token_verifier=inbound.verifier if inbound else None,
        auth=inbound.settings if inbound else None,
        name="foundry-image-mcp",
        title="Foundry Image",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://github.com/foundry-image-mcp/foundry-image-mcp",
        icons=[icon("icon", 128)],
        lifespan=lifespan,
    )
    note = "Rendered by the local Foundry emulator, not by Azure." if settings.emulator else None

    @server.tool(
        title="Generate image",
        icons=[icon("generate", 64)],
        annotations=tool_annotations("Generate image"),
    )
    async def generate_image(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_PROMPT_CHARS,
                description="What to draw: subject, style, composition, lighting, any text to render.",
            ),
        ],
        size: SizeParam = "auto",
        quality: QualityParam = "auto",
        output_format: OutputFormatParam = "png",
        output_compression: CompressionParam = None,
        background: BackgroundParam = "auto",
        moderation: ModerationParam = "auto",
        partial_images: PartialImagesParam = 0,
        *,
        ctx: Context[AppState, Any],
    ) -> Annotated[CallToolResult, ImageResult]:
        """Generate a new image from a text prompt with gpt-image-1 on Azure AI Foundry.

        Returns an inline preview, a resource link to the full-resolution file (read it with
        resources/read), the saved file path, and structured metadata.
        """
        options = ImageOptions(size, quality, output_format, output_compression, background, moderation, partial_images)

        state = ctx.request_context.lifespan_context
        try:
            store = stores.current()
            generated = await state.service.generate(prompt, options, store, _progress(ctx), _cancel_check(ctx))
        except FoundryImageError as exc:
            logger.info("generate_image failed: %s", exc.code)
            return error_result(exc)
        return image_result(generated, store, note=note)

    @server.tool(
        title="Edit image",
        icons=[icon("edit", 64)],
        annotations=tool_annotations("Edit image"),
    )
    async def edit_image(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_PROMPT_CHARS,
                description="The change to make, e.g. 'make the sky a sunset orange' or 'put the cat from image 2 "
                "on the sofa in image 1'.",
            ),
        ],
        images: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=MAX_IMAGES,
                description="1-16 images, the one to edit first. Each is a foundry-image://images/<id> URI from "
                "this server (continues that image's conversation), a file path or file:// URI in an allowed "
                "directory, an https URL, a data:image/...;base64 URL or bare base64, or a Foundry file id.",
            ),
        ],
        mask: Annotated[
            str | None,
            Field(
                description="Optional PNG with an alpha channel, the size of the first image; fully transparent "
                "pixels mark the area to repaint. Same reference forms as images."
            ),
        ] = None,
        input_fidelity: Annotated[
            InputFidelity | None,
            Field(description="high keeps faces, logos and details of the inputs more faithfully (slower)."),
        ] = None,
        size: SizeParam = "auto",
        quality: QualityParam = "auto",
        output_format: OutputFormatParam = "png",
        output_compression: CompressionParam = None,
        background: BackgroundParam = "auto",
        moderation: ModerationParam = "auto",
        partial_images: PartialImagesParam = 0,
        *,
        roots: Annotated[ListRootsResult, Resolve(client_roots)],
        ctx: Context[AppState, Any],
    ) -> Annotated[CallToolResult, ImageResult]:
        """Edit or combine images with gpt-image-1 on Azure AI Foundry, optionally inside a mask.

        Returns the edited image like generate_image does, plus the inputs used and the parent
        image when the first input was an image from this server.
        """
        options = ImageOptions(
            size, quality, output_format, output_compression, background, moderation, partial_images, input_fidelity
        )
        state = ctx.request_context.lifespan_context
        try:
            store = stores.current()
            # The principal's own directory, never the whole output directory: others' images live there.
            resolver = InputResolver(
                store=store, allowed_dirs=[store.root, *settings.input_dirs], fetcher=state.fetcher
            )
            resolved, resolved_mask = await resolver.resolve_all(images, mask, roots_to_dirs(roots))
            generated = await state.service.edit(
                prompt, resolved, resolved_mask, options, store, _progress(ctx), _cancel_check(ctx)
            )
        except FoundryImageError as exc:
            logger.info("edit_image failed: %s", exc.code)
            return error_result(exc)
        return image_result(generated, store, note=note)

    return server


def _timeouts(settings: Settings) -> httpx2.Timeout:
    return httpx2.Timeout(
        connect=settings.connect_timeout, read=settings.read_timeout, write=60.0, pool=settings.connect_timeout
    )


def _progress(ctx: Context[AppState, Any]) -> Callable[[float, float | None, str], Awaitable[None]]:
    async def progress(value: float, total: float | None, message: str) -> None:
        await ctx.report_progress(value, total, message)

    return progress


def _cancel_check(ctx: Context[AppState, Any]) -> Callable[[], bool]:
    """Tells, once the call is cancelled, whether the client asked for it or the server is going away.

    A client's `notifications/cancelled`, or on 2026-07-28 HTTP the closing of the response
    stream, means "stop": the upstream generation is cancelled too. A cancellation without
    either (the stdio client exited, the server is shutting down) leaves the generation running
    so its image is still stored. The SDK keeps the cancel flag on the request's dispatch
    context, which `Context` does not expose; without it, every cancellation counts as a request.
    """

    def client_cancelled() -> bool:
        request = ctx.request_context
        outbound = getattr(request.session, "_request_outbound", None)
        flag = getattr(outbound, "cancel_requested", None)
        if not isinstance(flag, anyio.Event):
            return True
        if flag.is_set():
            return True
        version = request.protocol_version
        return request.request is not None and is_version_at_least(version, "2026-07-28")

    return client_cancelled
