"""One `httpx2.AsyncClient` per process: sending with retries; what an error answer means is in `upstream_errors`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from mcp_server import __version__
from mcp_server.errors import FoundryImageError, ServiceUnreachableError, UnexpectedResponseError
from mcp_server.foundry.retry import RetryPolicy, backoff, retryable_status, scope_time_left, server_delay
from mcp_server.foundry.upstream_errors import error_from_response
from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)


class FoundryHttp:
    """Thin wrapper over the shared client: the project endpoint as base URL, retries, error mapping."""

    def __init__(
        self,
        client: httpx2.AsyncClient | Callable[[], httpx2.AsyncClient],
        *,
        image_deployment: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client if isinstance(client, httpx2.AsyncClient) else None
        self._factory = None if isinstance(client, httpx2.AsyncClient) else client
        self.image_deployment = image_deployment
        """The value of the `x-ms-oai-image-generation-deployment` header on Responses calls. The image service sets
        it once the project's deployments are resolved (at the first call); until then it is empty, and `send`
        leaves an empty header out (a generation left in flight by an earlier run is polled without one)."""
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
        Waits go through `RetryPolicy.sleep`, and the deadline is measured with `RetryPolicy.clock`. A wait that
        would end after the enclosing cancel scope's deadline is not started: the last error is raised at once.
        """
        if request.headers.get(IMAGE_DEPLOYMENT_HEADER) == "":
            del request.headers[IMAGE_DEPLOYMENT_HEADER]
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
            left = scope_time_left()
            if delay > left:
                logger.info("Not waiting %.2f s to retry %s: %.2f s left to the caller", delay, what, max(left, 0.0))
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
