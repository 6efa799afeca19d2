"""The project's deployments API: which deployment names exist and which model each one serves.

`GET {endpoint}/deployments?api-version=v1` lists them (`{"value": [...], "nextLink"?}`, paged on
`nextLink`) and `GET {endpoint}/deployments/{name}?api-version=v1` reads one (foundry-protocol.md §1.6).
Choosing among them is the service layer's business (`mcp_server.service.deployments`).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote, urljoin

import httpx2

from mcp_server.errors import UnexpectedResponseError
from mcp_server.foundry.http import FoundryHttp, validate_body
from mcp_server.protocol import DEPLOYMENTS_API_VERSION, Deployment, DeploymentList

DEPLOYMENTS_PATH: Final = "deployments"
MAX_PAGES: Final = 100
"""A listing that pages on longer than this is a service loop, not a project."""


class DeploymentsClient:
    """Reads the project's deployments through the shared `FoundryHttp` (same auth, retries, error mapping)."""

    def __init__(self, http: FoundryHttp) -> None:
        self._http = http

    async def get(self, name: str) -> Deployment:
        """The deployment called `name`.

        Raises:
            NotFoundError: the project has no such deployment (or the API is not there: `list_all` tells).
            AuthenticationError: the credential may not read deployments (401/403).
        """
        body = await self._http.request_json(
            "GET",
            f"{DEPLOYMENTS_PATH}/{quote(name, safe='')}",
            params={"api-version": DEPLOYMENTS_API_VERSION},
            what=f"look up the deployment {name!r}",
        )
        return validate_body(Deployment, body, "deployment")

    async def list_all(self) -> list[Deployment]:
        """Every deployment of the project, following `nextLink` from page to page."""
        found: list[Deployment] = []
        url = httpx2.URL(DEPLOYMENTS_PATH).copy_merge_params({"api-version": DEPLOYMENTS_API_VERSION})
        for _ in range(MAX_PAGES):
            body = await self._http.request_json("GET", str(url), what="list the project's deployments")
            page = validate_body(DeploymentList, body, "deployment list")
            found.extend(page.value)
            if not page.next_link:
                return found
            url = self._next(page.next_link)
        raise UnexpectedResponseError(f"Foundry's deployment list went on for more than {MAX_PAGES} pages.")

    def _next(self, link: str) -> httpx2.URL:
        """The next page's URL: only on the project's own host (the credential goes with it), with an api-version."""
        base = self._http.client.base_url
        url = httpx2.URL(urljoin(str(base), link))
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise UnexpectedResponseError(
                f"Foundry's deployment list pointed its next page at another host ({url.host}); not followed."
            )
        if "api-version" not in url.params:
            url = url.copy_merge_params({"api-version": DEPLOYMENTS_API_VERSION})
        return url
