"""Fetching input images from https URLs without becoming a proxy into private networks (SSRF).

Every hop (the URL and each redirect) is checked before connecting: https only, no
credentials, and every address the host resolves to must be public. The connection then goes
to the checked address itself, with the original name as Host header and TLS server name, so
a second DNS answer (rebinding) cannot redirect it. Hosts in `trusted_hosts` skip the address
checks and may use plain http.

This client is separate from the Foundry client on purpose: Foundry credentials must never
travel to an arbitrary URL.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Final

import anyio
import httpx2

from mcp_server.errors import InvalidInputError
from mcp_server.inputs.checks import MAX_INPUT_BYTES, check_byte_size
from mcp_server.inputs.messages import refusal, shorten

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
METADATA_HOSTS: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "localhost",
    }
)
BLOCKED_SUFFIXES: Final = (".localhost", ".internal", ".local")
# Public-looking addresses that reach the cloud host itself: Azure WireServer.
BLOCKED_ADDRESSES: Final = frozenset({ipaddress.ip_address("168.63.129.16")})
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_URL_HINT: Final = "Download the image yourself and pass it as a data URL, a path or a resource URI."


async def system_resolve(host: str, port: int) -> list[str]:
    """Every A and AAAA address of `host`, through the system resolver."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: IPAddress) -> str | None:
    """Why this server must not connect to `address` ("a loopback address", ...), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where the cloud metadata service lives)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address in BLOCKED_ADDRESSES:
        return "a cloud host service address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved or shared address"
    return None


class UrlFetcher:
    """Downloads input images from https URLs, refusing anything that would reach a private network."""

    def __init__(
        self,
        *,
        max_bytes: int = MAX_INPUT_BYTES,
        timeout: float = 20.0,
        max_redirects: int = 5,
        trusted_hosts: frozenset[str] = frozenset(),
        resolve: Resolver | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._trusted = frozenset(host.lower().rstrip(".") for host in trusted_hosts)
        self._resolve = resolve or system_resolve
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None

    async def __aenter__(self) -> UrlFetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str, label: str) -> bytes:
        """The body at `url`, following checked redirects.

        Raises:
            InvalidInputError: naming `label`, for a refused URL, a failed download, or one too large.
        """
        try:
            with anyio.fail_after(self._timeout):
                return await self._fetch(url, label)
        except (TimeoutError, httpx2.TimeoutException):
            raise refusal(label, url, f"timed out after {self._timeout:g} s.", _URL_HINT) from None
        except httpx2.HTTPError as exc:
            reason = str(exc) if str(exc) and "://" not in str(exc) else type(exc).__name__  # URLs may hold tokens
            raise refusal(label, url, f"could not be downloaded ({reason[:120]}).", _URL_HINT) from None

    async def _fetch(self, url: str, label: str) -> bytes:
        current = url
        for _hop in range(self._max_redirects + 1):
            target, headers, extensions = await self._checked_request(current, url, label)
            async with self._http().stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise refusal(label, url, f"answered HTTP {response.status_code} without a Location.")
                    try:
                        current = str(httpx2.URL(current).join(location))
                    except httpx2.InvalidURL:
                        raise refusal(label, url, "redirected to a malformed URL.") from None
                    continue
                if not 200 <= response.status_code < 300:
                    raise refusal(
                        label,
                        url,
                        f"could not be downloaded: the server answered HTTP {response.status_code}.",
                        _URL_HINT,
                    )
                return await self._read_body(response, url, label)
        raise refusal(label, url, f"redirected more than {self._max_redirects} times.", _URL_HINT)

    async def _read_body(self, response: httpx2.Response, url: str, label: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit():
            check_byte_size(int(declared), label, url, max_bytes=self._max_bytes)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            # Stop as soon as the cap is reached: a body without Content-Length could be endless.
            check_byte_size(len(body), label, url, max_bytes=self._max_bytes)
        return bytes(body)

    async def _checked_request(
        self, current: str, original: str, label: str
    ) -> tuple[httpx2.URL, dict[str, str], dict[str, object]]:
        """The request for one hop: refused unless safe, pinned to the checked address otherwise."""

        def refuse(reason: str, hint: str | None = _URL_HINT) -> InvalidInputError:
            via = f"redirected to {shorten(current)}, which " if current != original else ""
            return refusal(label, original, via + reason, hint)

        try:
            url = httpx2.URL(current)
        except httpx2.InvalidURL:
            raise refuse("is not a valid URL.") from None
        if url.scheme not in ("https", "http"):
            raise refuse(f"uses the {url.scheme or 'empty'} scheme; only https URLs are fetched.")
        if url.userinfo:
            raise refuse("must not contain credentials (user:password@).")
        host = url.host.rstrip(".")
        if not host:
            raise refuse("has no host.")
        headers = {"Accept": "image/png, image/jpeg, image/webp", "Accept-Encoding": "identity"}
        if host in self._trusted:
            return url, headers, {}
        if host in METADATA_HOSTS or host.endswith(BLOCKED_SUFFIXES):
            raise refuse(f"names {host}, a local or cloud metadata host this server does not fetch from.")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else []
        if literal is None:
            if url.scheme != "https":
                raise refuse("uses plain http; use https.")
            try:
                found = await self._resolve(host, url.port or 443)
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
            except (OSError, ValueError, UnicodeError):
                addresses = []
            if not addresses:
                raise refuse(f"names a host that could not be resolved ({host}).")
        for address in addresses:  # every one: the connection could go to any of them
            problem = address_problem(address)
            if problem is not None:
                raise refuse(f"leads to {address}, {problem}; only public addresses are fetched.")
        if url.scheme != "https":
            raise refuse("uses plain http; use https.")
        raw_host = url.raw_host.decode("ascii")
        headers["Host"] = raw_host + (f":{url.port}" if url.port is not None else "")
        pinned = url.copy_with(host=str(addresses[0]), port=url.port or 443)
        return pinned, headers, {"sni_hostname": raw_host}

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                transport=self._transport,
                timeout=httpx2.Timeout(self._timeout),
                follow_redirects=False,
                trust_env=False,  # no proxies or .netrc credentials from the environment
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # never store cookies
                headers={"User-Agent": "foundry-image-mcp"},
                # A pooled connection is keyed by IP, not name: reusing one made for another host
                # would skip that host's certificate check.
                limits=httpx2.Limits(max_keepalive_connections=0),
            )
        return self._client
