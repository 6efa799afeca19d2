"""Fault injection in the emulator (schedule, header, prompt marker, config and CLI), and the responses list route.

Everything runs over loopback HTTP against `start_emulator(...)`; nothing waits on a fixed sleep.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import ResponseCompletedEvent

from mcp_server.cli import main as cli
from mcp_server.emulator import FAULTS, EmulatorConfig, PendingFault, RunningEmulator, faults, start_emulator

V1 = {"api-version": "v1"}
IMAGE = min(EmulatorConfig().image_deployments)
"""The image deployment the emulated project serves by default."""
DEPLOYMENT = {"x-ms-oai-image-generation-deployment": IMAGE}
RESPONSES = "/openai/v1/responses"
RATE_LIMIT_BODY = {
    "error": {
        "code": "rate_limit_exceeded",
        "message": "Requests to the Responses API have exceeded the rate limit of your current pricing tier. "
        "Please retry after 1 second.",
        "type": "requests",
        "param": None,
    }
}
RATE_LIMIT_HEADERS = ("retry-after", "retry-after-ms", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}, timeout=30) as client:
        yield client


def client_for(emulator: RunningEmulator) -> httpx2.Client:
    return httpx2.Client(base_url=emulator.endpoint, headers={"authorization": "Bearer t"}, timeout=30)


def make_agent(http: httpx2.Client, name: str = "img-agent", **tool: Any) -> None:
    definition = {
        "kind": "prompt",
        "model": "gpt-4.1",
        "tools": [{"type": "image_generation", "model": IMAGE, "quality": "low", **tool}],
    }
    reply = http.post(f"/agents/{name}/versions", params=V1, json={"definition": definition})
    assert reply.status_code == 200, reply.text


def create(
    http: httpx2.Client,
    prompt: Any = "a fox",
    name: str = "img-agent",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx2.Response:
    body = {"agent_reference": {"type": "agent_reference", "name": name}, "input": prompt, **extra}
    return http.post(RESPONSES, json=body, headers={**DEPLOYMENT, **(headers or {})})


def fault(name: str) -> dict[str, str]:
    return {"x-emulator-fault": name}


def image_call(response: dict[str, Any]) -> dict[str, Any]:
    return next(item for item in response["output"] if item["type"] == "image_generation_call")


def assert_generates(http: httpx2.Client, prompt: str = "a calm sea") -> dict[str, Any]:
    """The next create succeeds with an image: the fault did not outlive its request."""
    reply = create(http, prompt)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert body["status"] == "completed" and image_call(body)["result"]
    return body


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


# ---------------------------------------------------------------- the names


def test_every_fault_is_documented() -> None:
    assert len(set(FAULTS)) == len(FAULTS) == 25
    doc = faults.__doc__ or ""
    for name in FAULTS:
        assert f"`{name}`" in doc, name


def test_every_fault_is_offered_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["emulator", "--help"])
    help_text = capsys.readouterr().out
    assert "--fault NAME[:COUNT]" in help_text and "--stall-seconds" in help_text
    # argparse wraps lines, possibly inside a hyphenated name.
    flat_help = " ".join(re.sub(r"-\n\s*", "-", help_text).split())
    for name in FAULTS:
        assert name in flat_help, name


def emulator_imports() -> tuple[dict[str, set[str]], set[str]]:
    """Each emulator module's imports of its sibling modules (TYPE_CHECKING ones included), and the other
    `mcp_server` modules the emulator imports."""
    graph: dict[str, set[str]] = {}
    outside: set[str] = set()
    for path in Path(faults.__file__).parent.glob("*.py"):
        siblings = graph[path.stem] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                siblings.update([node.module] if node.module else [alias.name for alias in node.names])
            elif isinstance(node, ast.ImportFrom):
                outside.update([node.module] if (node.module or "").startswith("mcp_server") else [])
            elif isinstance(node, ast.Import):
                outside.update(alias.name for alias in node.names if alias.name.startswith("mcp_server"))
    return graph, outside


def test_the_fault_names_are_dependency_free_and_the_emulator_modules_form_no_cycle() -> None:
    graph, outside = emulator_imports()
    assert graph["fault_names"] == set()
    shared = {module.split(".")[1] for module in outside}
    assert shared == {"protocol"}, "the emulator shares only the protocol with the rest"
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join([*path, module])
        state[module] = "open"
        for imported in graph[module]:
            visit(imported, [*path, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


def test_inject_rejects_unknown_names_and_counts(emulator: RunningEmulator) -> None:
    with pytest.raises(ValueError, match="unknown emulator fault"):
        emulator.state.inject("418")
    with pytest.raises(ValueError, match="at least 1"):
        emulator.state.inject("429", times=0)
    with pytest.raises(ValueError, match="unknown emulator fault"):
        EmulatorConfig(faults=(("nope", 1),))
    with pytest.raises(ValueError, match="at least 1"):
        EmulatorConfig(faults=(("503", 0),))
    with pytest.raises(ValueError, match="stall_seconds"):
        EmulatorConfig(stall_seconds=-1)
    assert emulator.state.pending_faults() == []


# ---------------------------------------------------------------- rate limits and server errors


def test_scheduled_429_has_the_azure_headers_and_body(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    # Scheduled from another thread than the one the test talks from, as a test harness would.
    worker = threading.Thread(target=emulator.state.inject, args=("429",))
    worker.start()
    worker.join()
    assert emulator.state.pending_faults() == [PendingFault("429", "POST", RESPONSES, 1)]
    reply = create(http)
    assert reply.status_code == 429
    assert reply.json() == RATE_LIMIT_BODY
    assert [reply.headers.get(h) for h in RATE_LIMIT_HEADERS] == ["1", "100", "0", "0"]
    assert emulator.state.pending_faults() == []
    assert emulator.state.responses == {}
    assert emulator.state.count("POST", RESPONSES) == 1, "the faulted request is recorded"
    assert_generates(http)


def test_bare_429_has_no_retry_headers(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, headers=fault("429-bare"))
    assert reply.status_code == 429 and reply.json() == RATE_LIMIT_BODY
    assert not [h for h in reply.headers if h.startswith(("retry-after", "x-ratelimit"))]
    assert_generates(http)


@pytest.mark.anyio
async def test_the_openai_sdk_sees_a_rate_limit_error(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    emulator.state.inject("429")
    async with AsyncOpenAI(base_url=emulator.endpoint + "/openai/v1", api_key="k", max_retries=0) as client:
        extra_body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}}
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(input="a fox", extra_headers=DEPLOYMENT, extra_body=extra_body)
        assert caught.value.code == "rate_limit_exceeded"
        assert caught.value.response.headers["retry-after-ms"] == "100"
        response = await client.responses.create(input="a fox", extra_headers=DEPLOYMENT, extra_body=extra_body)
    assert response.status == "completed"


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("500", 500, "server_error"), ("502", 502, "bad_gateway"), ("503", 503, "service_unavailable")],
)
def test_server_errors_are_foundry_shaped(http: httpx2.Client, name: str, status: int, code: str) -> None:
    make_agent(http)
    reply = create(http, headers=fault(name))
    assert reply.status_code == status
    error = reply.json()["error"]
    assert (error["code"], error["type"], error["param"], error["details"]) == (code, "server_error", None, [])
    assert error["message"] and len(error["additionalInfo"]["request_id"]) == 32
    assert reply.headers.get("retry-after") == ("1" if name == "503" else None)
    assert_generates(http)


def test_config_faults_give_two_503s_then_success() -> None:
    with start_emulator(EmulatorConfig(faults=(("503", 2),))) as emulator, client_for(emulator) as http:
        assert emulator.state.pending_faults() == [PendingFault("503", "POST", RESPONSES, 2)]
        make_agent(http)  # agents CRUD is not a responses create: the schedule is not spent here
        statuses = [create(http).status_code for _ in range(3)]
        assert statuses == [503, 503, 200]
        assert emulator.state.pending_faults() == []


# ---------------------------------------------------------------- the CLI


def test_cli_flags_build_the_emulator_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_server.emulator

    args = cli._parser().parse_args(["emulator", "--fault", "503:2", "--fault", "reset", "--stall-seconds", "0.5"])
    assert args.fault == [("503", 2), ("reset", 1)] and args.stall_seconds == 0.5
    seen: list[EmulatorConfig] = []
    monkeypatch.setattr(mcp_server.emulator, "serve_emulator", lambda config, host, port: seen.append(config))
    assert cli._run_emulator(args) == 0
    assert seen[0].faults == (("503", 2), ("reset", 1)) and seen[0].stall_seconds == 0.5
    defaults = cli._parser().parse_args(["emulator"])
    assert defaults.fault == [] and defaults.stall_seconds == 30.0


@pytest.mark.parametrize("spec", ["bogus", "503:x", "503:0"])
def test_cli_rejects_bad_fault_specs(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli._parser().parse_args(["emulator", "--fault", spec])
    assert exited.value.code == 2
    assert "--fault" in capsys.readouterr().err


def test_the_emulator_command_serves_its_scheduled_faults() -> None:
    command = [
        sys.executable,
        "-m",
        "mcp_server",
        "emulator",
        "--port",
        "0",
        "--fault",
        "503:1",
        "--log-level",
        "WARNING",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "endpoint http://" in line, line
        endpoint = line.split("endpoint ", 1)[1].strip()
        with httpx2.Client(base_url=endpoint, headers={"authorization": "Bearer t"}, timeout=30) as http:
            make_agent(http)
            assert [create(http).status_code for _ in range(2)] == [503, 200]
    finally:
        process.terminate()
        process.communicate(timeout=20)


# ---------------------------------------------------------------- broken connections


def test_reset_before_acceptance_processes_nothing(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    with pytest.raises(httpx2.RemoteProtocolError):
        create(http, headers=fault("reset"), metadata={"tag": "lost"})
    assert emulator.state.responses == {}
    assert http.get(RESPONSES).json()["data"] == []
    assert emulator.state.count("POST", RESPONSES) == 1
    assert_generates(http)


def test_reset_of_a_stream_sends_event_stream_headers_first(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    emulator.state.inject("reset")
    body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}, "input": "a fox", "stream": True}
    with http.stream("POST", RESPONSES, json=body, headers=DEPLOYMENT) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        with pytest.raises(httpx2.RemoteProtocolError):
            reply.read()
    assert emulator.state.responses == {}
    assert_generates(http)


def test_reset_after_accept_leaves_a_completed_response_findable_by_metadata(
    emulator: RunningEmulator, http: httpx2.Client
) -> None:
    make_agent(http)
    emulator.state.inject("reset-after-accept")
    with pytest.raises(httpx2.RemoteProtocolError):
        create(http, metadata={"client_request": "abc-123"})
    [stored] = emulator.state.responses.values()
    assert stored.status == "completed" and stored.image_bytes
    listed = http.get(RESPONSES, params={"agent_name": "img-agent"}).json()["data"]
    mine = [r for r in listed if r["metadata"].get("client_request") == "abc-123"]
    assert [r["id"] for r in mine] == [stored.response["id"]]
    assert mine[0]["status"] == "completed" and base64.b64decode(image_call(mine[0])["result"]) == stored.image_bytes
    assert_generates(http)


# ---------------------------------------------------------------- answers lost after acceptance

UNREADABLE = ("json-reset-after-accept", "not-json-after-accept", "event-not-json-after-accept")
TRIGGERS = ("header", "marker", "schedule")


def triggered(emulator: RunningEmulator, name: str, trigger: str, prompt: str = "a fox") -> dict[str, Any]:
    """The create arguments (`prompt`, `headers`) that give the next create `name` by `trigger`."""
    if trigger == "schedule":
        emulator.state.inject(name)
        return {"prompt": prompt, "headers": None}
    if trigger == "marker":
        return {"prompt": f"{prompt} [[fault:{name}]]", "headers": None}
    return {"prompt": prompt, "headers": fault(name)}


def listed_by_tag(http: httpx2.Client, tag: str) -> list[dict[str, Any]]:
    """The responses whose metadata carries `tag`, found through the list route as a client would."""
    return [r for r in http.get(RESPONSES, params={"limit": 100}).json()["data"] if r["metadata"].get("tag") == tag]


def wire_json(response: dict[str, Any]) -> bytes:
    """A Response as the emulator's JSON answers render it."""
    return json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()


def resumed(http: httpx2.Client, response_id: str, starting_after: int) -> list[dict[str, Any]]:
    params = {"stream": "true", "starting_after": str(starting_after)}
    reply = http.get(f"{RESPONSES}/{response_id}", params=params)
    assert reply.status_code == 200, reply.text
    return sse_events(reply.text)


def read_until_broken(reply: httpx2.Response) -> bytes:
    """The body bytes that arrived before the connection broke (and it must break)."""
    received = b""
    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        for chunk in reply.iter_raw():
            received += chunk
    return received


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_json_reset_after_accept_cuts_the_whole_json_after_processing_it(
    emulator: RunningEmulator, http: httpx2.Client, trigger: str, stream: bool
) -> None:
    make_agent(http)
    args = triggered(emulator, "json-reset-after-accept", trigger)
    body = {
        "agent_reference": {"type": "agent_reference", "name": "img-agent"},
        "input": args["prompt"],
        "metadata": {"tag": "lost-json"},
        "stream": stream,
        "background": stream,
    }
    headers = {**DEPLOYMENT, **(args["headers"] or {})}
    with http.stream("POST", RESPONSES, json=body, headers=headers) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json", "JSON even for a streamed create"
        received = read_until_broken(reply)
    [stored] = emulator.state.responses.values()
    assert stored.status == "completed" and stored.image_bytes and stored.streamed is stream
    whole = wire_json(stored.response)
    assert int(reply.headers["content-length"]) == len(whole), "the Content-Length of the whole Response"
    assert received == whole[: len(whole) // 2]
    assert [r["id"] for r in listed_by_tag(http, "lost-json")] == [stored.response["id"]]
    if stream:
        events = resumed(http, stored.response["id"], 1)
        assert events[0]["sequence_number"] == 2 and events[-1]["type"] == "response.completed"
    assert not emulator.state.pending_faults()
    assert_generates(http)


@pytest.mark.parametrize("name", ["not-json-after-accept", "event-not-json-after-accept"])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_non_streamed_create_gets_a_gateway_page_after_processing(
    emulator: RunningEmulator, http: httpx2.Client, trigger: str, name: str
) -> None:
    make_agent(http)
    args = triggered(emulator, name, trigger)
    reply = create(http, args["prompt"], headers=args["headers"], metadata={"tag": "lost-page"})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.text == faults.GATEWAY_PAGE and "upstream connect error" in reply.text
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    [stored] = emulator.state.responses.values()
    assert stored.status == "completed" and stored.image_bytes
    [found] = listed_by_tag(http, "lost-page")
    assert found["id"] == stored.response["id"] and found["metadata"] == {"tag": "lost-page"}
    assert image_call(found)["revised_prompt"] == "a fox", "the marker was stripped before processing"
    assert not emulator.state.pending_faults()
    assert_generates(http)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_not_json_after_accept_answers_a_stream_with_the_page_once_it_ended(
    emulator: RunningEmulator, http: httpx2.Client, trigger: str
) -> None:
    make_agent(http)
    args = triggered(emulator, "not-json-after-accept", trigger)
    reply = create(
        http, args["prompt"], headers=args["headers"], stream=True, background=True, metadata={"tag": "page"}
    )
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.text == faults.GATEWAY_PAGE
    [stored] = emulator.state.responses.values()
    assert stored.status == "completed" and stored.streamed
    assert [r["id"] for r in listed_by_tag(http, "page")] == [stored.response["id"]]
    events = resumed(http, stored.response["id"], -1)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert_generates(http)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_event_not_json_after_accept_garbles_the_event_after_in_progress_and_ends(
    emulator: RunningEmulator, http: httpx2.Client, trigger: str, background: bool
) -> None:
    make_agent(http, partial_images=1)
    args = triggered(emulator, "event-not-json-after-accept", trigger)
    reply = create(
        http, args["prompt"], headers=args["headers"], stream=True, background=background, metadata={"tag": "ev"}
    )
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    data = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    readable = [json.loads(item) for item in data[:-1]]
    expected = ["response.created", *(["response.queued"] if background else []), "response.in_progress"]
    assert [event["type"] for event in readable] == expected
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[-1])
    response_id = readable[0]["response"]["id"]
    assert [r["id"] for r in listed_by_tag(http, "ev")] == [response_id]
    # The response runs on: resuming after the last readable event replays the garbled one and the rest.
    rest = resumed(http, response_id, readable[-1]["sequence_number"])
    assert rest[0]["sequence_number"] == len(readable) and data[-1] in json.dumps(rest[0], separators=(",", ":"))
    assert rest[-1]["type"] == "response.completed"
    assert emulator.state.get_response(response_id) is not None
    assert emulator.state.image_bytes(response_id)
    assert not emulator.state.pending_faults()
    assert_generates(http)


@pytest.mark.parametrize("name", UNREADABLE)
def test_retrieves_and_resumes_are_never_faulted_by_them(
    emulator: RunningEmulator, http: httpx2.Client, name: str
) -> None:
    make_agent(http)
    response = create(http, stream=True, background=True)
    response_id = sse_events(response.text)[0]["response"]["id"]
    emulator.state.inject(name, method="GET", path=f"/responses/{response_id}")
    retrieved = http.get(f"{RESPONSES}/{response_id}", headers=fault(name))
    assert retrieved.status_code == 200 and retrieved.json()["status"] == "completed"
    params = {"stream": "true", "starting_after": "1"}
    replay = http.get(f"{RESPONSES}/{response_id}", params=params)
    assert sse_events(replay.text)[-1]["type"] == "response.completed"
    assert not emulator.state.pending_faults(), "the scheduled fault was spent on the resume, to no effect"


def test_json_reset_after_accept_elsewhere_acts_as_reset_after_accept(
    emulator: RunningEmulator, http: httpx2.Client
) -> None:
    definition = {"kind": "prompt", "model": "gpt-4.1", "tools": [{"type": "image_generation"}]}
    emulator.state.inject("json-reset-after-accept", path="/agents/img-agent/versions")
    with pytest.raises(httpx2.RemoteProtocolError):
        http.post("/agents/img-agent/versions", params=V1, json={"definition": definition})
    assert [v.version for v in emulator.state.agent_versions("img-agent")] == ["1"], "processed"


@pytest.mark.parametrize("name", ["not-json-after-accept", "event-not-json-after-accept"])
def test_the_unreadable_answers_elsewhere_act_as_truncate_stream(http: httpx2.Client, name: str) -> None:
    make_agent(http)
    reply = http.get("/agents/img-agent", params=V1, headers=fault(name))
    assert reply.status_code == 200 and int(reply.headers["content-length"]) == len(reply.content)
    assert reply.text.startswith('{"object":"agent"')
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_a_long_429_asks_for_two_minutes_in_seconds_only(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, headers=fault("429-long"))
    assert reply.status_code == 429 and reply.json()["error"]["code"] == "rate_limit_exceeded"
    assert "120 seconds" in reply.json()["error"]["message"]
    assert reply.headers["retry-after"] == "120" and "retry-after-ms" not in reply.headers
    assert emulator.state.responses == {}
    assert_generates(http)


def test_reset_applies_to_other_routes(emulator: RunningEmulator, http: httpx2.Client) -> None:
    emulator.state.inject("reset", method="GET", path="/agents/img-agent")
    make_agent(http)
    with pytest.raises(httpx2.RemoteProtocolError):
        http.get("/agents/img-agent", params=V1)
    assert http.get("/agents/img-agent", params=V1).status_code == 200


# ---------------------------------------------------------------- stalls


def test_stall_outlasts_a_short_read_timeout() -> None:
    with start_emulator(EmulatorConfig(stall_seconds=0.5)) as emulator, client_for(emulator) as http:
        make_agent(http)
        emulator.state.inject("stall")
        body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}, "input": "a fox"}
        with pytest.raises(httpx2.ReadTimeout):
            http.post(RESPONSES, json=body, headers=DEPLOYMENT, timeout=httpx2.Timeout(5, read=0.2))
        assert len(emulator.state.responses) == 1, "a stalled request was accepted"
        assert_generates(http)


def test_stall_by_prompt_marker_then_answers_normally() -> None:
    with start_emulator(EmulatorConfig(stall_seconds=0.5)) as emulator, client_for(emulator) as http:
        make_agent(http)
        started = time.monotonic()
        reply = create(http, "a fox [[fault:stall]]")
        assert time.monotonic() - started >= 0.5
        assert reply.status_code == 200 and image_call(reply.json())["revised_prompt"] == "a fox"
        assert emulator.state.requests[-1].json["input"] == "a fox [[fault:stall]]", "recorded as sent"
        quick = time.monotonic()
        assert_generates(http)
        assert time.monotonic() - quick < 0.5


# ---------------------------------------------------------------- truncations


def test_truncate_body_sends_half_the_json_and_processes_nothing(
    emulator: RunningEmulator, http: httpx2.Client
) -> None:
    make_agent(http)
    reply = create(http, headers=fault("truncate-body"))
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.content) > 100
    assert reply.text.startswith('{"id":"resp_')
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.content)
    assert emulator.state.responses == {}
    whole = json.dumps(assert_generates(http, "a fox"), separators=(",", ":"))  # the same rendering, untruncated
    assert abs(len(whole) // 2 - len(reply.content)) < 10


def test_truncate_body_of_an_agent_create_creates_no_agent(emulator: RunningEmulator, http: httpx2.Client) -> None:
    emulator.state.inject("truncate-body", path="/agents/img-agent/versions")
    definition = {"kind": "prompt", "model": "gpt-4.1", "tools": [{"type": "image_generation"}]}
    reply = http.post("/agents/img-agent/versions", params=V1, json={"definition": definition})
    assert reply.status_code == 200 and reply.text.startswith('{"object":"agent.version"')
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    assert emulator.state.agent_names() == []
    assert http.get("/agents/img-agent", params=V1).status_code == 404
    again = http.post("/agents/img-agent/versions", params=V1, json={"definition": definition})
    assert again.json()["version"] == "1", "the sandboxed create did not use up a version number"


@pytest.mark.anyio
async def test_truncated_stream_ends_cleanly_and_resumes_to_the_image(emulator: RunningEmulator) -> None:
    with client_for(emulator) as http:
        make_agent(http, partial_images=2)
    emulator.state.inject("truncate-stream")
    extra_body = {"agent_reference": {"type": "agent_reference", "name": "img-agent"}}
    async with AsyncOpenAI(base_url=emulator.endpoint + "/openai/v1", api_key="k", max_retries=0) as client:
        with anyio.fail_after(20):
            stream = await client.responses.create(
                input="a kite", stream=True, background=True, extra_headers=DEPLOYMENT, extra_body=extra_body
            )
            async with stream:
                first = [event async for event in stream]
            assert [e.type for e in first] == ["response.created", "response.queued", "response.in_progress"]
            response_id = first[0].response.id
            resumed = await client.responses.retrieve(
                response_id, stream=True, starting_after=first[-1].sequence_number
            )
            async with resumed:
                rest = [event async for event in resumed]
    assert [e.sequence_number for e in rest] == list(range(3, 3 + len(rest)))
    assert sum(e.type == "response.image_generation_call.partial_image" for e in rest) == 2
    final = rest[-1]
    assert isinstance(final, ResponseCompletedEvent)
    result = next(item for item in final.response.output if item.type == "image_generation_call").result
    assert result and base64.b64decode(result) == emulator.state.image_bytes(response_id)


def test_truncate_stream_on_a_json_answer_cuts_it_but_processes_it(
    emulator: RunningEmulator, http: httpx2.Client
) -> None:
    make_agent(http)
    reply = create(http, headers=fault("truncate-stream"))
    assert reply.status_code == 200 and int(reply.headers["content-length"]) == len(reply.content)
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    [stored] = emulator.state.responses.values()
    assert stored.status == "completed"


# ---------------------------------------------------------------- content filters


def test_filter_400_by_marker_is_the_azure_prompt_block(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, [{"role": "user", "content": [{"type": "input_text", "text": "[[fault:filter-400]] a fox"}]}])
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["message"].startswith(
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."
    )
    assert {k: v for k, v in error.items() if k != "message"} == {
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": True, "severity": "medium"},
                "violence": {"filtered": True, "severity": "high"},
            },
        },
    }
    assert emulator.state.responses == {}
    assert_generates(http)


def test_filter_400_array_is_the_newer_prompt_block(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, "a fox", headers=fault("filter-400-array"))
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["code"], error["param"], error["type"]) == ("content_filter", "prompt", "invalid_request_error")
    (entry,) = error["content_filters"]
    assert (entry["blocked"], entry["source_type"]) == (True, "prompt")
    assert entry["content_filter_results"]["jailbreak"] == {"detected": True, "filtered": True}
    assert set(entry["content_filter_offsets"]) == {"start_offset", "end_offset", "check_offset"}
    assert emulator.state.responses == {}
    assert_generates(http)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("moderation-blocked", ("moderation_blocked", "image_generation_user_error", None)),
        ("image-header-missing", ("invalid_request_error", "image_generation_user_error", "tools")),
        ("agent-field", ("invalid_payload", "invalid_request_error", "tools")),
    ],
)
def test_image_tool_and_agent_refusals(
    emulator: RunningEmulator, http: httpx2.Client, name: str, expected: tuple[str, str, str | None]
) -> None:
    make_agent(http)
    reply = create(http, f"[[fault:{name}]] a fox")
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["code"], error["type"], error["param"]) == expected
    if name == "moderation-blocked":
        assert error["moderation_details"] == {"moderation_stage": "output", "categories": ["violence"]}
    assert emulator.state.responses == {}
    assert_generates(http)


def test_processed_filters_elsewhere_act_as_filter_400(http: httpx2.Client) -> None:
    make_agent(http)
    reply = http.get("/agents/img-agent", params=V1, headers=fault("filter-failed"))
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "content_filter"


FILTER_OUTCOMES = {
    "filter-failed": ("failed", "response.failed"),
    "filter-call": ("completed", "response.completed"),
    "filter-incomplete": ("incomplete", "response.incomplete"),
}


def check_filtered(name: str, response: dict[str, Any]) -> None:
    status, _ = FILTER_OUTCOMES[name]
    assert response["status"] == status
    call = image_call(response)
    assert (call["status"], call["result"]) == ("failed", None)
    if name == "filter-failed":
        assert response["error"] == {
            "code": "image_content_policy_violation",
            "message": "Generated image was filtered as a result of our safety system.",
        }
    else:
        assert response["error"] is None
    expected_details = {"reason": "content_filter"} if name == "filter-incomplete" else None
    assert response["incomplete_details"] == expected_details


@pytest.mark.parametrize("name", list(FILTER_OUTCOMES))
@pytest.mark.parametrize("trigger", ["header", "marker", "schedule"])
def test_filtered_images(emulator: RunningEmulator, http: httpx2.Client, name: str, trigger: str) -> None:
    make_agent(http)
    prompt, headers = "a fox", {}
    if trigger == "header":
        headers = fault(name)
    elif trigger == "marker":
        prompt = f"a fox [[fault:{name}]]"
    else:
        emulator.state.inject(name)
    reply = create(http, prompt, headers=headers)
    assert reply.status_code == 200, reply.text
    check_filtered(name, reply.json())
    with pytest.raises(LookupError):
        emulator.state.image_bytes(reply.json()["id"])
    assert_generates(http)


@pytest.mark.parametrize("name", list(FILTER_OUTCOMES))
def test_filtered_streams_end_with_the_matching_terminal_event(
    emulator: RunningEmulator, http: httpx2.Client, name: str
) -> None:
    make_agent(http, partial_images=2)
    reply = create(http, headers=fault(name), stream=True)
    assert reply.status_code == 200
    events = sse_events(reply.text)
    types = [e["type"] for e in events]
    assert types[-1] == FILTER_OUTCOMES[name][1]
    assert "response.image_generation_call.partial_image" not in types
    assert not [t for t in types[:-1] if t in ("response.completed", "response.failed", "response.incomplete")]
    check_filtered(name, events[-1]["response"])
    assert_generates(http)


# ---------------------------------------------------------------- auth, preview, deployment


def test_expired_token(http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, headers=fault("token-expired"))
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert reply.json() == {
        "error": {
            "code": "ExpiredAuthenticationToken",
            "message": "Lifetime validation failed, the token is expired.",
            "type": "invalid_request_error",
            "param": None,
        }
    }
    assert_generates(http)


def test_forbidden_preview_on_an_agent_route(emulator: RunningEmulator, http: httpx2.Client) -> None:
    emulator.state.inject("forbidden-preview", path="/agents/img-agent/versions")
    definition = {"kind": "prompt", "model": "gpt-4.1", "tools": [{"type": "image_generation"}]}
    reply = http.post("/agents/img-agent/versions", params=V1, json={"definition": definition})
    assert reply.status_code == 403
    error = reply.json()["error"]
    assert (error["code"], error["param"], error["type"], error["details"]) == (
        "preview_feature_required",
        "Foundry-Features",
        "invalid_request_error",
        [],
    )
    assert "Foundry-Features: WorkflowAgents=V1Preview" in error["message"]
    assert len(error["additionalInfo"]["request_id"]) == 32
    assert emulator.state.agent_names() == []
    make_agent(http)


def test_deployment_missing(http: httpx2.Client) -> None:
    make_agent(http)
    reply = create(http, "[[fault:deployment-missing]] a fox")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "DeploymentNotFound" and IMAGE in error["message"]
    assert_generates(http)


# ---------------------------------------------------------------- triggers and routing


def test_faults_on_files_retrieve_and_cancel(emulator: RunningEmulator, http: httpx2.Client) -> None:
    upload = {"file": ("a.png", b"not really", "image/png")}
    assert (
        http.post("/openai/v1/files", files=upload, data={"purpose": "assistants"}, headers=fault("503")).status_code
        == 503
    )
    assert emulator.state.files == {}
    assert http.post("/openai/v1/files", files=upload, data={"purpose": "assistants"}).status_code == 200

    make_agent(http)
    response_id = assert_generates(http)["id"]
    emulator.state.inject("429", method="GET", path=f"/responses/{response_id}")
    assert http.get(f"{RESPONSES}/{response_id}").status_code == 429
    assert http.get(f"{RESPONSES}/{response_id}").status_code == 200

    emulator.state.inject("502", path="/cancel")
    assert http.post(f"{RESPONSES}/{response_id}/cancel").status_code == 502


def test_schedule_matching_by_method_and_path(emulator: RunningEmulator, http: httpx2.Client) -> None:
    emulator.state.inject("500", method="get", path="/openai/v1/files", times=2)
    emulator.state.inject("503", method="*", path="/openai/v1/files")
    assert emulator.state.pending_faults() == [
        PendingFault("500", "GET", "/openai/v1/files", 2),
        PendingFault("503", "*", "/openai/v1/files", 1),
    ]
    assert http.get("/openai/v1/files/nope").status_code == 404, "the path must end with the scheduled one"
    assert [http.get("/openai/v1/files").status_code for _ in range(4)] == [500, 500, 503, 200]


def test_a_header_fault_wins_and_leaves_the_schedule(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    emulator.state.inject("500")
    assert create(http, headers=fault("502")).status_code == 502
    assert emulator.state.pending_faults() == [PendingFault("500", "POST", RESPONSES, 1)]
    assert create(http).status_code == 500
    assert_generates(http)


def test_unknown_fault_names_in_requests_are_400s(http: httpx2.Client) -> None:
    make_agent(http)
    by_header = create(http, headers=fault("teapot"))
    assert by_header.status_code == 400 and by_header.json()["error"]["param"] == "x-emulator-fault"
    by_marker = create(http, "a fox [[fault:teapot]]")
    assert by_marker.status_code == 400 and "teapot" in by_marker.json()["error"]["message"]


def test_unauthenticated_requests_spend_no_scheduled_fault(emulator: RunningEmulator) -> None:
    emulator.state.inject("503", method="GET", path="/files")
    with httpx2.Client(base_url=emulator.endpoint) as anonymous:
        assert anonymous.get("/openai/v1/files").status_code == 401
    assert len(emulator.state.pending_faults()) == 1


# ---------------------------------------------------------------- the responses list route


def test_list_responses_filters_orders_and_pages(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http, "img-agent")
    make_agent(http, "other-agent")
    mine = [create(http, f"picture {i}", metadata={"n": str(i)}).json()["id"] for i in range(3)]
    theirs = create(http, "theirs", name="other-agent").json()["id"]

    everything = http.get(RESPONSES).json()
    assert everything["object"] == "list"
    assert [r["id"] for r in everything["data"]] == [theirs, *reversed(mine)], "newest first"
    assert (everything["first_id"], everything["last_id"], everything["has_more"]) == (theirs, mine[0], False)

    only_mine = http.get(RESPONSES, params={"agent_name": "img-agent", "order": "asc"}).json()["data"]
    assert [r["id"] for r in only_mine] == mine
    assert [r["metadata"] for r in only_mine] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert all(r["object"] == "response" and r["status"] == "completed" for r in only_mine)

    first = http.get(RESPONSES, params={"agent_name": "img-agent", "limit": 2}).json()
    assert [r["id"] for r in first["data"]] == [mine[2], mine[1]] and first["has_more"] is True
    second = http.get(RESPONSES, params={"agent_name": "img-agent", "limit": 2, "after": first["last_id"]}).json()
    assert [r["id"] for r in second["data"]] == [mine[0]] and second["has_more"] is False
    before = http.get(RESPONSES, params={"agent_name": "img-agent", "before": mine[0]}).json()
    assert [r["id"] for r in before["data"]] == [mine[2], mine[1]]

    assert http.get(RESPONSES, params={"agent_name": "nobody"}).json()["data"] == []
    assert http.get(RESPONSES, params={"order": "sideways"}).status_code == 400
    legacy = http.get("/openai/responses", params={"api-version": "2025-11-15-preview", "agent_name": "other-agent"})
    assert [r["id"] for r in legacy.json()["data"]] == [theirs]
    assert http.get("/openai/responses").status_code == 400, "the legacy route needs its api-version"


def test_list_responses_includes_direct_ones_and_pages_with_after(
    emulator: RunningEmulator, http: httpx2.Client
) -> None:
    make_agent(http)
    tool = {"type": "image_generation", "model": IMAGE, "quality": "low"}
    direct_body = {"model": "gpt-4.1", "tools": [tool], "input": "direct", "metadata": {"tag": "d", "n": "0"}}
    direct = http.post(RESPONSES, json=direct_body, headers=DEPLOYMENT).json()["id"]
    agent = [create(http, f"picture {i}", metadata={"tag": "a", "n": str(i)}).json()["id"] for i in range(3)]

    ids, after, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = http.get(RESPONSES, params=params).json()
        ids += [r["id"] for r in page["data"]]
        assert (page["first_id"], page["last_id"]) == (page["data"][0]["id"], page["data"][-1]["id"])
        pages += 1
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert ids == [*reversed(agent), direct] and pages == 2, "direct responses are listed without agent_name"
    everything = {r["id"]: r for r in http.get(RESPONSES).json()["data"]}
    assert everything[direct]["metadata"] == {"tag": "d", "n": "0"} and everything[direct]["agent_reference"] is None
    assert [everything[i]["metadata"] for i in agent] == [{"tag": "a", "n": str(i)} for i in range(3)]
    only_agent = http.get(RESPONSES, params={"agent_name": "img-agent"}).json()["data"]
    assert direct not in [r["id"] for r in only_agent]
    assert [s.response["id"] for s in emulator.state.find_responses(tag="a")] == agent
    assert [s.response["id"] for s in emulator.state.find_responses(tag="a", n="1")] == [agent[1]]


def test_a_forgotten_response_is_gone_with_the_real_404(emulator: RunningEmulator, http: httpx2.Client) -> None:
    make_agent(http)
    response_id = create(http, metadata={"tag": "soon-gone"}).json()["id"]
    assert emulator.state.forget_response(response_id) is True
    assert emulator.state.forget_response(response_id) is False
    reply = http.get(f"{RESPONSES}/{response_id}")
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "message": f"Response with id '{response_id}' not found.",
            "type": "invalid_request_error",
            "param": "response_id",
            "code": "not_found",
        }
    }
    resume = http.get(f"{RESPONSES}/{response_id}", params={"stream": "true", "starting_after": "0"})
    assert resume.status_code == 404
    assert listed_by_tag(http, "soon-gone") == [] and emulator.state.find_responses(tag="soon-gone") == []
    assert_generates(http)
