"""One `httpx2.AsyncClient` per process, and the mapping of HTTP failures onto our errors."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from mcp_server import __version__
from mcp_server.errors import (
    AuthenticationError,
    ContentFilteredError,
    FoundryImageError,
    NotFoundError,
    RateLimitedError,
    ServiceRefusedError,
    ServiceUnreachableError,
    UnexpectedResponseError,
)
from mcp_server.foundry.retry import Clock, RetryPolicy, backoff, retryable_status, server_delay
from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER, ErrorBody, ErrorDetail

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

GENERIC_400_HINT = (
    "Foundry gives this generic error (no code, no param) when the image deployment header is missing or wrong: "
    "check AZURE_AI_IMAGE_DEPLOYMENT_NAME."
)
DEPLOYMENT_HINT = (
    "Check AZURE_AI_IMAGE_DEPLOYMENT_NAME (the image model deployment, e.g. gpt-image-1) and "
    "AZURE_AI_MODEL_DEPLOYMENT_NAME (the agent's chat model, e.g. gpt-4.1) against the deployments "
    "in your Foundry project."
)


class FoundryHttp:
    """Thin wrapper over the shared client: the project endpoint as base URL, retries, error mapping."""

    def __init__(
        self,
        client: httpx2.AsyncClient | Callable[[], httpx2.AsyncClient],
        *,
        image_deployment: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client if isinstance(client, httpx2.AsyncClient) else None
        self._factory = None if isinstance(client, httpx2.AsyncClient) else client
        self.image_deployment = image_deployment
        self.retry = retry or RetryPolicy()

    @property
    def client(self) -> httpx2.AsyncClient:
        """The shared client, built on first use: its TLS set-up would otherwise delay the MCP handshake."""
        if self._client is None:
            assert self._factory is not None
            self._client = self._factory()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        files: Any = None,
        data: Any = None,
        idempotent: bool = True,
        what: str,
    ) -> dict[str, Any]:
        """Send a request, retrying what is safe to retry, and return its JSON object body.

        Raises:
            AmbiguousRequestError: a non-idempotent request failed after it was sent.
            FoundryImageError: a subclass naming what went wrong and what to do.
        """
        request = self.client.build_request(
            method, path, params=params, json=json_body, headers=headers, files=files, data=data
        )
        response = await self.send(request, idempotent=idempotent, what=what)
        return parse_json_object(response.content, what)

    async def send(
        self, request: httpx2.Request, *, idempotent: bool, what: str, stream: bool = False
    ) -> httpx2.Response:
        """Send `request` until it gets a success status, within the retry policy.

        With `stream`, the successful response's body is left unread: the caller closes it.
        Waits go through `RetryPolicy.sleep`, and the deadline is measured with `RetryPolicy.clock`.
        """
        policy = self.retry
        started = policy.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.send(request, stream=stream)
            except httpx2.TransportError as exc:
                error: FoundryImageError = transport_error(what, exc, sent=not isinstance(exc, NOT_SENT_ERRORS))
                if isinstance(error, AmbiguousRequestError) and not idempotent:
                    raise error from None
                delay = backoff(attempt, policy)
            else:
                if not response.is_error:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                error = error_from_response(response, what, now=policy.wall_clock)
                delay = self._retry_delay(response, attempt, error)
            if attempt >= policy.attempts or policy.clock() - started + delay > policy.deadline:
                raise error
            logger.info("Retrying %s %s in %.2f s after: %s", request.method, request.url.path, delay, error.message)
            await policy.sleep(delay)

    def _retry_delay(self, response: httpx2.Response, attempt: int, error: FoundryImageError) -> float:
        """How long to wait before trying again after the error answer `response`; raises `error` if not at all."""
        if not retryable_status(response):
            raise error
        asked = server_delay(response.headers, self.retry.wall_clock)
        if asked is not None and asked > self.retry.max_server_delay:
            raise error
        return backoff(attempt, self.retry) if asked is None else asked


NOT_SENT_ERRORS = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
"""Failures before the request left this machine: always safe to retry."""


class AmbiguousRequestError(ServiceUnreachableError):
    """The request was sent but no answer came back: the service may or may not have acted on it."""

    code = "ambiguous"


def transport_error(what: str, exc: Exception, *, sent: bool) -> ServiceUnreachableError:
    if not sent:
        return ServiceUnreachableError(
            f"Could not reach the Foundry project endpoint to {what} ({type(exc).__name__}).",
            hint="Check AZURE_AI_PROJECT_ENDPOINT and your network connection.",
        )
    if isinstance(exc, httpx2.TimeoutException):
        return AmbiguousRequestError(
            f"Timed out waiting for Foundry while trying to {what}.",
            hint="The service may be busy; try again in a minute.",
        )
    return AmbiguousRequestError(
        f"The connection to Foundry broke while trying to {what} ({type(exc).__name__}).",
        hint="This is usually temporary; try again.",
    )


def parse_json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        raise UnexpectedResponseError(
            f"Foundry answered with a body that is not JSON while trying to {what}.",
            hint="This is usually temporary; try again.",
        ) from None
    if not isinstance(body, dict):
        raise UnexpectedResponseError(f"Foundry answered with unexpected JSON while trying to {what}.")
    return body


def request_id_of(response: httpx2.Response, detail: ErrorDetail | None) -> str | None:
    if detail is not None and detail.additional_info:
        rid = detail.additional_info.get("request_id")
        if isinstance(rid, str):
            return rid
    for header in ("x-request-id", "apim-request-id", "x-ms-request-id"):
        if header in response.headers:
            return response.headers[header]
    return None


def filter_categories(detail: ErrorDetail) -> list[str]:
    """The content-filter categories marked `filtered`, from either spelling Azure uses."""
    inner = detail.innererror or {}
    results = inner.get("content_filter_result") or inner.get("content_filter_results") or {}
    if not isinstance(results, dict):
        return []
    return sorted(name for name, value in results.items() if isinstance(value, dict) and value.get("filtered") is True)


def error_from_response(response: httpx2.Response, what: str, *, now: Clock = time.time) -> FoundryImageError:
    """Map an error status onto the hierarchy, with a message that says what to do next.

    The class and the hint follow the status and the body's `code`, `type` and `param`, never the
    wording of its message, which the service changes freely (and translates).
    """
    status = response.status_code
    try:
        detail: ErrorDetail | None = ErrorBody.model_validate_json(response.content).error
    except (ValidationError, ValueError):
        detail = None
    code = detail.code if detail else None
    upstream_message = (detail.message if detail else "") or response.reason_phrase or "no message"
    common: dict[str, Any] = {
        "status": status,
        "request_id": request_id_of(response, detail),
        "upstream_code": code,
        "upstream_param": detail.param if detail else None,
    }
    said = f"Foundry refused to {what} (HTTP {status}{', ' + code if code else ''}): {upstream_message}"
    if status in (401, 403):
        return AuthenticationError(said + ".", hint=AUTH_HINTS.get(code or "", AUTH_HINT), **common)
    if status == 404:
        if (code or "").lower() == "deploymentnotfound":
            message = f"Foundry has no deployment with that name: {upstream_message}"
            return NotFoundError(message, hint=DEPLOYMENT_HINT, code="deployment_not_found", **common)
        return NotFoundError(said + ".", hint="Check AZURE_AI_PROJECT_ENDPOINT and AZURE_AI_AGENT_NAME.", **common)
    if status == 429:
        wait = server_delay(response.headers, now)
        when = f"wait {wait:.0f} s" if wait is not None else "wait a minute"
        return RateLimitedError(
            f"Foundry is rate limiting requests (HTTP 429): {upstream_message}",
            hint=f"The quota of the deployment is used up for now; {when} and try again.",
            **common,
        )
    if status >= 500:
        return ServiceRefusedError(said + ".", hint="This is a service-side failure; try again shortly.", **common)
    if detail is not None and is_content_filter(detail):
        categories = filter_categories(detail)
        which = f" (categories: {', '.join(categories)})" if categories else ""
        return ContentFilteredError(
            f"The request was blocked by Azure content filtering{which}.",
            hint="Rephrase the prompt without the flagged content and try again.",
            **common,
        )
    return ServiceRefusedError(said, hint=refusal_hint(status, detail), **common)


AUTH_HINT = (
    "Check AZURE_AI_API_KEY, or unset it and sign in with `az login`; the identity needs the "
    "'Azure AI User' role on the Foundry project."
)
AUTH_HINTS = {"preview_feature_required": "This Foundry feature is in preview and must be enabled for the project."}
FILTER_CODES = frozenset({"content_filter", "contentfilter", "moderation_blocked"})
FILTER_INNER_CODES = frozenset({"ResponsibleAIPolicyViolation"})
IMAGE_TOOL_ERROR = "image_generation_user_error"


def is_content_filter(detail: ErrorDetail) -> bool:
    """A 4xx that says content filtering blocked the request, by its code or its `innererror` code."""
    inner = (detail.innererror or {}).get("code")
    return (detail.code or "").lower() in FILTER_CODES or inner in FILTER_INNER_CODES


def refusal_hint(status: int, detail: ErrorDetail | None) -> str | None:
    """What to do about a 4xx refusal, read from where the error points (`param`) and what it is."""
    if status != 400 or detail is None:
        return None
    param = detail.param or ""
    if (
        param == IMAGE_DEPLOYMENT_HEADER
        or param.endswith("model")
        or (detail.type == IMAGE_TOOL_ERROR and param == "tools")
    ):
        # The header names no (or another) image deployment, or a model deployment is unknown. Azure's explicit
        # missing-header error swaps `type` and `code`: type image_generation_user_error, param tools.
        return DEPLOYMENT_HINT
    if detail.code is None and not param:
        return GENERIC_400_HINT
    return None


def validate_body(model: type[ModelT], body: dict[str, Any], what: str) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError:
        raise UnexpectedResponseError(f"Foundry returned a malformed {what}.") from None


def build_client(
    endpoint: str, auth: httpx2.Auth, *, connect_timeout: float = 10.0, read_timeout: float = 120.0
) -> httpx2.AsyncClient:
    """The one HTTP client of a process. The read timeout is the longest silence tolerated on one connection:
    long enough for a minute-long generation answered at once; a streamed or polled one is never that silent."""
    return httpx2.AsyncClient(
        base_url=endpoint.rstrip("/") + "/",
        auth=auth,
        timeout=httpx2.Timeout(connect=connect_timeout, read=read_timeout, write=60.0, pool=connect_timeout),
        headers={"User-Agent": f"foundry-image-mcp/{__version__}"},
        limits=httpx2.Limits(max_connections=64, max_keepalive_connections=16),
        follow_redirects=False,
    )
