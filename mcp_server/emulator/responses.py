"""The OpenAI-compatible Responses routes of the project endpoint (protocol §3 to §6)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse, Response

from mcp_server.protocol import LEGACY_RESPONSES_API_VERSION

from .context import Ctx
from .errors import foundry_error, invalid_payload, openai_error
from .fault_names import BUFFERED_ANSWERS, PROCESSED_FILTERS
from .generation import cancel, start
from .paging import page
from .planning import build_plan
from .state import StoredResponse
from .streaming import event_stream


def _check_legacy(ctx: Ctx) -> None:
    if ctx.params.get("legacy"):
        ctx.require_api_version(LEGACY_RESPONSES_API_VERSION)


def _stored(ctx: Ctx) -> StoredResponse:
    response_id = ctx.params["response_id"]
    stored = ctx.state.get_response(response_id)
    if stored is None:
        raise openai_error(404, "not_found", f"Response with id '{response_id}' not found.", "response_id")
    return stored


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


async def create(ctx: Ctx) -> Response:
    _check_legacy(ctx)
    body = ctx.json_object()
    plan = build_plan(body, ctx.headers, ctx.state, ctx.config)
    if ctx.fault in PROCESSED_FILTERS:
        plan.content_filter = ctx.fault
    stored = start(plan, body, ctx.state, ctx.config)
    # A buffering proxy (json-reset-after-accept, not-json-after-accept) answers a stream once it ended.
    buffered = plan.stream and ctx.fault in BUFFERED_ANSWERS
    if plan.stream and not buffered:
        header = ctx.headers.get("x-emulator-drop-stream-after")
        drop_after = int(header) if header and header.isdigit() else ctx.config.drop_stream_after
        # The truncate-stream and event-not-json-after-accept faults: the stream ends cleanly after
        # response.in_progress (the latter after one more event, garbled), its terminal event never sent.
        early = ctx.fault in ("truncate-stream", "event-not-json-after-accept")
        end_after = "response.in_progress" if early else None
        garble = ctx.fault == "event-not-json-after-accept"
        return event_stream(stored, drop_after=drop_after, end_after=end_after, garble_next=garble)
    if (buffered or not plan.background) and stored.task is not None:
        # Shielded: a client that hangs up must not leave the stored response half-made.
        await asyncio.shield(stored.task)
    return JSONResponse(stored.response)


async def list_responses(ctx: Ctx) -> Response:
    """The Azure-only list (protocol §1.3): every stored response (direct ones too) with its `metadata` as sent,
    newest first by default, paged by `limit`/`after`/`before` (`first_id`, `last_id`, `has_more`); with
    `agent_name`, only that agent's responses."""
    _check_legacy(ctx)
    agent_name = ctx.query.get("agent_name")
    items = []
    for stored in ctx.state.responses.values():
        ref = stored.response.get("agent_reference") or {}
        if agent_name is None or ref.get("name") == agent_name:
            items.append(stored.response)
    return JSONResponse(page(ctx, items, "id"))


async def retrieve(ctx: Ctx) -> Response:
    _check_legacy(ctx)
    stored = _stored(ctx)
    if _flag(ctx.query.get("stream")):
        if not stored.streamed:
            raise invalid_payload(
                "You can only resume streaming if the original request included stream=true.", "stream"
            )
        try:
            starting_after = int(ctx.query.get("starting_after", "-1"))
        except ValueError:
            raise invalid_payload("starting_after must be an integer.", "starting_after") from None
        return event_stream(stored, starting_after)
    if ctx.config.null_result_on_retrieve:
        return JSONResponse(_without_results(stored.response))
    return JSONResponse(stored.response)


def _without_results(response: dict[str, Any]) -> dict[str, Any]:
    """The Response as Foundry was reported to retrieve it: each image item's `result` null (protocol §4)."""
    output = [
        {**item, "result": None} if item.get("type") == "image_generation_call" else item
        for item in response.get("output") or []
    ]
    return {**response, "output": output}


async def delete(ctx: Ctx) -> Response:
    _check_legacy(ctx)
    stored = _stored(ctx)
    cancel(stored, ctx.state)
    ctx.state.pop_response(ctx.params["response_id"])
    return JSONResponse({"id": ctx.params["response_id"], "object": "response", "deleted": True})


async def cancel_response(ctx: Ctx) -> Response:
    _check_legacy(ctx)
    stored = _stored(ctx)
    if not stored.response.get("background"):
        raise foundry_error(
            400,
            "invalid_request",
            "Only responses created with background=true can be cancelled. "
            "To cancel a synchronous response, terminate the connection.",
            "response_id",
        )
    return JSONResponse(cancel(stored, ctx.state))


async def input_items(ctx: Ctx) -> Response:
    _check_legacy(ctx)
    items = list(_stored(ctx).input_items)
    if ctx.query.get("order", "desc") == "desc":
        items.reverse()
    return JSONResponse(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }
    )
