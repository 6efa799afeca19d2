"""Image generation and editing as a service: options -> agent version -> response -> stored image.

This layer knows Foundry and the store, and nothing of MCP: progress goes out through a plain
callback, and failures are `FoundryImageError`s. The parts: `requests` builds what is sent
(and explains how masks travel), `lifecycle` runs one response, `pending` keeps what is in
flight, `saving` stores the result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import anyio

from mcp_server.errors import FoundryImageError, InvalidInputError, NotFoundError
from mcp_server.foundry.agents import AgentRegistry, AgentVersionRef
from mcp_server.foundry.files import upload_file
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.responses import ResponsesClient, extract_image
from mcp_server.foundry.runs import ResponseRunner, RunSettings
from mcp_server.images.base import ImageStore
from mcp_server.images.held import HeldImages
from mcp_server.images.partials import PartialPreviews
from mcp_server.inputs import ResolvedImage
from mcp_server.protocol import MAX_PROMPT_CHARS, CreateResponseRequest
from mcp_server.service import requests
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import (
    Call,
    CancelCheck,
    GeneratedImage,
    ImageOptions,
    Parent,
    Progress,
    ProgressCallback,
    always,
    no_progress,
)
from mcp_server.service.deployments import DeploymentResolver, ResolvedDeployments
from mcp_server.service.edit_inputs import InputUsage, image_parts, usage
from mcp_server.service.lifecycle import RunLifecycle, Sent
from mcp_server.service.pending import PendingGenerations
from mcp_server.service.saving import preview_of, store_image

logger = logging.getLogger(__name__)


class ImageService:
    def __init__(
        self,
        http: FoundryHttp,
        registry: AgentRegistry,
        *,
        deployments: DeploymentResolver,
        jobs: BackgroundJobs,
        run_settings: RunSettings | None = None,
        partials: PartialPreviews | None = None,
        held: HeldImages | None = None,
        max_concurrent: int = 16,
    ) -> None:
        self._http = http
        self._registry = registry
        self.partials = partials if partials is not None else PartialPreviews()
        runner = ResponseRunner(ResponsesClient(http), run_settings)
        self.held = held if held is not None else HeldImages()
        self.pending = PendingGenerations(runner, jobs, self.held)
        self._runs = RunLifecycle(runner, self.pending, self.partials, max_concurrent)
        self._deployments = deployments

    async def generate(
        self,
        prompt: str,
        options: ImageOptions,
        store: ImageStore,
        progress: ProgressCallback = no_progress,
        client_cancelled: CancelCheck = always,
    ) -> GeneratedImage:
        resolved = await self._prepare(prompt, options)
        call = Call(prompt, options, Progress(progress), store, client_cancelled)
        return await self._finish(*await self._run(call, resolved), call)

    async def edit(
        self,
        prompt: str,
        images: Sequence[ResolvedImage],
        mask: ResolvedImage | None,
        options: ImageOptions,
        store: ImageStore,
        progress: ProgressCallback = no_progress,
        client_cancelled: CancelCheck = always,
    ) -> GeneratedImage:
        resolved = await self._prepare(prompt, options)
        tracker = Progress(progress)
        await tracker.at(0, "Preparing the inputs")
        parent = await _parent_of(images[0], store)
        mask_usage: list[InputUsage] = []
        mask_id: str | None = None
        if mask is not None:
            mask_id = mask.file_id or await self._upload(mask)
            mask_usage.append(usage(mask, "file_id" if mask.file_id else "uploaded", mask_id))
        parts, used = await image_parts(images[1:] if parent else images, self._upload)
        if parent:
            used.insert(0, usage(images[0], "previous_response"))
        call = Call(
            prompt,
            options,
            tracker,
            store,
            client_cancelled,
            parts=tuple(parts),
            edit=True,
            mask_file_id=mask_id,
            previous_response_id=parent.response_id if parent else None,
            inputs=(*used, *mask_usage),
            parent=parent,
        )
        try:
            return await self._finish(*await self._run(call, resolved), call)
        except NotFoundError as exc:
            if parent is None or not requests.is_previous_response_error(exc):
                raise
        # The service no longer has the earlier turn (30-day retention, or deleted): send the bytes.
        logger.info("Response %s is gone; sending the parent image's bytes instead", parent.response_id)
        parts, used = await image_parts(images, self._upload)
        call = replace(call, parts=tuple(parts), previous_response_id=None, inputs=(*used, *mask_usage))
        return await self._finish(*await self._run(call, resolved), call)

    async def deployments(self) -> ResolvedDeployments:
        """The deployments the calls use (looked up at the first call, then remembered)."""
        return await self._deployments.resolve()

    async def resume_pending(self, stores: Sequence[ImageStore]) -> None:
        """Finish, in the background, the generations a previous run of the server left in flight."""
        await self.pending.resume(stores)

    async def _prepare(self, prompt: str, options: ImageOptions) -> ResolvedDeployments:
        """Check the call, find the deployments it uses (once per process), and check its options against
        the image model. The image deployment goes into the Responses calls' deployment header from then on."""
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty.", hint="Describe the image to generate or the edit to make.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; shorten it.")
        resolved = await self._deployments.resolve()
        self._http.image_deployment = resolved.image_deployment
        options.check(resolved.image_model)
        return resolved

    async def _upload(self, image: ResolvedImage) -> str:
        assert image.data is not None and image.output_format is not None
        extension = {"jpeg": "jpg"}.get(image.output_format, image.output_format)
        return await upload_file(self._http, image.data, f"{image.label}.{extension}", image.mime_type or "")

    async def _run(self, call: Call, resolved: ResolvedDeployments) -> tuple[Sent, AgentVersionRef]:
        """Run `call` through its agent version, recreating a version the service lost (once), or directly."""
        await call.progress.at(0, "Preparing the image agent")
        if call.mask_file_id:  # an agent version cannot bind a mask per call (see `requests`): go direct at once
            return await self._runs.send(_direct(call, resolved), call, requests.DIRECT), requests.DIRECT
        registry = self._registry.using(resolved.model_deployment)
        for attempt in (1, 2):
            ref: AgentVersionRef | None = None
            try:
                ref = await requests.version_for(registry, call, resolved.image_deployment)
                return await self._runs.send(requests.agent_request(call, ref), call, ref), ref
            except NotFoundError as exc:
                if attempt == 2 or ref is None or not requests.is_version_gone(exc):
                    raise
                logger.warning("Agent version %s:%s is gone; recreating it", ref.name, ref.version)
                registry.forget(ref)
        raise AssertionError("unreachable")

    async def _finish(self, sent: Sent, ref: AgentVersionRef, call: Call) -> GeneratedImage:
        claim = sent.claim
        try:
            image = extract_image(sent.response)
            await call.progress.at(95, "Saving the image")
            saved = await store_image(image, call.provenance(ref), call.store, claim, self.held)
        except FoundryImageError:
            await claim.finish()  # it ended without an image: nothing to resume
            raise
        finally:
            if claim.held and not self.held.holds(claim):
                with anyio.CancelScope(shield=True):
                    await claim.release()  # not settled (a defect): left for a later recovery
        preview = await preview_of(image.data)
        done = f"Kept {saved.record.file_name} in memory" if saved.unsaved else f"Saved {saved.record.file_name}"
        await call.progress.at(100, done)
        return GeneratedImage(
            record=saved.record, preview=preview, inputs=call.inputs, parent=call.parent, unsaved=saved.unsaved
        )


def _direct(call: Call, resolved: ResolvedDeployments) -> CreateResponseRequest:
    """`call` as a direct Responses call (no agent), on the resolved deployments."""
    return requests.direct_request(
        call, image_deployment=resolved.image_deployment, model_deployment=resolved.model_deployment
    )


async def _parent_of(image: ResolvedImage, store: ImageStore) -> Parent | None:
    if image.kind != "resource" or image.image_id is None:
        return None
    record = await store.get(image.image_id)
    if record is None or not record.response_id:
        return None
    return Parent(record.image_id, record.uri, record.response_id)
