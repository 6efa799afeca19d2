"""The two tools, `generate_image` and `edit_image`; `build_server` registers them.

They only wire MCP to the service: arguments in, `ImageService` call, result or error out.
What they need at call time is the server's `AppState` (its lifespan context).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.types import CallToolResult, ListRootsResult
from mcp_types.version import is_version_at_least
from pydantic import Field

from mcp_server.errors import FoundryImageError
from mcp_server.images.base import ImageStore
from mcp_server.images.stores import Stores
from mcp_server.inputs import MAX_IMAGES, InputResolver, UrlFetcher, looks_like_path, roots_to_dirs
from mcp_server.protocol import INPUT_FIDELITY, MAX_PROMPT_CHARS, InputFidelity
from mcp_server.service.calls import GeneratedImage, ImageOptions
from mcp_server.service.generation import ImageService
from mcp_server.tools.params import with_image_options
from mcp_server.tools.results import ImageResult, error_result, image_result
from mcp_server.tools.sdk_compat import client_cancel_flag
from mcp_server.tools.studio import studio_meta

logger = logging.getLogger(__name__)
MODERN_VERSION = "2026-07-28"


@dataclass
class AppState:
    """What the tools use, made by the server's lifespan."""

    service: ImageService
    fetcher: UrlFetcher
    stores: Stores
    input_dirs: tuple[Path, ...] = ()
    note: str | None = None
    """A line added to every result's text (the emulator says it rendered the image)."""


ToolContext = Context[AppState, Any]

GeneratePrompt = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What to draw: subject, style, composition, lighting, any text to render.",
    ),
]
EditPrompt = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="The change to make, e.g. 'make the sky a sunset orange' or 'put the cat from image 2 "
        "on the sofa in image 1'.",
    ),
]
Images = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=MAX_IMAGES,
        description="1-16 images, the one to edit first. Each is a foundry-image://images/<id> URI from "
        "this server (continues that image's conversation), a file path or file:// URI in an allowed "
        "directory, an https URL, a data:image/...;base64 URL or bare base64, or a Foundry file id.",
    ),
]
Mask = Annotated[
    str | None,
    Field(
        description="Optional PNG with an alpha channel, the size of the first image; fully transparent "
        "pixels mark the area to repaint. Same reference forms as images."
    ),
]
InputFidelityParam = Annotated[InputFidelity | None, Field(description=INPUT_FIDELITY.description)]


def client_roots(ctx: ToolContext, images: list[str], mask: str | None = None) -> ListRoots | ListRootsResult:
    """Ask the client for its roots only when a path needs them and the client can answer."""
    references = [ref for ref in [*images, mask] if isinstance(ref, str)]
    if not any(looks_like_path(ref) for ref in references):
        return ListRootsResult(roots=[])
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return ListRootsResult(roots=[])
    version = ctx.protocol_version
    modern = version is not None and is_version_at_least(version, MODERN_VERSION)
    if not modern and not ctx.session.can_send_request:
        return ListRootsResult(roots=[])  # e.g. stateless HTTP: no back-channel to ask on
    return ListRoots()


@with_image_options
async def generate_image(
    prompt: GeneratePrompt, *, options: ImageOptions, ctx: ToolContext
) -> Annotated[CallToolResult, ImageResult]:
    """Generate a new image from a text prompt with the image model deployed on Azure AI Foundry
    (gpt-image-2, gpt-image-1.5 or gpt-image-1-mini).

    Returns an inline preview, a resource link to the full-resolution file (read it with
    resources/read), the saved file path, and structured metadata. An option the deployed model
    does not take (a size, a quality) is refused before any call, naming one that works.
    """
    state = ctx.request_context.lifespan_context
    try:
        store = state.stores.current()
        generated = await state.service.generate(prompt, options, store, progress(ctx), cancel_check(ctx))
    except FoundryImageError as exc:
        logger.info("generate_image failed: %s", exc.code)
        return error_result(exc)
    return await _result(state, generated, store, ctx)


@with_image_options
async def edit_image(
    prompt: EditPrompt,
    images: Images,
    mask: Mask = None,
    input_fidelity: InputFidelityParam = INPUT_FIDELITY.default,
    *,
    options: ImageOptions,
    roots: Annotated[ListRootsResult, Resolve(client_roots)],
    ctx: ToolContext,
) -> Annotated[CallToolResult, ImageResult]:
    """Edit or combine images with the image model deployed on Azure AI Foundry, optionally inside
    a mask.

    Returns the edited image like generate_image does, plus the inputs used and the parent
    image when the first input was an image from this server. Options are checked against the
    deployed model like generate_image's (input_fidelity: not on gpt-image-1-mini).
    """
    options = dataclasses.replace(options, input_fidelity=input_fidelity)
    state = ctx.request_context.lifespan_context
    try:
        store = state.stores.current()
        # The principal's own directory, never the whole output directory: others' images live there.
        own = [store.directory] if store.directory is not None else []
        resolver = InputResolver(store=store, allowed_dirs=[*own, *state.input_dirs], fetcher=state.fetcher)
        resolved, resolved_mask = await resolver.resolve_all(images, mask, roots_to_dirs(roots))
        generated = await state.service.edit(
            prompt, resolved, resolved_mask, options, store, progress(ctx), cancel_check(ctx)
        )
    except FoundryImageError as exc:
        logger.info("edit_image failed: %s", exc.code)
        return error_result(exc)
    return await _result(state, generated, store, ctx)


async def _result(state: AppState, generated: GeneratedImage, store: ImageStore, ctx: ToolContext) -> CallToolResult:
    """The image's result; for a client with MCP Apps, its `_meta` also names the image model (for the studio)."""
    held = state.service.held.get(store, generated.record.image_id) if generated.unsaved else None
    result = image_result(generated, store, note=state.note, data=held.data if held else None)
    return await studio_meta(ctx, result, state.service.deployments)


def progress(ctx: ToolContext) -> Callable[[float, float | None, str], Awaitable[None]]:
    async def report(value: float, total: float | None, message: str) -> None:
        await ctx.report_progress(value, total, message)

    return report


def cancel_check(ctx: ToolContext) -> Callable[[], bool]:
    """Tells, once the call is cancelled, whether the client asked for it or the server is going away.

    A client's `notifications/cancelled`, or on 2026-07-28 HTTP the closing of the response
    stream, means "stop": the upstream generation is cancelled too. A cancellation without
    either (the stdio client exited, the server is shutting down) leaves the generation running
    so its image is still stored. Without the SDK's cancel flag (see `sdk_compat`), every
    cancellation counts as the client's.
    """

    def client_cancelled() -> bool:
        request = ctx.request_context
        flag = client_cancel_flag(request.session)
        if flag is None or flag.is_set():
            return True
        return request.request is not None and is_version_at_least(request.protocol_version, MODERN_VERSION)

    return client_cancelled
