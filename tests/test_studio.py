"""The studio's server side: the MCP Apps extension for clients that negotiate it, nothing new for the others,
a self-contained view, the `/studio` host page behind the same checks as `/mcp`, and `demo --open`.

The view itself runs in a real browser in tests/test_studio_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from helpers import FAST_RETRY, HttpServer, image_server, wait_until
from mcp import Client
from mcp.client.extension import advertise
from mcp.types import TextResourceContents

from mcp_server.emulator import RunningEmulator
from mcp_server.http.studio import page_policy
from mcp_server.tools.studio import APP_MIME_TYPE, EXTENSION_ID, META_KEY, STUDIO_URI, studio_html

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
TOKEN = "studio-route-token-0123456789"


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _clients(emulator: RunningEmulator, tmp_path: Path, mode: str) -> AsyncIterator[tuple[Client, Client]]:
    server = image_server(emulator.endpoint, tmp_path, retry=FAST_RETRY)
    async with Client(server, mode=mode) as plain, Client(server, mode=mode, extensions=[APPS]) as apps:
        yield plain, apps


@pytest.mark.anyio
async def test_tools_list_and_resources_list_are_unchanged_for_a_client_without_apps(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    async for plain, apps in _clients(emulator, tmp_path, mode):
        plain_tools = (await plain.list_tools()).tools
        apps_tools = (await apps.list_tools()).tools
        assert [tool.meta for tool in plain_tools] == [None, None]
        assert [tool.meta for tool in apps_tools] == [{"ui": {"resourceUri": STUDIO_URI}}] * 2
        for without, with_ui in zip(plain_tools, apps_tools, strict=True):
            assert "_meta" not in without.model_dump(by_alias=True, exclude_none=True)
            assert without == with_ui.model_copy(update={"meta": None}), "only _meta.ui differs"
        assert (await plain.list_resources()).resources == []
        (listed,) = (await apps.list_resources()).resources
        assert (str(listed.uri), listed.mime_type) == (STUDIO_URI, APP_MIME_TYPE)
        # Declaring the extension without the view's MIME type is not negotiating Apps.
        server = image_server(emulator.endpoint, tmp_path)
        async with Client(server, mode=mode, extensions=[advertise(EXTENSION_ID, {"mimeTypes": []})]) as half:
            assert [tool.meta for tool in (await half.list_tools()).tools] == [None, None]


@pytest.mark.anyio
async def test_results_are_the_same_for_both_and_name_the_model_only_for_apps(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    arguments = {"prompt": "a red kite", "size": "1024x1024", "quality": "low"}
    async for plain, apps in _clients(emulator, tmp_path, mode):
        without = await plain.call_tool("generate_image", arguments)
        with_ui = await apps.call_tool("generate_image", arguments)
        assert not without.is_error and not with_ui.is_error
        assert META_KEY not in (without.meta or {})
        assert (with_ui.meta or {})[META_KEY] == {"model": "gpt-image-2", "deployment": "gpt-image-2"}
        assert set(without.structured_content or {}) == set(with_ui.structured_content or {})
        assert [block.type for block in without.content] == [block.type for block in with_ui.content]
        read = await apps.read_resource(STUDIO_URI)
        (content,) = read.contents
        assert isinstance(content, TextResourceContents) and content.mime_type == APP_MIME_TYPE
        assert content.text == studio_html()
        assert content.meta == {"ui": {"prefersBorder": True}}


def test_the_view_is_one_self_contained_document_speaking_the_apps_bridge() -> None:
    html = studio_html()
    assert html.startswith("<!doctype html>") and "/*STUDIO_" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing is loaded from the network"
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\s*\(", html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    for method in (
        "ui/initialize",
        "ui/notifications/initialized",
        "ui/notifications/tool-input",
        "ui/notifications/tool-result",
        "ui/notifications/tool-cancelled",
        "ui/notifications/host-context-changed",
        "ui/notifications/size-changed",
        "ui/resource-teardown",
        "notifications/progress",
        '"tools/call"',
        '"resources/read"',
    ):
        assert method in html, method


def _get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _sha256_sources(tag: str, html: str) -> set[str]:
    texts = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return {"'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'" for t in texts}


def test_the_studio_page_is_served_without_a_token_but_mcp_still_needs_one(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    server = HttpServer(emulator.endpoint, tmp_path, extra_env={"FOUNDRY_IMAGE_MCP_AUTH_TOKENS": f"me:{TOKEN}"})
    try:
        base = server.wait_ready()
        line = f"Image studio in a browser: {base}/studio"
        wait_until(lambda: any(line in logged for logged in server.log), what="the studio's URL in the log")
        status, headers, body = _get(base + "/studio")
        assert status == 200 and headers["content-type"].startswith("text/html") and b"/studio/host.js" in body
        policy = headers["content-security-policy"]
        assert policy == page_policy() and "connect-src 'self'" in policy and "default-src 'none'" in policy
        assert _sha256_sources("script", studio_html()) | _sha256_sources("style", studio_html()) <= set(
            policy.replace(";", " ").split()
        ), "the view's inline script and style are allowed by hash, nothing else inline"
        for path, kind in (("/studio/host.js", "text/javascript"), ("/studio/host.css", "text/css")):
            status, headers, body = _get(base + path)
            assert status == 200 and headers["content-type"].startswith(kind) and body
        assert _get(base + "/mcp", {"Content-Type": "application/json"}, b"{}")[0] == 401
        port = base.rsplit(":", 1)[1]
        assert _get(base + "/studio", {"Host": f"127.0.0.1:{port}.evil.example"})[0] == 421
    finally:
        server.stop()


def test_demo_open_serves_the_studio_and_opens_the_browser_on_it(tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n")
    env = {**os.environ, "BROWSER": f"{sys.executable} {recorder} %s", "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "demo", "--open", "--output-dir", str(tmp_path / "images")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        wait_until(opened.exists, timeout=30, what="the browser to be opened")
        url = opened.read_text().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/studio", url), url
        status, _, body = _get(url)
        assert status == 200 and b"Foundry Image Studio" in body
        health = json.loads(_get(url.removesuffix("/studio") + "/healthz")[2])
        assert health["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
    assert f"Image studio: {url}" in out and "Foundry emulator running at" in out


@pytest.mark.anyio
async def test_the_view_lists_only_for_apps_also_on_a_second_page(emulator: RunningEmulator, tmp_path: Path) -> None:
    """The `ui://` resource is on the first page only, like every static resource; later pages are images."""
    async for plain, apps in _clients(emulator, tmp_path, "legacy"):
        await plain.call_tool("generate_image", {"prompt": "x", "quality": "low", "size": "1024x1024"})
        with anyio.fail_after(10):
            plain_uris = [str(r.uri) for r in (await plain.list_resources()).resources]
            apps_uris = [str(r.uri) for r in (await apps.list_resources()).resources]
        assert apps_uris == [STUDIO_URI, *plain_uris] and len(plain_uris) == 1
