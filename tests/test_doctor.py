"""`foundry-image-mcp doctor` as a user runs it: a subprocess, configured by its environment, against the emulator."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import token_endpoint

from mcp_server.emulator import EmulatorConfig, start_emulator

CHECKS = ["configuration", "credentials", "endpoint", "agent", "image deployment", "live generation"]
KEY = "doctor-key-5d1c9e"
VERSIONS = "/agents/foundry-image-mcp/versions"
RESPONSES = "/openai/v1/responses"


@dataclass
class Row:
    result: str
    detail: str
    fix: str


@dataclass
class Run:
    code: int
    rows: dict[str, Row]
    stdout: str
    stderr: str

    def results(self) -> list[str]:
        return [self.rows[check].result for check in CHECKS]


def parse_table(stdout: str) -> dict[str, Row]:
    """The table's rows by check, wrapped cells joined, read by the header's column offsets."""
    lines = stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("check ")))
    head = lines[header]
    result_at, detail_at, fix_at = head.index("result"), head.index("detail"), head.index("fix")
    assert set(lines[header + 1]) <= {"-", " "}, lines[header + 1]
    rows: dict[str, Row] = {}
    current: Row | None = None
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        check = line[:result_at].strip()
        if check:
            current = rows[check] = Row(line[result_at:detail_at].strip(), "", "")
        assert current is not None, line
        current.detail = f"{current.detail} {line[detail_at:fix_at].strip()}".strip()
        current.fix = f"{current.fix} {line[fix_at:].strip()}".strip()
    return rows


def doctor(env: dict[str, str], *args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "doctor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    rows = parse_table(done.stdout)
    assert list(rows) == CHECKS, done.stdout
    return Run(done.returncode, rows, done.stdout, done.stderr)


def environment(tmp_path: Path, endpoint: str | None, api_key: str | None = KEY, **extra: str) -> dict[str, str]:
    env = {
        "AZURE_AI_MODEL_DEPLOYMENT_NAME": "gpt-4.1",
        "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(tmp_path / "out"),
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    if endpoint is not None:
        env["AZURE_AI_PROJECT_ENDPOINT"] = endpoint
    if api_key is not None:
        env["AZURE_AI_API_KEY"] = api_key
    env.update(extra)
    return env


def dead_loopback_endpoint() -> str:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/projects/emulator"


def test_all_checks_pass_with_an_api_key_and_a_second_run_reuses_the_agent_version(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(accepted_api_keys=frozenset({KEY}))) as emu:
        env = environment(tmp_path, emu.endpoint)
        first = doctor(env)
        second = doctor(env)
        assert emu.state.count("POST", VERSIONS) == 1
        assert emu.state.count("POST", RESPONSES) == 0, "without --live nothing is generated"
        assert all(r.headers.get("api-key") == KEY for r in emu.state.requests)
    for run in (first, second):
        assert run.code == 0, run.stdout + run.stderr
        assert run.results() == ["PASS"] * 5 + ["SKIP"], run.stdout
        assert run.rows["live generation"].detail == "run with --live"
        assert run.rows["credentials"].detail == "api-key (from AZURE_AI_API_KEY)"
        assert KEY not in run.stdout + run.stderr
        config = run.rows["configuration"].detail
        for shown in (
            emu.endpoint,
            "agent foundry-image-mcp",
            "gpt-4.1",
            "gpt-image-1",
            "api-key",
            str(tmp_path / "out"),
        ):
            assert shown in config, config
        assert "All checks passed" in run.stdout
    assert "does not exist yet" in first.rows["endpoint"].detail
    assert "exists, latest version 1" in second.rows["endpoint"].detail
    assert first.rows["agent"].detail == "foundry-image-mcp:1 (created)"
    assert second.rows["agent"].detail == "foundry-image-mcp:1 (reused)"
    assert "gpt-image-1" in first.rows["image deployment"].detail
    assert (tmp_path / "out").is_dir() and list((tmp_path / "out").iterdir()) == [], "the probe file is removed"


def test_live_generates_one_image_through_the_server_code_path(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint), "--live")
        assert emu.state.count("POST", RESPONSES) == 1
        assert emu.state.count("POST", VERSIONS) == 1, "the live image reuses the version the agent check made"
        create = next(r for r in emu.state.requests if r.method == "POST" and r.path.endswith(RESPONSES))
        assert create.json is not None and create.json["agent_reference"]["name"] == "foundry-image-mcp"
        assert create.json["background"] is True and create.json.get("stream") is True
        version = next(r for r in emu.state.requests if r.method == "POST" and r.path.endswith(VERSIONS))
        assert version.json is not None
        tool = version.json["definition"]["tools"][0]
        assert (tool["quality"], tool["size"], tool["model"]) == ("low", "1024x1024", "gpt-image-1")
    assert run.code == 0, run.stdout + run.stderr
    assert run.results() == ["PASS"] * 6, run.stdout
    live = run.rows["live generation"].detail
    assert live.startswith("1024x1024 PNG, ") and " KiB in " in live and "(response resp_" in live, live
    assert list((tmp_path / "out").iterdir()) == [], "the live image goes to a temporary store"


def test_entra_id_names_the_credential_that_produced_the_token(tmp_path: Path) -> None:
    with (
        token_endpoint() as identity,
        start_emulator(EmulatorConfig(accepted_tokens=frozenset({identity.token}))) as emu,
    ):
        run = doctor(environment(tmp_path, emu.endpoint, api_key=None, **identity.env))
        assert len(identity.calls) == 1, "one token serves every check"
        assert identity.calls[0]["query"]["resource"] == "https://ai.azure.com"
        assert emu.state.requests and {r.headers.get("authorization") for r in emu.state.requests} == {
            f"Bearer {identity.token}"
        }
    assert run.code == 0, run.stdout + run.stderr
    assert run.results() == ["PASS"] * 5 + ["SKIP"], run.stdout
    credentials = run.rows["credentials"].detail
    assert credentials == "entra-id: token for https://ai.azure.com/.default from ManagedIdentityCredential"
    assert "auth entra-id" in run.rows["configuration"].detail
    assert identity.token not in run.stdout + run.stderr and identity.secret not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (
            ["AZURE_AI_PROJECT_ENDPOINT", "AZURE_AI_MODEL_DEPLOYMENT_NAME"],
            ["AZURE_AI_PROJECT_ENDPOINT", "AZURE_AI_MODEL_DEPLOYMENT_NAME"],
        ),
        (["AZURE_AI_MODEL_DEPLOYMENT_NAME"], ["AZURE_AI_MODEL_DEPLOYMENT_NAME"]),
    ],
)
def test_missing_configuration_fails_first_and_names_the_variables(
    tmp_path: Path, unset: list[str], named: list[str]
) -> None:
    env = environment(tmp_path, "http://127.0.0.1:9/api/projects/emulator")
    for name in unset:
        del env[name]
    run = doctor(env)
    assert run.code == 1
    config = run.rows["configuration"]
    assert config.result == "FAIL"
    assert all(name in config.detail for name in named), config.detail
    assert ("AZURE_AI_PROJECT_ENDPOINT" in config.detail) == ("AZURE_AI_PROJECT_ENDPOINT" in unset)
    assert "AZURE_AI_PROJECT_ENDPOINT" in config.fix and "AZURE_AI_MODEL_DEPLOYMENT_NAME" in config.fix
    for check in CHECKS[1:5]:
        assert run.rows[check] == Row("SKIP", "not run: configuration failed", ""), run.stdout
    assert run.rows["live generation"] == Row("SKIP", "run with --live", "")
    assert KEY not in run.stdout + run.stderr


def test_malformed_settings_are_a_configuration_failure(tmp_path: Path) -> None:
    run = doctor(environment(tmp_path, "http://foundry.example.com/api/projects/p"))
    assert run.code == 1
    config = run.rows["configuration"]
    assert config.result == "FAIL" and "must use https" in config.detail, run.stdout
    assert "Environment variables" in config.fix
    assert run.results()[1:5] == ["SKIP"] * 4


def test_an_output_directory_that_cannot_be_written_fails_configuration_but_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, FOUNDRY_IMAGE_MCP_OUTPUT_DIR=str(blocker / "images")))
    assert run.code == 1
    config = run.rows["configuration"]
    assert config.result == "FAIL" and "not writable" in config.detail, run.stdout
    assert "FOUNDRY_IMAGE_MCP_OUTPUT_DIR" in config.fix
    assert run.results()[1:] == ["PASS"] * 4 + ["SKIP"], run.stdout


def test_an_endpoint_nothing_listens_on_is_unreachable(tmp_path: Path) -> None:
    endpoint = dead_loopback_endpoint()
    run = doctor(environment(tmp_path, endpoint))
    assert run.code == 1
    row = run.rows["endpoint"]
    assert row.result == "FAIL" and row.detail.startswith(f"cannot reach {endpoint}"), run.stdout
    assert "ConnectError" in row.detail
    assert "AZURE_AI_PROJECT_ENDPOINT" in row.fix
    assert run.results()[:2] == ["PASS", "PASS"]
    assert run.rows["agent"] == Row("SKIP", "not run: endpoint failed", "")
    assert run.rows["image deployment"] == Row("SKIP", "not run: endpoint failed", "")


def test_no_credential_fails_credentials_and_skips_what_needs_one(tmp_path: Path) -> None:
    with token_endpoint(status=500) as identity, start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, api_key=None, **identity.env))
        assert identity.calls, "the managed identity endpoint was asked"
        assert emu.state.requests == [], "nothing is sent to Foundry without a credential"
    assert run.code == 1
    row = run.rows["credentials"]
    assert row.result == "FAIL" and "Microsoft Entra ID token" in row.detail, run.stdout
    assert "az login" in row.fix and "managed identity" in row.fix and "AZURE_AI_API_KEY" in row.fix
    for check in ("endpoint", "agent", "image deployment"):
        assert run.rows[check] == Row("SKIP", "not run: credentials failed", ""), run.stdout
    assert run.rows["live generation"] == Row("SKIP", "run with --live", "")
    assert run.rows["configuration"].result == "PASS"


def test_a_rejected_key_fails_the_endpoint_check_without_showing_any_key(tmp_path: Path) -> None:
    right, wrong = "right-key-3f9a1b", "wrong-key-7c1e42"
    with start_emulator(EmulatorConfig(accepted_api_keys=frozenset({right}))) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, api_key=wrong), "--live")
        assert emu.state.count("POST", VERSIONS) == 0
    assert run.code == 1
    row = run.rows["endpoint"]
    assert row.result == "FAIL" and "HTTP 401" in row.detail, run.stdout
    assert "AZURE_AI_API_KEY" in row.fix and "Azure AI User" in row.fix
    assert run.results()[3:] == ["SKIP"] * 3
    assert run.rows["live generation"].detail == "not run: endpoint failed"
    assert right not in run.stdout + run.stderr and wrong not in run.stdout + run.stderr


def test_an_unknown_image_deployment_fails_and_names_the_variable(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, AZURE_AI_IMAGE_DEPLOYMENT_NAME="gpt-image-9"))
        assert emu.state.count("POST", VERSIONS) == 1 and not emu.state.agent_versions("foundry-image-mcp")
    assert run.code == 1
    image = run.rows["image deployment"]
    assert image.result == "FAIL" and "gpt-image-9" in image.detail, run.stdout
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in image.fix and "AZURE_AI_MODEL_DEPLOYMENT_NAME" not in image.fix
    assert run.rows["agent"].result == "FAIL" and "gpt-image-9" in run.rows["agent"].detail
    assert run.results()[:3] == ["PASS"] * 3


def test_an_unknown_model_deployment_blames_the_model_variable(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-9"))
    assert run.code == 1
    agent = run.rows["agent"]
    assert agent.result == "FAIL" and "gpt-9" in agent.detail, run.stdout
    assert "AZURE_AI_MODEL_DEPLOYMENT_NAME" in agent.fix and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" not in agent.fix
    assert run.rows["image deployment"] == Row("SKIP", "not run: agent failed", "")


def test_live_reports_a_missing_image_deployment_at_generation(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        emu.state.inject("deployment-missing", method="POST", path=RESPONSES, times=1)
        run = doctor(environment(tmp_path, emu.endpoint), "--live")
        assert emu.state.count("POST", RESPONSES) == 1
    assert run.code == 1
    live = run.rows["live generation"]
    assert live.result == "FAIL" and "no deployment" in live.detail, run.stdout
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in live.fix
    image = run.rows["image deployment"]
    assert image.result == "FAIL" and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in image.fix
    assert run.results()[:4] == ["PASS"] * 4


def test_flags_override_the_environment_as_for_serve(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        env = environment(tmp_path, dead_loopback_endpoint(), AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-9")
        run = doctor(
            env,
            *("--endpoint", emu.endpoint, "--model-deployment", "gpt-4.1-mini"),
            *("--image-deployment", "gpt-image-1-mini", "--agent-name", "doctor-check"),
            *("--output-dir", str(tmp_path / "flagged")),
        )
        assert [v.definition["model"] for v in emu.state.agent_versions("doctor-check")] == ["gpt-4.1-mini"]
    assert run.code == 0, run.stdout + run.stderr
    assert run.rows["agent"].detail == "doctor-check:1 (created)"
    assert "gpt-image-1-mini" in run.rows["image deployment"].detail
    assert str(tmp_path / "flagged") in run.rows["configuration"].detail
    assert (tmp_path / "flagged").is_dir() and not (tmp_path / "out").exists()
