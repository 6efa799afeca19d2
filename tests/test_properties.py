"""Property tests: thousands of generated arguments through a real MCP client into the real server (in-process).

Invalid arguments and hostile references must never crash the server, reach the service, read a
file outside the allowed directories, or take more than a bounded time. The budget is fixed
(`max_examples`, derandomized) so CI runs the same examples every time.
"""

from __future__ import annotations

import base64
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from helpers import connect, emulator_running, encode_image, text_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult
from PIL import Image

from mcp_server.emulator import EmulatorConfig, RunningEmulator

CALL_SECONDS = 10.0
CANARY = b"CANARY-SECRET-7f3a"
BUDGET = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Session:
    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: Client, emulator: RunningEmulator) -> None:
        self.portal, self.client, self.emulator = portal, client, emulator

    def call(self, tool: str, arguments: Any) -> CallToolResult:
        async def bounded() -> CallToolResult:
            with anyio.fail_after(CALL_SECONDS):
                return await self.client.call_tool(tool, arguments)

        started = time.monotonic()
        result = self.portal.call(bounded)
        assert time.monotonic() - started < CALL_SECONDS
        return result

    def upstream_calls(self) -> list[str]:
        return [r.path for r in self.emulator.state.requests if "/agents" in r.path or "/openai/" in r.path]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("props")
    out, outside = root / "out", root / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(encode_image(Image.new("RGB", (64, 64))) + CANARY)
    (outside / "secret.txt").write_bytes(CANARY)
    (out / "escape.png").symlink_to(outside / "secret.png")
    (out / "ok.png").write_bytes(encode_image(Image.new("RGB", (64, 64), (9, 9, 9))))
    with (
        emulator_running(EmulatorConfig()) as emulator,
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(connect(emulator.endpoint, out)) as client,
    ):
        yield Session(portal, client, emulator)


def refused_quietly(session: Session, tool: str, arguments: Any) -> None:
    before = session.upstream_calls()
    result = session.call(tool, arguments)
    assert result.is_error
    text = text_of(result)
    assert text.strip() and "Traceback" not in text and CANARY.decode() not in text
    assert session.upstream_calls() == before


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.text(max_size=40),
)
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
# Finite floats only: JSON has no NaN or Infinity, and the client serializes them as null (a valid "not set").
bad_int = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=101),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)


def not_in(values: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.text(max_size=20).filter(lambda v: v not in values), st.integers(), st.none(), st.lists(st.text())
    )


CORRUPTIONS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "prompt_type": st.builds(lambda v: {"prompt": v}, junk.filter(lambda v: not isinstance(v, str))),
    "prompt_blank": st.builds(lambda v: {"prompt": v}, st.text(alphabet=" \t\n\r\u3000\u00a0", max_size=50)),
    "prompt_long": st.builds(lambda n, c: {"prompt": c * n}, st.integers(32_001, 40_000), st.sampled_from("a€𝔘 ")),
    "no_prompt": st.just({"prompt": None}),
    "size": st.builds(lambda v: {"size": v}, not_in(("auto", "1024x1024", "1536x1024", "1024x1536"))),
    "quality": st.builds(lambda v: {"quality": v}, not_in(("auto", "low", "medium", "high"))),
    "format": st.builds(lambda v: {"output_format": v}, not_in(("png", "jpeg", "webp"))),
    "compression": st.builds(lambda v: {"output_format": "jpeg", "output_compression": v}, bad_int),
    "compression_png": st.builds(lambda v: {"output_format": "png", "output_compression": v}, st.integers(0, 100)),
    "background": st.builds(lambda v: {"background": v}, not_in(("auto", "transparent", "opaque"))),
    "transparent_jpeg": st.just({"background": "transparent", "output_format": "jpeg"}),
    "moderation": st.builds(lambda v: {"moderation": v}, not_in(("auto", "low"))),
    "partials": st.builds(
        lambda v: {"partial_images": v},
        st.one_of(st.integers(max_value=-1), st.integers(4), junk.filter(lambda v: type(v) is not int)),
    ),
}


@st.composite
def invalid_generate_arguments(draw: st.DrawFn) -> dict[str, Any]:
    arguments: dict[str, Any] = {"prompt": draw(odd_text.filter(str.strip) | st.just("a cat"))}
    for name in draw(st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=3, unique=True)):
        arguments.update(draw(CORRUPTIONS[name]))
    if arguments.get("prompt") is None:
        del arguments["prompt"]
    return arguments


@BUDGET
@given(arguments=invalid_generate_arguments())
def test_generate_image_refuses_every_invalid_argument_set_without_calling_upstream(
    session: Session, arguments: dict[str, Any]
) -> None:
    refused_quietly(session, "generate_image", arguments)


private_hosts = st.sampled_from(
    [
        "127.0.0.1",
        "10.0.0.7",
        "192.168.1.1",
        "172.16.5.4",
        "169.254.169.254",
        "[::1]",
        "[fd00::1]",
        "[::ffff:127.0.0.1]",
        "100.64.0.1",
        "0.0.0.0",
        "localhost",
        "metadata.google.internal",
        "168.63.129.16",
    ]
)
hostile_reference = st.one_of(
    st.sampled_from(
        [
            "/etc/passwd",
            "/etc/shadow",
            "../outside/secret.png",
            "escape.png",
            "../../../../etc/hosts",
            "~/.ssh/id_rsa",
            "/proc/self/environ",
            "/dev/zero",
            "C:\\Windows\\win.ini",
            "\\\\srv\\share\\a.png",
            "file:///etc/passwd",
            "file://localhost/etc/passwd",
            "out/../../outside/secret.txt",
        ]
    ),
    st.builds(
        lambda h, p: f"{p}://{h}/{'x' * 3}.png", private_hosts, st.sampled_from(["https", "http", "ftp", "gopher"])
    ),
    st.builds(lambda t: "data:image/png;base64," + t, st.text(alphabet=string.ascii_letters + "+/=!", max_size=200)),
    st.builds(lambda b: base64.b64encode(b).decode(), st.binary(min_size=48, max_size=300)),
    st.builds(lambda s: "foundry-image://images/" + s, st.text(max_size=40)),
    odd_text.filter(lambda s: s.strip() not in ("", "ok.png")),
    st.just("ok.png\x00.txt"),
)


@st.composite
def hostile_edit_arguments(draw: st.DrawFn) -> dict[str, Any]:
    choice = draw(st.integers(0, 3))
    if choice == 0:  # at least one hostile image among valid ones
        images = [*draw(st.lists(st.just("ok.png"), max_size=3)), draw(hostile_reference)]
        return {"prompt": draw(odd_text.filter(str.strip) | st.just("edit")), "images": draw(st.permutations(images))}
    if choice == 1:  # a hostile mask
        return {"prompt": "edit", "images": ["ok.png"], "mask": draw(hostile_reference | st.just("ok.png"))}
    if choice == 2:  # wrong counts and types
        return {
            "prompt": "edit",
            "images": draw(st.one_of(st.just([]), st.lists(st.just("ok.png"), min_size=17, max_size=20), junk)),
        }
    return {
        "prompt": "edit",
        "images": ["ok.png"],
        **draw(
            CORRUPTIONS["transparent_jpeg"]
            | CORRUPTIONS["size"]
            | CORRUPTIONS["partials"]
            | CORRUPTIONS["compression_png"]
        ),
    }


@BUDGET
@given(arguments=hostile_edit_arguments())
def test_edit_image_refuses_hostile_references_and_invalid_arguments_without_calling_upstream(
    session: Session, arguments: dict[str, Any]
) -> None:
    refused_quietly(session, "edit_image", arguments)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    prompt=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=2000).filter(
        str.strip
    )
)
def test_any_unicode_prompt_generates_an_image(session: Session, prompt: str) -> None:
    result = session.call("generate_image", {"prompt": prompt, "quality": "low", "size": "1024x1024"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert Path(result.structured_content["path"]).is_file()
