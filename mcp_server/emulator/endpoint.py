"""The wrapper around every route handler: it records, authenticates, injects faults and maps errors."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import faults
from .config import EmulatorConfig
from .context import Ctx, Handler
from .errors import ApiError, invalid_payload, not_found, openai_error, unauthorized
from .state import EmulatorState, RecordedRequest

logger = logging.getLogger(__name__)


def _parse_json(raw: bytes, content_type: str) -> Any | None:
    if not raw or "json" not in content_type:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _authenticated(headers: dict[str, str], config: EmulatorConfig) -> bool:
    authorization = headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    if token and (config.accepted_tokens is None or token in config.accepted_tokens):
        return True
    key = headers.get("api-key", "").strip()
    return bool(key) and (config.accepted_api_keys is None or key in config.accepted_api_keys)


async def _processed(handler: Handler, ctx: Ctx) -> Response:
    """The handler's answer, with its errors turned into error responses."""
    try:
        return await handler(ctx)
    except ApiError as error:
        logger.info("%s %s -> %d %s", ctx.request.method, ctx.request.url.path, error.status, error)
        return error.response()


async def _serve(handler: Handler, ctx: Ctx) -> Response:
    if not _authenticated(ctx.headers, ctx.config):
        raise unauthorized()
    if ctx.params.get("project", ctx.config.project) != ctx.config.project:
        raise not_found(f"Project {ctx.params['project']!r} was not found.", "project")
    if ctx.raw and "json" in ctx.headers.get("content-type", "") and ctx.body is None:
        raise invalid_payload("The request body is not valid JSON.", None)
    fault = faults.choose_fault(ctx)
    if fault is None:
        return await handler(ctx)
    logger.info("%s %s: injecting fault %r", ctx.request.method, ctx.request.url.path, fault)
    return await faults.apply(fault, ctx, lambda c: _processed(handler, c))


def endpoint(
    handler: Handler, state: EmulatorState, config: EmulatorConfig
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        body = _parse_json(raw, headers.get("content-type", ""))
        state.record(RecordedRequest(request.method, request.url.path, query, headers, body))
        params = {k: str(v) for k, v in request.path_params.items()}
        ctx = Ctx(request, body, raw, headers, query, params, state, config)
        request_id = uuid.uuid4().hex
        try:
            response = await _serve(handler, ctx)
        except ApiError as error:
            logger.info("%s %s -> %d %s", request.method, request.url.path, error.status, error)
            response = error.response()
        except Exception:
            # An emulator bug must still look like a service error to the client, not a bare 500 page.
            logger.exception("emulator failed on %s %s", request.method, request.url.path)
            response = openai_error(500, "server_error", "The emulator hit an internal error.").response()
        response.headers["apim-request-id"] = request_id
        return response

    return run


async def unknown_route(ctx: Ctx) -> Response:
    raise not_found(f"Resource not found: {ctx.request.method} {ctx.request.url.path}")
