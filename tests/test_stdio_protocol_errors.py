"""Malformed lines on stdio get their JSON-RPC 2.0 error, with the request's id, and the server carries on.

The SDK's own stdio reader (mcp 2.3) drops every line it cannot validate, and takes a request whose id
is null, fractional, boolean or an object for a notification: the client waits for its own timeout
(docs/upstream/mcp-python-sdk-stdio-dropped-requests.md). `mcp_server.stdio` answers them.

First the real server over stdio (one process per test worker, shared by every case), then the pieces
it is made of: the screen, the id scanner, and the transport in this process beside the SDK's.
"""

from __future__ import annotations

import io
import json
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import RawStdioClient
from mcp import StdioServerParameters
from mcp.server.stdio import stdio_server
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    JSONRPCError,
    jsonrpc_message_adapter,
)

from mcp_server.stdio.scan import MAX_TOKENS, scan_top_level_id
from mcp_server.stdio.screen import Refusal, screen
from mcp_server.stdio.transport import checked_stdio_server

ANSWER_SECONDS = 10.0
"""Generous for a loaded machine; an answer takes milliseconds (the deepest line ~0.2 s)."""
DEEP = 100_000
IGNORED = "Ignored a malformed message without an id"


def deep(before: str = "", after: str = "", depth: int = DEEP) -> str:
    """A tools/call whose arguments nest `depth` arrays, with `before` and `after` in the outer object."""
    arguments = "[" * depth + "]" * depth
    params = f'{{"name":"generate_image","arguments":{{"prompt":{arguments}}}}}'
    return f'{{{before}"jsonrpc":"2.0","method":"tools/call","params":{params}{after}}}'


def call(request_id: Any, **params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


# (line, the error code it is answered with or None for no answer, the id in that answer)
LINES: dict[str, tuple[str, int | None, Any]] = {
    "not JSON": ("hello", PARSE_ERROR, None),
    "cut short, id readable": ('{"jsonrpc":"2.0","id":7,"method":"tools/list"', PARSE_ERROR, 7),
    "lone surrogate in arguments": (
        call(11, name="generate_image", arguments={"prompt": "a \ud800 kite"}),
        INVALID_PARAMS,
        11,
    ),
    "params a list": ('{"jsonrpc":"2.0","id":12,"method":"tools/list","params":[]}', INVALID_PARAMS, 12),
    "params a string": ('{"jsonrpc":"2.0","id":"s13","method":"tools/call","params":"x"}', INVALID_PARAMS, "s13"),
    "no method": ('{"jsonrpc":"2.0","id":14}', INVALID_REQUEST, 14),
    "method not a string": ('{"jsonrpc":"2.0","id":15,"method":5}', INVALID_REQUEST, 15),
    "jsonrpc 1.0": ('{"jsonrpc":"1.0","id":16,"method":"tools/list"}', INVALID_REQUEST, 16),
    "no jsonrpc": ('{"id":17,"method":"tools/list"}', INVALID_REQUEST, 17),
    "a batch": ('[{"jsonrpc":"2.0","id":18,"method":"tools/list"}]', INVALID_REQUEST, None),
    "not an object": ("42", INVALID_REQUEST, None),
    "id null": ('{"jsonrpc":"2.0","id":null,"method":"tools/list"}', INVALID_REQUEST, None),
    "id fractional": ('{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', INVALID_REQUEST, None),
    "id boolean": ('{"jsonrpc":"2.0","id":true,"method":"tools/list"}', INVALID_REQUEST, None),
    "id an object": ('{"jsonrpc":"2.0","id":{"n":1},"method":"tools/list"}', INVALID_REQUEST, None),
    "100000 nested arrays, id first": (deep(before='"id":19,'), PARSE_ERROR, 19),
    "100000 nested arrays, id last": (deep(after=',"id":"twenty"'), PARSE_ERROR, "twenty"),
    "300 nested arrays (past the SDK's parser)": (deep(before='"id":21,', depth=300), PARSE_ERROR, 21),
    "100000 nested arrays, no id": (deep(), PARSE_ERROR, None),
    # No id, no answer (JSON-RPC 2.0), but a line on stderr:
    "notification, params a list": ('{"jsonrpc":"2.0","method":"notifications/initialized","params":[]}', None, None),
    "notification, lone surrogate": (
        '{"jsonrpc":"2.0","method":"notifications/roots/list_changed","params":{"x":"\\udc00"}}',
        None,
        None,
    ),
    "notification, 300 nested arrays": (
        '{"jsonrpc":"2.0","method":"notifications/x","params":{"x":' + "[" * 300 + "]" * 300 + "}}",
        None,
        None,
    ),
}
SDK_ANSWERS: dict[str, tuple[str, int | None, Any]] = {
    # The envelope is valid: the SDK answers these itself (measured with mcp 2.3.0, and unchanged here).
    "tools/call with name 5": (call(22, name=5), INVALID_PARAMS, 22),
    "tools/call with arguments a list": (call(23, name="generate_image", arguments=[]), INVALID_PARAMS, 23),
    "unknown method": ('{"jsonrpc":"2.0","id":24,"method":"images/teleport","params":{}}', METHOD_NOT_FOUND, 24),
}
ALL_LINES = {**LINES, **SDK_ANSWERS}


class LineClient:
    """`RawStdioClient` after `initialize`, sending raw lines and reading answers with a deadline."""

    def __init__(self, raw: RawStdioClient, log: Path) -> None:
        assert "result" in raw.initialize()
        self.raw, self.log = raw, log
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.raw.process.stdout is not None
        for line in self.raw.process.stdout:
            self.answers.put(json.loads(line))

    def send_line(self, line: str) -> None:
        assert self.raw.process.stdin is not None
        self.raw.process.stdin.write(line.encode("utf-8") + b"\n")
        self.raw.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        try:
            return self.answers.get(timeout=ANSWER_SECONDS)
        except queue.Empty:
            raise AssertionError(f"no answer within {ANSWER_SECONDS} s") from None


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineClient]:
    home = tmp_path_factory.mktemp("stdio-errors")
    args = ["-m", "mcp_server", "serve", "--emulator", "--output-dir", str(home / "images"), "--log-level", "INFO"]
    params = StdioServerParameters(command=sys.executable, args=args, env={"HOME": str(home)})
    log = home / "stderr.log"
    with log.open("wb") as stderr:
        raw = RawStdioClient(params, stderr=stderr)
        try:
            yield LineClient(raw, log)
        finally:
            code = raw.leave(timeout=60)
    assert code == 0, log.read_text()


@pytest.mark.parametrize(("line", "code", "request_id"), ALL_LINES.values(), ids=ALL_LINES.keys())
def test_a_malformed_line_is_answered_with_its_error_and_the_next_request_still_works(
    client: LineClient, line: str, code: int | None, request_id: Any
) -> None:
    ignored_before = client.log.read_text().count(IGNORED)
    client.send_line(line)
    if code is not None:
        answer = client.answer()
        assert answer["id"] == request_id and answer["error"]["code"] == code, answer
        assert "result" not in answer
    client.send_line(json.dumps({"jsonrpc": "2.0", "id": "ping-after", "method": "ping"}))
    # Lines are read in order, so an answer to an unanswered line would come before this one.
    assert client.answer() == {"jsonrpc": "2.0", "id": "ping-after", "result": {}}
    if code is None:
        assert client.log.read_text().count(IGNORED) == ignored_before + 1


def test_a_blank_line_is_not_a_message(client: LineClient) -> None:
    client.send_line("   ")
    client.send_line(json.dumps({"jsonrpc": "2.0", "id": 30, "method": "tools/list"}))
    answer = client.answer()
    assert answer["id"] == 30 and {tool["name"] for tool in answer["result"]["tools"]} >= {"generate_image"}


# ---------------------------------------------------------------- the id scanner


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"jsonrpc":"2.0","id":10,', 10),
        ('{"id":-3}', -3),
        ('  {"id" : "abc"}\n', "abc"),
        ('{"method":"id","id":"x\\"y"}', 'x"y'),  # "id" as a value, an escaped quote in the id
        ('{"params":{"id":3,"s":"}{"},"id":4', 4),  # an id inside params is not the request's
        ('{"\\u0069d":7}', 7),  # the key spelt with escapes
        ('{"params":' + "[" * DEEP + "]" * DEEP + ',"id":5}', 5),  # a run of brackets is one step
        ('{"params":[' + "[]," * 1000 + '[]],"id":6}', 6),
        ('{"params":' + "[]" * (MAX_TOKENS // 2 + 1) + ',"id":5}', None),  # the scan's budget is spent first
        ('{"id":1.5}', None),
        ('{"id":1e3}', None),
        ('{"id":true}', None),
        ('{"id":null}', None),
        ('{"id":"\\ud800"}', None),  # a lone surrogate is not a string id
        ('{"id":' + "9" * 5000 + "}", None),  # more digits than int() converts
        ('{"id":12 x', None),
        ('[{"id":1}]', None),
        ('{"x":"unterminated', None),
        ('{}{"id":1}', None),
        ("", None),
    ],
)
def test_the_scanner_reads_only_a_top_level_integer_or_string_id(text: str, expected: Any) -> None:
    assert scan_top_level_id(text) == expected


# ---------------------------------------------------------------- the screen


@pytest.mark.parametrize(("line", "code", "request_id"), LINES.values(), ids=LINES.keys())
def test_the_screen_refuses_what_the_server_refuses(line: str, code: int | None, request_id: Any) -> None:
    screened = screen(line + "\n")
    assert isinstance(screened, Refusal)
    if code is None:
        assert not screened.answered
    else:
        assert screened.answered and (screened.code, screened.request_id) == (code, request_id)
        assert screened.response().model_dump(exclude_unset=True)["id"] == request_id


@pytest.mark.parametrize(
    "line",
    [
        *(line for line, _, _ in SDK_ANSWERS.values()),
        call(1, name="generate_image", arguments={"prompt": "\U0001f600 é"}),  # json.dumps writes a surrogate pair
        '{"jsonrpc":"2.0","id":"a","method":"ping","params":null}',
        '{"jsonrpc":"2.0","id":9007199254740993123,"method":"ping"}',
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"id","progress":1}}',
        '{"jsonrpc":"2.0","id":3,"result":{"roots":[]}}',
        '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
        '{"jsonrpc":"2.0","id":4,"method":"ping","extra":{"id":null}}',
        ' {"jsonrpc":"2.0","id":5,"method":"ping"} ',
        '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"n":1e400,"m":-0.0}}',
    ],
)
def test_a_line_the_sdk_accepts_passes_as_the_sdks_own_object(line: str) -> None:
    assert screen(line + "\n") == jsonrpc_message_adapter.validate_json(line + "\n", by_name=False)


def test_a_malformed_response_is_logged_not_answered() -> None:
    screened = screen('{"jsonrpc":"2.0","id":5,"result":[]}')
    assert isinstance(screened, Refusal) and not screened.answered
    screened = screen('{"jsonrpc":"2.0","id":2.5,"error":{"code":1,"message":"m"}}')
    assert isinstance(screened, Refusal) and not screened.answered


# ---------------------------------------------------------------- the transport, beside the SDK's


async def run_transport(transport: Any, lines: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    """What `transport` hands the server for `lines`, and what it writes to stdout meanwhile."""
    stdout = io.StringIO()
    files = (anyio.wrap_file(io.StringIO("".join(line + "\n" for line in lines))), anyio.wrap_file(stdout))
    with anyio.fail_after(20):
        async with transport(files) as (read_stream, write_stream):
            async with read_stream:  # as the server does
                received = [item async for item in read_stream]
            await write_stream.aclose()
    return received, [json.loads(line) for line in stdout.getvalue().splitlines()]


@pytest.mark.anyio
async def test_the_transport_hands_on_the_sdks_messages_and_answers_the_rest() -> None:
    valid = [
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}',
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","id":"x","result":{}}',
        call(2, name="generate_image", arguments={"prompt": "ü \U0001f600"}),
    ]
    sdk, sdk_written = await run_transport(lambda files: stdio_server(*files), valid)
    ours, written = await run_transport(lambda files: checked_stdio_server(files=files), valid)
    assert [item.message for item in ours] == [item.message for item in sdk] and len(ours) == len(valid)
    assert [item.metadata for item in ours] == [item.metadata for item in sdk]
    assert written == sdk_written == []

    mixed = [valid[0], "hello", LINES["params a list"][0], LINES["notification, params a list"][0], "", valid[1]]
    sdk, sdk_written = await run_transport(lambda files: stdio_server(*files), mixed)
    assert sum(isinstance(item, Exception) for item in sdk) == 4 and sdk_written == [], "the SDK drops them"
    ours, written = await run_transport(lambda files: checked_stdio_server(files=files), mixed)
    assert [item.message for item in ours] == [item.message for item in sdk if not isinstance(item, Exception)]
    errors = [JSONRPCError.model_validate(answer) for answer in written]
    assert [(error.id, error.error.code) for error in errors] == [(None, PARSE_ERROR), (12, INVALID_PARAMS)]
