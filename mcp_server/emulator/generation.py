"""Runs one generation as an asyncio task, logging every stream event as it goes (protocol §5, §6)."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import uuid
from typing import Any

from .config import EmulatorConfig
from .errors import filter_results
from .planning import Plan
from .render import RenderResult, render
from .state import EmulatorState, StoredResponse

logger = logging.getLogger(__name__)

MESSAGE_TEXT = "Here is the image you asked for."
_ITEM_KEYS = ("size", "quality", "background", "output_format")
_PROMPT_FILTERS = [{"blocked": False, "source_type": source} for source in ("prompt", "completion")]
FILTERED_IMAGE_ERROR = {
    "code": "image_content_policy_violation",
    "message": "Generated image was filtered as a result of our safety system.",
}
# How the injected content-filter faults end a response: the terminal event and the Response fields it sets.
_FILTER_ENDINGS: dict[str | None, tuple[str, dict[str, Any]]] = {
    "filter-failed": ("response.failed", {"status": "failed", "error": FILTERED_IMAGE_ERROR}),
    "filter-incomplete": (
        "response.incomplete",
        {"status": "incomplete", "incomplete_details": {"reason": "content_filter"}},
    ),
}


def emit(stored: StoredResponse, state: EmulatorState, event_type: str, **fields: Any) -> None:
    """Append one event to the response's log and wake every live reader."""
    with state.lock:
        event = {"type": event_type, "sequence_number": len(stored.events), **fields}
        stored.events.append(event)
    waker, stored.waker = stored.waker, asyncio.Event()
    waker.set()


def close(stored: StoredResponse) -> None:
    stored.closed = True
    waker, stored.waker = stored.waker, asyncio.Event()
    waker.set()


def update(stored: StoredResponse, state: EmulatorState, **fields: Any) -> dict[str, Any]:
    # Replaced wholesale, never mutated, so readers on other threads see consistent snapshots.
    with state.lock:
        stored.response = {**stored.response, **fields}
        return stored.response


def _item(plan: Plan, **fields: Any) -> dict[str, Any]:
    """An output item as Foundry sends it: with `agent_reference` (resolved version) and `response_id` (§9.3)."""
    return {
        **fields,
        **({"agent_reference": plan.agent_ref} if plan.agent_ref else {}),
        "response_id": plan.response_id,
    }


def _content_filters(plan: Plan) -> dict[str, Any]:
    """A stream's final Response carries Azure's `content_filters`, nothing blocked (protocol §4); a plain one none."""
    if not plan.stream:
        return {}
    offsets = {"start_offset": 0, "end_offset": len(plan.prompt), "check_offset": 0}
    results = {"content_filter_results": filter_results(blocked=False), "content_filter_offsets": offsets}
    return {"content_filters": [{**entry, **results} for entry in _PROMPT_FILTERS]}


def _usage(plan: Plan) -> dict[str, Any]:
    input_tokens = 40 + len(plan.prompt) // 4 + 256 * len(plan.images)
    output_tokens = 20 + len(MESSAGE_TEXT) // 4
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def start(plan: Plan, body: dict[str, Any], state: EmulatorState, config: EmulatorConfig) -> StoredResponse:
    stored = StoredResponse(response=dict(plan.base), request=body, input_items=plan.input_items, streamed=plan.stream)
    state.put_response(plan.response_id, stored)
    stored.task = asyncio.create_task(_run(plan, stored, state, config), name=plan.response_id)
    return stored


async def _run(plan: Plan, stored: StoredResponse, state: EmulatorState, config: EmulatorConfig) -> None:
    try:
        initial = "queued" if plan.background else "in_progress"
        emit(stored, state, "response.created", response=update(stored, state, status=initial))
        if plan.background:
            emit(stored, state, "response.queued", response=stored.response)
            await asyncio.sleep(0)  # lets the create call answer while the response is still queued
        emit(stored, state, "response.in_progress", response=update(stored, state, status="in_progress"))
        output: list[dict[str, Any]] = []
        if plan.image_tool is not None:
            output.append(await _image_call(plan, stored, state, config, len(output)))
        if plan.content_filter in _FILTER_ENDINGS:
            event_type, fields = _FILTER_ENDINGS[plan.content_filter]
            emit(stored, state, event_type, response=update(stored, state, output=output, usage=_usage(plan), **fields))
            return
        output.append(_message(plan, stored, state, len(output)))
        finished = {"completed_at": int(time.time()), "output": output, "usage": _usage(plan), **_content_filters(plan)}
        completed = update(stored, state, status="completed", **finished)
        emit(stored, state, "response.completed", response=completed)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.exception("emulated generation %s failed", plan.response_id)
        failed = update(stored, state, status="failed", error={"code": "server_error", "message": str(exc)})
        emit(stored, state, "response.failed", response=failed)
    finally:
        close(stored)


async def _image_call(
    plan: Plan, stored: StoredResponse, state: EmulatorState, config: EmulatorConfig, index: int
) -> dict[str, Any]:
    assert plan.image_tool is not None and plan.spec is not None
    item = _item(plan, id="ig_" + uuid.uuid4().hex, type="image_generation_call", status="in_progress")
    item_id = item["id"]
    update(stored, state, output=[item])
    emit(stored, state, "response.output_item.added", output_index=index, item=item)
    emit(stored, state, "response.image_generation_call.in_progress", output_index=index, item_id=item_id)
    item = {**item, "status": "generating"}
    update(stored, state, output=[item])
    emit(stored, state, "response.image_generation_call.generating", output_index=index, item_id=item_id)
    if config.latency > 0:
        await asyncio.sleep(config.latency)
    if plan.content_filter is not None:
        # The safety system withheld the image: the call fails, and no image (nor partial) is sent.
        item = {**item, "status": "failed", "result": None}
        update(stored, state, output=[item])
        emit(stored, state, "response.output_item.done", output_index=index, item=item)
        return item
    spec, images, mask = plan.spec, plan.images, plan.mask
    # The default executor, unlike anyio's workers, is drained by asyncio.run, so stopping mid-render is clean.
    result: RenderResult = await asyncio.to_thread(render, spec, images, mask)
    described = {key: plan.image_tool[key] for key in _ITEM_KEYS}
    openai = config.openai_image_events
    for number, partial in enumerate(result.partials):
        emit(
            stored,
            state,
            "response.image_generation_call.partial_image",
            output_index=index,
            item_id=item_id,
            partial_image_index=number,
            partial_image_b64=base64.b64encode(partial).decode(),
            **described,
        )
        if config.partial_interval > 0:
            await asyncio.sleep(config.partial_interval)
    if openai:  # Azure sends no such event (protocol §5.2)
        emit(stored, state, "response.image_generation_call.completed", output_index=index, item_id=item_id)
    item = {
        **item,
        # Azure leaves a streamed item "generating", also in the final Response (§5.2); a plain one is "completed".
        "status": "generating" if plan.stream and not openai else "completed",
        "action": plan.image_tool["action"],
        "result": base64.b64encode(result.final).decode(),
        "revised_prompt": plan.prompt,
        **described,
    }
    with state.lock:
        stored.image_bytes = result.final
    update(stored, state, output=[item])
    emit(stored, state, "response.output_item.done", output_index=index, item=item)
    return item


def _message(plan: Plan, stored: StoredResponse, state: EmulatorState, index: int) -> dict[str, Any]:
    item_id = "msg_" + uuid.uuid4().hex
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    part = {**empty_part, "text": MESSAGE_TEXT}
    item = _item(plan, id=item_id, type="message", role="assistant", status="in_progress", content=[])
    where = {"output_index": index, "item_id": item_id, "content_index": 0}
    emit(stored, state, "response.output_item.added", output_index=index, item=item)
    emit(stored, state, "response.content_part.added", **where, part=empty_part)
    for number, word in enumerate(MESSAGE_TEXT.split(" ")):  # Azure: `obfuscation` on every text delta (§5.1)
        delta = word if number == 0 else " " + word
        emit(stored, state, "response.output_text.delta", **where, delta=delta, logprobs=[], obfuscation=_pad())
    emit(stored, state, "response.output_text.done", **where, text=MESSAGE_TEXT, logprobs=[])
    emit(stored, state, "response.content_part.done", **where, part=part)
    done = {**item, "status": "completed", "content": [part]}
    emit(stored, state, "response.output_item.done", output_index=index, item=done)
    return done


def cancel(stored: StoredResponse, state: EmulatorState) -> dict[str, Any]:
    """Stop a running generation; a response that already finished is returned unchanged."""
    if stored.status in ("queued", "in_progress"):
        update(stored, state, status="cancelled", completed_at=None, usage=None)
        if stored.task is not None:
            stored.task.cancel()
        close(stored)
    return stored.response


def _pad() -> str:
    return secrets.token_urlsafe(secrets.randbelow(8) + 2)
