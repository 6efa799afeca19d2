"""The wrapper around every route handler: it records, authenticates, injects faults and maps errors."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import faults
from .config import EmulatorConfig
from .context import Ctx, Handler
from .errors import ApiError, ErrorResponse, invalid_payload, not_found, openai_error, unauthorized
from .state import EmulatorState, RecordedRequest

logger = logging.getLogger(__name__)


def _parse_json(raw: bytes, content_type: str) -> Any | None:
    if not raw or "json" not in content_type:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


_OPENAI_ROUTE = re.compile(r"^/api/projects/[^/]+/openai(/|$)")


def _accepts(accepted: frozenset[str] | None, credential: str) -> bool:
    return bool(credential) and (accepted is None or credential in accepted)


def _authenticated(headers: dict[str, str], config: EmulatorConfig, path: str) -> bool:
    """A Microsoft Entra ID bearer token anywhere; a project key as the recorded session sent it (protocol §1.5):
    the `api-key` header on `/agents` and `/deployments`, `Authorization: Bearer <key>` on `/openai/*`."""
    authorization = headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    if _OPENAI_ROUTE.match(path):
        return _accepts(config.accepted_tokens, token) or _accepts(config.accepted_api_keys, token)
    return _accepts(config.accepted_tokens, token) or _accepts(
        config.accepted_api_keys, headers.get("api-key", "").strip()
    )


def _request_ids(response: Response, path: str) -> None:
    """`apim-request-id` (a UUID) on every answer; `X-Request-ID` as the service sends it (protocol §7.5): a UUID on
    `/openai/*`, 32 hex digits on agents CRUD, none on `/deployments` nor beside a Foundry error body (whose id is
    its `additionalInfo.request_id`)."""
    response.headers["apim-request-id"] = str(uuid.uuid4())
    if (isinstance(response, ErrorResponse) and response.request_id_in_body) or "/deployments" in path:
        return
    response.headers["x-request-id"] = str(uuid.uuid4()) if _OPENAI_ROUTE.match(path) else uuid.uuid4().hex


async def _processed(handler: Handler, ctx: Ctx) -> Response:
    """The handler's answer, with its errors turned into error responses."""
    try:
        return await handler(ctx)
    except ApiError as error:
        logger.info("%s %s -> %d %s", ctx.request.method, ctx.request.url.path, error.status, error)
        return error.response()


async def _serve(handler: Handler, ctx: Ctx) -> Response:
    if not _authenticated(ctx.headers, ctx.config, ctx.request.url.path):
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
        try:
            response = await _serve(handler, ctx)
        except ApiError as error:
            logger.info("%s %s -> %d %s", request.method, request.url.path, error.status, error)
            response = error.response()
        except Exception:
            # An emulator bug must still look like a service error to the client, not a bare 500 page.
            logger.exception("emulator failed on %s %s", request.method, request.url.path)
            response = openai_error(500, "server_error", "The emulator hit an internal error.").response()
        _request_ids(response, request.url.path)
        return response

    return run


async def unknown_route(ctx: Ctx) -> Response:
    raise not_found(f"Resource not found: {ctx.request.method} {ctx.request.url.path}")
