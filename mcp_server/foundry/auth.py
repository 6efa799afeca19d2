"""Outbound authentication: a project API key, or a Microsoft Entra ID bearer token.

The Entra token comes from azure-identity's synchronous `DefaultAzureCredential`, called in a
worker thread: the async credentials need aiohttp, and a sync call on the event loop would
stall every other request. The token is cached until shortly before it expires, and one
refresh at a time runs however many requests wait on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import httpx2

from mcp_server.errors import AuthenticationError
from mcp_server.protocol import TOKEN_SCOPE

logger = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300
"""Refresh this long before expiry, so a token never expires in the middle of a long generation."""


if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def default_credential() -> TokenCredential:
    # Imported here: azure-identity costs a noticeable share of start-up time.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


OPENAI_ROUTES: Final = "/openai/v1"
"""Where a project key travels as a bearer token, as the OpenAI client sends it (protocol §1.5)."""


class ApiKeyAuth(httpx2.Auth):
    """A project API key, as the one recorded key-authenticated session sent it (protocol §1.5): the `api-key`
    header on `/agents` and `/deployments`, `Authorization: Bearer <key>` on `/openai/v1/*`. Microsoft does
    not document key auth on the project endpoint; Entra ID is its documented route."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx2.Request) -> Any:
        path = request.url.path.rstrip("/")
        if f"{OPENAI_ROUTES}/" in path or path.endswith(OPENAI_ROUTES):
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        else:
            request.headers["api-key"] = self._api_key
        yield request


class EntraTokenAuth(httpx2.Auth):
    """Bearer-token auth for the Foundry scope, refreshed off the event loop."""

    def __init__(self, credential_factory: Callable[[], TokenCredential] = default_credential) -> None:
        self._factory = credential_factory
        self._credential: TokenCredential | None = None
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = anyio.Lock()

    async def token(self, *, force_refresh: bool = False) -> str:
        if not force_refresh and self._token is not None and time.time() < self._expires_on - REFRESH_MARGIN_SECONDS:
            return self._token
        async with self._lock:
            if (
                not force_refresh
                and self._token is not None
                and time.time() < self._expires_on - REFRESH_MARGIN_SECONDS
            ):
                return self._token
            token, self._expires_on = await anyio.to_thread.run_sync(self._fetch, force_refresh)
            self._token = token
            return token

    def _fetch(self, fresh: bool = False) -> tuple[str, float]:
        try:
            if self._credential is None or fresh:
                # A new credential: azure-identity caches tokens per credential and would hand back the rejected one.
                self._credential = self._factory()
            access = self._credential.get_token(TOKEN_SCOPE)
        except Exception as exc:
            # azure-identity's message lists every credential it tried; keep only its first line.
            summary = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning("Could not get a Microsoft Entra ID token: %s", exc)
            raise AuthenticationError(
                f"Could not get a Microsoft Entra ID token for {TOKEN_SCOPE}: {summary}",
                hint="Sign in with `az login` (or configure a managed identity / service principal), "
                "or set AZURE_AI_API_KEY to use an API key instead.",
                code="credential_unavailable",
            ) from None
        return access.token, float(access.expires_on)

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            # A token revoked or rotated before its expiry: fetch a fresh one and try once more.
            request.headers["Authorization"] = f"Bearer {await self.token(force_refresh=True)}"
            yield request
