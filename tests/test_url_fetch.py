"""Fetching input images over https without SSRF: a real loopback server, checked hops, pinned addresses."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import httpx2
import pytest
from PIL import Image

from mcp_server.errors import InvalidInputError
from mcp_server.images.local import LocalStore
from mcp_server.inputs import InputResolver, UrlFetcher

pytestmark = pytest.mark.anyio

CAP = 10_000
TRUSTED = frozenset({"127.0.0.1"})


def make_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = make_png()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        routes = {
            "/img.png": lambda: self.send(200, PNG),
            "/redirect-same": lambda: self.redirect("/img.png"),
            "/redirect-absolute": lambda: self.redirect(f"http://127.0.0.1:{self.server.server_port}/img.png"),
            "/redirect-private": lambda: self.redirect("http://10.1.2.3/x.png"),
            "/redirect-metadata": lambda: self.redirect("http://169.254.169.254/latest/meta-data"),
            "/redirect-https-private": lambda: self.redirect("https://10.1.2.3/x.png"),
            "/redirect-localhost": lambda: self.redirect("https://localhost/x.png"),
            "/loop": lambda: self.redirect("/loop"),
            "/big": lambda: self.send(200, b"\0" * (CAP + 1)),
            "/missing": lambda: self.send(404, b"not here"),
            "/endless": self.endless,
            "/hang": self.hang,
        }
        routes.get(self.path.partition("?")[0], lambda: self.send(404, b""))()

    def send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def endless(self) -> None:
        # No Content-Length: HTTP/1.0 body until close; growing past the cap.
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"\0" * 1000)
                self.wfile.flush()
        except OSError:
            pass  # the client hung up, as it should

    def hang(self) -> None:
        self.server.release.wait(30)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.paths: list[str] = []
        self.release = threading.Event()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.release.set()
        running.shutdown()
        running.server_close()
        thread.join(5)


class RecordingTransport(httpx2.AsyncHTTPTransport):
    """The real transport, noting every URL a connection is made for."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.urls.append(str(request.url))
        return await super().handle_async_request(request)


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[UrlFetcher, RecordingTransport]]:
    transport = RecordingTransport()
    async with UrlFetcher(max_bytes=CAP, trusted_hosts=TRUSTED, transport=transport, timeout=5) as fetcher:
        yield fetcher, transport


async def refused(fetcher: UrlFetcher, url: str, label: str = "images[0]") -> str:
    with anyio.fail_after(10), pytest.raises(InvalidInputError) as caught:
        await fetcher.fetch(url, label)
    assert caught.value.message.startswith(f"{label} ("), caught.value.message
    return caught.value.message


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_port}"


# ---------------------------------------------------------------- against the loopback server


async def test_fetches_the_exact_bytes(server: Server, recorded: tuple[UrlFetcher, RecordingTransport]) -> None:
    fetcher, _ = recorded
    assert await fetcher.fetch(base(server) + "/img.png", "images[0]") == PNG


async def test_follows_redirects_on_the_same_trusted_server(
    server: Server, recorded: tuple[UrlFetcher, RecordingTransport]
) -> None:
    fetcher, _ = recorded
    assert await fetcher.fetch(base(server) + "/redirect-same", "images[0]") == PNG
    assert await fetcher.fetch(base(server) + "/redirect-absolute", "images[0]") == PNG
    assert server.paths == ["/redirect-same", "/img.png", "/redirect-absolute", "/img.png"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/redirect-private", "leads to 10.1.2.3, a private address"),
        ("/redirect-https-private", "leads to 10.1.2.3, a private address"),
        ("/redirect-metadata", "leads to 169.254.169.254, a link-local address"),
        ("/redirect-localhost", "names localhost"),
    ],
)
async def test_redirects_to_private_addresses_are_refused_without_connecting(
    server: Server, recorded: tuple[UrlFetcher, RecordingTransport], path: str, expected: str
) -> None:
    fetcher, transport = recorded
    message = await refused(fetcher, base(server) + path, "images[3]")
    assert expected in message and "redirected to" in message
    assert transport.urls == [base(server) + path]  # the only connection made: the first hop


async def test_redirect_loops_stop_after_max_redirects(server: Server) -> None:
    async with UrlFetcher(trusted_hosts=TRUSTED, max_redirects=3) as fetcher:
        message = await refused(fetcher, base(server) + "/loop")
    assert "redirected more than 3 times" in message
    assert server.paths == ["/loop"] * 4


async def test_oversized_bodies_are_refused(server: Server, recorded: tuple[UrlFetcher, RecordingTransport]) -> None:
    fetcher, _ = recorded
    assert f"must be smaller than {CAP} bytes" in await refused(fetcher, base(server) + "/big")
    assert f"must be smaller than {CAP} bytes" in await refused(fetcher, base(server) + "/endless")


async def test_error_statuses_are_refused(server: Server, recorded: tuple[UrlFetcher, RecordingTransport]) -> None:
    fetcher, _ = recorded
    assert "HTTP 404" in await refused(fetcher, base(server) + "/missing")


async def test_a_server_that_never_answers_times_out(server: Server) -> None:
    started = time.monotonic()
    async with UrlFetcher(trusted_hosts=TRUSTED, timeout=0.5) as fetcher:
        assert "timed out after 0.5 s" in await refused(fetcher, base(server) + "/hang")
    assert time.monotonic() - started < 5


async def test_connection_errors_are_refused_briefly() -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there any more
    async with UrlFetcher(trusted_hosts=TRUSTED) as fetcher:
        message = await refused(fetcher, f"http://127.0.0.1:{port}/x.png")
    assert "could not be downloaded" in message and "Traceback" not in message


async def test_resolver_fetches_urls(server: Server, tmp_path: Path) -> None:
    async with UrlFetcher(trusted_hosts=TRUSTED) as fetcher:
        resolver = InputResolver(store=LocalStore(tmp_path), allowed_dirs=[tmp_path], fetcher=fetcher)
        image = await resolver.resolve(base(server) + "/img.png?sig=SECRET", "images[1]")
        assert (image.kind, image.data, image.width, image.height) == ("url", PNG, 40, 30)
        assert "SECRET" not in image.reference
        with pytest.raises(InvalidInputError, match=r"^mask \(") as caught:
            await resolver.resolve(base(server) + "/missing?sig=SECRET", "mask")
        assert "SECRET" not in str(caught.value)


# ---------------------------------------------------------------- refused before any connection


@dataclass
class FakeDns:
    answers: dict[str, list[str]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]


@dataclass
class Upstream:
    """A MockTransport handler standing in for the public internet; it records each request."""

    requests: list[httpx2.Request] = field(default_factory=list)
    responses: list[httpx2.Response] = field(default_factory=list)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.responses.pop(0) if self.responses else httpx2.Response(200, content=PNG)


DNS = {
    "evil.example": ["127.0.0.1"],
    "evil6.example": ["::1"],
    "mixed.example": ["93.184.216.34", "10.0.0.7"],
    "images.example": ["93.184.216.34"],
    "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://127.0.0.1/x.png", "127.0.0.1, a loopback address"),
        ("https://localhost/x.png", "names localhost"),
        ("https://10.0.0.5/", "10.0.0.5, a private address"),
        ("https://[::1]/x.png", "::1, a loopback address"),
        ("https://[::ffff:127.0.0.1]/x.png", "a loopback address"),
        ("https://[::ffff:10.0.0.1]/x.png", "a private address"),
        ("https://[fd00::1]/x.png", "a private address"),
        ("https://[fe80::1]/x.png", "a link-local address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://100.64.1.1/x.png", "a reserved or shared address"),
        ("https://0.0.0.0/x.png", "the unspecified address"),
        ("https://224.0.0.1/x.png", "a multicast address"),
        ("https://168.63.129.16/x.png", "a cloud host service address"),
        ("https://metadata.google.internal/computeMetadata/v1/", "names metadata.google.internal"),
        ("https://metadata.azure.com/metadata/instance", "names metadata.azure.com"),
        ("https://evil.example/x.png", "127.0.0.1, a loopback address"),
        ("https://evil6.example/x.png", "::1, a loopback address"),
        ("https://mixed.example/x.png", "10.0.0.7, a private address"),
        ("https://nowhere.example/x.png", "could not be resolved"),
        ("http://images.example/x.png", "uses plain http; use https"),
        ("https://user:pw@images.example/x.png", "must not contain credentials"),
        ("ftp://images.example/x.png", "only https URLs are fetched"),
    ],
)
async def test_unsafe_urls_are_refused_before_connecting(url: str, expected: str) -> None:
    upstream, dns = Upstream(), FakeDns(DNS)
    async with UrlFetcher(resolve=dns, transport=httpx2.MockTransport(upstream)) as fetcher:
        message = await refused(fetcher, url, "mask")
    assert expected in message
    assert upstream.requests == []
    assert "pw" not in message


async def test_public_addresses_are_fetched_pinned_to_the_checked_ip() -> None:
    upstream, dns = Upstream(), FakeDns(DNS)
    async with UrlFetcher(resolve=dns, transport=httpx2.MockTransport(upstream)) as fetcher:
        assert await fetcher.fetch("https://Images.Example/cat.png?size=big", "images[0]") == PNG
        assert await fetcher.fetch("https://v6.example:8443/cat.png", "images[0]") == PNG
    first, second = upstream.requests
    assert str(first.url) == "https://93.184.216.34/cat.png?size=big"
    assert (first.headers["host"], first.extensions["sni_hostname"]) == ("images.example", "images.example")
    assert (second.url.host, second.url.port) == ("2606:2800:220:1:248:1893:25c8:1946", 8443)
    assert (second.headers["host"], second.extensions["sni_hostname"]) == ("v6.example:8443", "v6.example")
    assert "cookie" not in first.headers and "authorization" not in first.headers
    assert dns.asked == ["images.example", "v6.example"]


async def test_each_redirect_is_checked_and_cookies_are_not_kept() -> None:
    upstream, dns = Upstream(), FakeDns(DNS)
    upstream.responses = [
        httpx2.Response(302, headers={"Location": "/next.png", "Set-Cookie": "session=abc; Path=/"}),
        httpx2.Response(301, headers={"Location": "https://evil.example/x.png"}),
    ]
    async with UrlFetcher(resolve=dns, transport=httpx2.MockTransport(upstream)) as fetcher:
        message = await refused(fetcher, "https://images.example/start.png")
    assert "redirected to https://evil.example/x.png, which leads to 127.0.0.1" in message
    assert [str(r.url) for r in upstream.requests] == [
        "https://93.184.216.34/start.png",
        "https://93.184.216.34/next.png",
    ]
    assert "cookie" not in upstream.requests[1].headers
    assert dns.asked == ["images.example", "images.example", "evil.example"]


async def test_trusted_hosts_skip_the_address_checks() -> None:
    upstream = Upstream()
    trusted = frozenset({"Assets.Internal"})
    async with UrlFetcher(trusted_hosts=trusted, transport=httpx2.MockTransport(upstream)) as fetcher:
        assert await fetcher.fetch("http://assets.internal:8080/a.png", "images[0]") == PNG
    assert str(upstream.requests[0].url) == "http://assets.internal:8080/a.png"
