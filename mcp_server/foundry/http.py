"""One `httpx2.AsyncClient` per process, and the mapping of HTTP failures onto our errors."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
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
from mcp_server.foundry.retry import RetryPolicy, backoff, retryable_status, server_delay
from mcp_server.protocol import ErrorBody, ErrorDetail

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_TIMEOUT = httpx2.Timeout(connect=10.0, read=120.0, write=60.0, pool=30.0)
"""The read timeout is the longest silence tolerated on one connection: long enough for a minute-long
generation answered at once, and a streamed or polled generation never goes that long without bytes."""

GENERIC_400 = "There was an issue with your request"
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
        """
        started = time.monotonic()
        attempt = 0
        error: FoundryImageError
        while True:
            attempt += 1
            try:
                response = await self.client.send(request, stream=stream)
            except httpx2.TransportError as exc:
                error = transport_error(what, exc, sent=not isinstance(exc, NOT_SENT_ERRORS))
                if isinstance(error, AmbiguousRequestError) and not idempotent:
                    raise error from None
                delay = backoff(attempt, self.retry)
            else:
                if not response.is_error:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                error = error_from_response(response, what)
                if not retryable_status(response):
                    raise error
                asked = server_delay(response.headers)
                if asked is not None and asked > self.retry.max_server_delay:
                    raise error
                delay = backoff(attempt, self.retry) if asked is None else asked
            if attempt >= self.retry.attempts or time.monotonic() - started + delay > self.retry.deadline:
                raise error
            logger.info("Retrying %s %s in %.2f s after: %s", request.method, request.url.path, delay, error.message)
            await anyio.sleep(delay)


NOT_SENT_ERRORS = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
"""Failures before the request left this machine: always safe to retry."""


class AmbiguousRequestError(ServiceUnreachableError):
    """The request was sent but no answer came back: the service may or may not have acted on it."""

    code = "ambiguous"


def transport_error(what: str, exc: Exception, *, sent: bool) -> ServiceUnreachableError:
    if not sent:
        return unreachable(what, exc)
    if isinstance(exc, httpx2.TimeoutException):
        return AmbiguousRequestError(
            f"Timed out waiting for Foundry while trying to {what}.",
            hint="The service may be busy; try again in a minute.",
        )
    return AmbiguousRequestError(
        f"The connection to Foundry broke while trying to {what} ({type(exc).__name__}).",
        hint="This is usually temporary; try again.",
    )


def unreachable(what: str, exc: Exception) -> ServiceUnreachableError:
    return ServiceUnreachableError(
        f"Could not reach the Foundry project endpoint to {what} ({type(exc).__name__}).",
        hint="Check AZURE_AI_PROJECT_ENDPOINT and your network connection.",
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


def error_from_response(response: httpx2.Response, what: str) -> FoundryImageError:
    """Map an error status onto the hierarchy, with a message that says what to do next."""
    status = response.status_code
    detail: ErrorDetail | None = None
    try:
        detail = ErrorBody.model_validate_json(response.content).error
    except (ValidationError, ValueError):
        detail = None
    upstream_code = detail.code if detail else None
    upstream_message = (detail.message if detail else "") or response.reason_phrase or "no message"
    rid = request_id_of(response, detail)
    common: dict[str, Any] = {
        "status": status,
        "request_id": rid,
        "upstream_code": upstream_code,
        "upstream_param": detail.param if detail else None,
    }
    said = (
        f"Foundry refused to {what} (HTTP {status}{', ' + upstream_code if upstream_code else ''}): {upstream_message}"
    )
    if status == 400 and detail is not None and (upstream_code or "").lower() in ("content_filter", "contentfilter"):
        categories = filter_categories(detail)
        which = f" (categories: {', '.join(categories)})" if categories else ""
        return ContentFilteredError(
            f"The request was blocked by Azure content filtering{which}.",
            hint="Rephrase the prompt without the flagged content and try again.",
            **common,
        )
    if status in (401, 403):
        hint = (
            "Check AZURE_AI_API_KEY, or unset it and sign in with `az login`; the identity needs the "
            "'Azure AI User' role on the Foundry project."
        )
        if upstream_code == "preview_feature_required":
            hint = "This Foundry feature is in preview and must be enabled for the project."
        return AuthenticationError(said + ".", hint=hint, **common)
    if status == 404:
        if (upstream_code or "").lower() == "deploymentnotfound":
            return NotFoundError(
                f"Foundry has no deployment with that name: {upstream_message}",
                hint=DEPLOYMENT_HINT,
                code="deployment_not_found",
                **common,
            )
        return NotFoundError(said + ".", hint="Check AZURE_AI_PROJECT_ENDPOINT and AZURE_AI_AGENT_NAME.", **common)
    if status == 429:
        wait = server_delay(response.headers)
        when = f"wait {wait:.0f} s" if wait is not None else "wait a minute"
        return RateLimitedError(
            f"Foundry is rate limiting requests (HTTP 429): {upstream_message}",
            hint=f"The quota of the deployment is used up for now; {when} and try again.",
            **common,
        )
    if status >= 500:
        return ServiceRefusedError(said + ".", hint="This is a service-side failure; try again shortly.", **common)
    if status == 400 and "deployment" in upstream_message.lower():
        return ServiceRefusedError(said, hint=DEPLOYMENT_HINT, **common)
    if status == 400 and GENERIC_400 in upstream_message:
        return ServiceRefusedError(
            said,
            hint="Foundry gives this generic error when the image deployment header is missing or wrong: check "
            "AZURE_AI_IMAGE_DEPLOYMENT_NAME.",
            **common,
        )
    return ServiceRefusedError(said, **common)


def validate_body(model: type[ModelT], body: dict[str, Any], what: str) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError:
        raise UnexpectedResponseError(f"Foundry returned a malformed {what}.") from None


def build_client(endpoint: str, auth: httpx2.Auth, timeout: httpx2.Timeout = DEFAULT_TIMEOUT) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=endpoint.rstrip("/") + "/",
        auth=auth,
        timeout=timeout,
        headers={"User-Agent": f"foundry-image-mcp/{__version__}"},
        limits=httpx2.Limits(max_connections=64, max_keepalive_connections=16),
        follow_redirects=False,
    )
