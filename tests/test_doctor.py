"""`foundry-image-mcp doctor` as a user runs it, configured by its environment, against the emulator.

The command runs in this process (`cli.main(["doctor", ...])` with the environment replaced and stdout
captured), which is the same code path as the console script; one test runs it as a real subprocess.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from azure.storage.blob import AccountSasPermissions, BlobServiceClient, ResourceTypes, generate_account_sas
from azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from helpers import token_endpoint

from mcp_server.cli import main as cli
from mcp_server.cli.doctor import diagnose
from mcp_server.emulator import EmulatorConfig, RunningEmulator, start_emulator

CHECKS = [
    "configuration",
    "store",
    "credentials",
    "endpoint",
    "deployments",
    "agent",
    "image deployment",
    "live generation",
]
DISCOVERED = "image gpt-image-2 -> gpt-image-2 (discovered), orchestrator gpt-4.1 -> gpt-4.1 (discovered)"
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
    """`foundry-image-mcp doctor ARGS` in this process, with exactly `env` as its environment."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["doctor", *args])
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stdout + stderr, stdout + stderr
    rows = parse_table(stdout)
    assert list(rows) == CHECKS, stdout
    return Run(code, rows, stdout, stderr)


def doctor_process(env: dict[str, str], *args: str) -> Run:
    """The same, as the console script runs it: a subprocess."""
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
    """Only the endpoint and a key, as a user who lets the deployments be found sets it up."""
    env = {
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
        first = doctor_process(env)
        second = doctor(env)
        assert emu.state.count("POST", VERSIONS) == 1
        assert emu.state.count("POST", RESPONSES) == 0, "without --live nothing is generated"
        assert emu.state.count("GET", "/deployments") == 2, "one listing per run"
        assert all(r.headers.get("api-key") == KEY for r in emu.state.requests)
    for run in (first, second):
        assert run.code == 0, run.stdout + run.stderr
        assert run.results() == ["PASS"] * 7 + ["SKIP"], run.stdout
        assert run.rows["live generation"].detail == "run with --live"
        assert run.rows["credentials"].detail == "api-key (from AZURE_AI_API_KEY)"
        assert KEY not in run.stdout + run.stderr
        config = run.rows["configuration"].detail
        for shown in (
            emu.endpoint,
            "agent foundry-image-mcp",
            "model deployment (found in the project)",
            "image deployment (found in the project)",
            "api-key",
            str(tmp_path / "out"),
        ):
            assert shown in config, config
        assert "All checks passed" in run.stdout
        assert run.rows["deployments"].detail == f"{DISCOVERED}; gpt-image-2 retires on 2027-10-21"
    assert "does not exist yet" in first.rows["endpoint"].detail
    assert "exists, latest version 1" in second.rows["endpoint"].detail
    assert first.rows["agent"].detail == "foundry-image-mcp:1 (created)"
    assert second.rows["agent"].detail == "foundry-image-mcp:1 (reused)"
    assert "gpt-image-2 -> gpt-image-2 (discovered) is the image model" in first.rows["image deployment"].detail
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
        assert (tool["quality"], tool["size"], tool["model"]) == ("low", "1024x1024", "gpt-image-2")
        assert version.json["definition"]["model"] == "gpt-4.1"
        assert create.headers["x-ms-oai-image-generation-deployment"] == "gpt-image-2"
    assert run.code == 0, run.stdout + run.stderr
    assert run.results() == ["PASS"] * 8, run.stdout
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
    assert run.results() == ["PASS"] * 7 + ["SKIP"], run.stdout
    credentials = run.rows["credentials"].detail
    assert credentials == "entra-id: token for https://ai.azure.com/.default from ManagedIdentityCredential"
    assert "auth entra-id" in run.rows["configuration"].detail
    assert identity.token not in run.stdout + run.stderr and identity.secret not in run.stdout + run.stderr


def test_a_missing_endpoint_fails_first_and_names_the_variable(tmp_path: Path) -> None:
    run = doctor(environment(tmp_path, None))
    assert run.code == 1
    config = run.rows["configuration"]
    assert config.result == "FAIL"
    assert "AZURE_AI_PROJECT_ENDPOINT" in config.detail, config.detail
    assert "AZURE_AI_MODEL_DEPLOYMENT_NAME" not in config.detail, "the deployments are found, not required"
    assert "AZURE_AI_PROJECT_ENDPOINT" in config.fix and "found in the project" in config.fix
    for check in CHECKS[1:7]:
        assert run.rows[check] == Row("SKIP", "not run: configuration failed", ""), run.stdout
    assert run.rows["live generation"] == Row("SKIP", "run with --live", "")
    assert KEY not in run.stdout + run.stderr


def test_malformed_settings_are_a_configuration_failure(tmp_path: Path) -> None:
    run = doctor(environment(tmp_path, "http://foundry.example.com/api/projects/p"))
    assert run.code == 1
    config = run.rows["configuration"]
    assert config.result == "FAIL" and "must use https" in config.detail, run.stdout
    assert "Environment variables" in config.fix
    assert run.results()[1:7] == ["SKIP"] * 6


def test_an_output_directory_that_cannot_be_written_fails_the_store_but_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, FOUNDRY_IMAGE_MCP_OUTPUT_DIR=str(blocker / "images")))
    assert run.code == 1
    store = run.rows["store"]
    assert store.result == "FAIL" and "not writable" in store.detail, run.stdout
    assert "FOUNDRY_IMAGE_MCP_OUTPUT_DIR" in store.fix
    assert run.results() == ["PASS", "FAIL"] + ["PASS"] * 5 + ["SKIP"], run.stdout


def test_an_endpoint_nothing_listens_on_is_unreachable(tmp_path: Path) -> None:
    endpoint = dead_loopback_endpoint()
    run = doctor(environment(tmp_path, endpoint))
    assert run.code == 1
    row = run.rows["endpoint"]
    assert row.result == "FAIL" and row.detail.startswith(f"cannot reach {endpoint}"), run.stdout
    assert "ConnectError" in row.detail
    assert "AZURE_AI_PROJECT_ENDPOINT" in row.fix
    assert run.results()[:3] == ["PASS"] * 3
    assert run.rows["deployments"] == Row("SKIP", "not run: endpoint failed", "")
    assert run.rows["agent"] == Row("SKIP", "not run: endpoint failed", "")
    assert run.rows["image deployment"] == Row("SKIP", "not run: endpoint failed", "")


def test_no_credential_fails_credentials_and_skips_what_needs_one(tmp_path: Path) -> None:
    with token_endpoint(status=400) as identity, start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, api_key=None, **identity.env))
        assert identity.calls, "the managed identity endpoint was asked"
        assert emu.state.requests == [], "nothing is sent to Foundry without a credential"
    assert run.code == 1
    row = run.rows["credentials"]
    assert row.result == "FAIL" and "Microsoft Entra ID token" in row.detail, run.stdout
    assert "az login" in row.fix and "managed identity" in row.fix and "AZURE_AI_API_KEY" in row.fix
    for check in ("endpoint", "deployments", "agent", "image deployment"):
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
    assert run.results()[4:] == ["SKIP"] * 4
    assert run.rows["live generation"].detail == "not run: endpoint failed"
    assert right not in run.stdout + run.stderr and wrong not in run.stdout + run.stderr


def test_an_unknown_image_deployment_fails_lists_the_project_and_names_the_variable(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, AZURE_AI_IMAGE_DEPLOYMENT_NAME="gpt-image-9"))
        assert emu.state.count("POST", VERSIONS) == 0
    assert run.code == 1
    row = run.rows["deployments"]
    assert row.result == "FAIL" and "'gpt-image-9'" in row.detail, run.stdout
    assert "gpt-image-2 -> gpt-image-2" in row.detail and "gpt-4.1 -> gpt-4.1" in row.detail
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in row.fix and "AZURE_AI_MODEL_DEPLOYMENT_NAME" not in row.fix
    assert run.results()[:4] == ["PASS"] * 4
    for check in ("agent", "image deployment"):
        assert run.rows[check] == Row("SKIP", "not run: deployments failed", "")


def test_an_unknown_model_deployment_blames_the_model_variable(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig()) as emu:
        run = doctor(environment(tmp_path, emu.endpoint, AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-9"))
    assert run.code == 1
    row = run.rows["deployments"]
    assert row.result == "FAIL" and "'gpt-9'" in row.detail, run.stdout
    assert "AZURE_AI_MODEL_DEPLOYMENT_NAME" in row.fix and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" not in row.fix
    assert run.rows["agent"] == Row("SKIP", "not run: deployments failed", "")


def test_two_image_deployments_fail_and_list_them(tmp_path: Path) -> None:
    config = EmulatorConfig(deployments={"gpt-4.1": "gpt-4.1", "old": "gpt-image-1.5", "new": "gpt-image-2"})
    with start_emulator(config) as emu:
        run = doctor(environment(tmp_path, emu.endpoint))
    assert run.code == 1
    row = run.rows["deployments"]
    assert row.result == "FAIL" and "new -> gpt-image-2" in row.detail and "old -> gpt-image-1.5" in row.detail
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in row.fix


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
    assert run.results()[:6] == ["PASS"] * 6


def test_flags_override_the_environment_as_for_serve(tmp_path: Path) -> None:
    deployments = {"gpt-4.1": "gpt-4.1", "gpt-4.1-mini": "gpt-4.1-mini", "mini": "gpt-image-1-mini"}
    with start_emulator(EmulatorConfig(deployments={**deployments, "gpt-image-2": "gpt-image-2"})) as emu:
        env = environment(tmp_path, dead_loopback_endpoint(), AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-9")
        run = doctor(
            env,
            *("--endpoint", emu.endpoint, "--model-deployment", "gpt-4.1-mini"),
            *("--image-deployment", "mini", "--agent-name", "doctor-check"),
            *("--output-dir", str(tmp_path / "flagged")),
        )
        assert [v.definition["model"] for v in emu.state.agent_versions("doctor-check")] == ["gpt-4.1-mini"]
    assert run.code == 0, run.stdout + run.stderr
    assert run.rows["agent"].detail == "doctor-check:1 (created)"
    assert run.rows["deployments"].detail.startswith(
        "image mini -> gpt-image-1-mini (given), orchestrator gpt-4.1-mini -> gpt-4.1-mini (given)"
    )
    assert "mini -> gpt-image-1-mini (given)" in run.rows["image deployment"].detail
    assert str(tmp_path / "flagged") in run.rows["configuration"].detail
    assert (tmp_path / "flagged").is_dir() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ retirement and a refusing deployments API


def in_process(emu: RunningEmulator, tmp_path: Path, today: date, **extra: str) -> dict[str, tuple[str, str, str]]:
    """`diagnose` in this process, on `today`: each row's (result, detail, fix) by check."""
    rows = diagnose({}, live=False, environ=environment(tmp_path, emu.endpoint, **extra), today=today)
    assert [row.check for row in rows] == CHECKS
    return {row.check: (row.result, row.detail, row.fix) for row in rows}


def test_a_retired_image_model_fails_with_what_to_deploy(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(deployments={"gpt-4.1": "gpt-4.1", "old": "gpt-image-1"})) as emu:
        rows = in_process(emu, tmp_path, date(2026, 10, 23))
    result, detail, fix = rows["deployments"]
    assert result == "FAIL"
    assert "image old -> gpt-image-1 (discovered)" in detail and "gpt-image-1 was retired on 2026-10-23" in detail
    assert "gpt-image-2" in fix and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in fix and "delete old" in fix
    assert rows["agent"][0] == "PASS", "the names are known: the later checks still run"


@pytest.mark.parametrize(
    ("today", "result", "says"),
    [
        (date(2026, 8, 24), "WARN", "gpt-image-1 retires on 2026-10-23, in 60 days"),
        (date(2026, 8, 23), "PASS", "gpt-image-1 retires on 2026-10-23"),
    ],
)
def test_an_image_model_retiring_within_60_days_warns_without_failing(
    tmp_path: Path, today: date, result: str, says: str
) -> None:
    with start_emulator(EmulatorConfig(deployments={"gpt-4.1": "gpt-4.1", "img": "gpt-image-1"})) as emu:
        rows = in_process(emu, tmp_path, today, AZURE_AI_IMAGE_DEPLOYMENT_NAME="img")
    got, detail, fix = rows["deployments"]
    assert got == result and detail.endswith(says), detail
    assert ("gpt-image-2" in fix and "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in fix) == (result == "WARN"), fix
    assert [rows[check][0] for check in ("agent", "image deployment")] == ["PASS", "PASS"]


def test_a_warning_passes_the_exit_status(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(deployments_api_status=403)) as emu:
        env = environment(
            tmp_path,
            emu.endpoint,
            AZURE_AI_IMAGE_DEPLOYMENT_NAME="gpt-image-2",
            AZURE_AI_MODEL_DEPLOYMENT_NAME="gpt-4.1",
        )
        run = doctor(env)
    assert run.code == 0, run.stdout + run.stderr
    assert run.results() == ["PASS"] * 4 + ["WARN"] + ["PASS"] * 2 + ["SKIP"], run.stdout
    row = run.rows["deployments"]
    assert "image gpt-image-2 -> model unknown (given)" in row.detail and "refused (HTTP 403)" in row.detail
    assert "All checks passed (1 with a warning)." in run.stdout


def test_a_refusing_deployments_api_without_names_fails_and_names_both_variables(tmp_path: Path) -> None:
    with start_emulator(EmulatorConfig(deployments_api_status=404)) as emu:
        run = doctor(environment(tmp_path, emu.endpoint))
    assert run.code == 1
    row = run.rows["deployments"]
    assert row.result == "FAIL" and "refused (HTTP 404" in row.detail, run.stdout
    assert "AZURE_AI_IMAGE_DEPLOYMENT_NAME" in row.fix and "AZURE_AI_MODEL_DEPLOYMENT_NAME" in row.fix


# ------------------------------------------------------------------ the store in Azure Blob Storage (Azurite)


def blob_environment(tmp_path: Path, endpoint: str, connection: str, container: str) -> dict[str, str]:
    return environment(
        tmp_path,
        endpoint,
        FOUNDRY_IMAGE_MCP_STORE="azure-blob",
        FOUNDRY_IMAGE_MCP_BLOB_CONNECTION_STRING=connection,
        FOUNDRY_IMAGE_MCP_BLOB_CONTAINER=container,
    )


def account_sas(resource_types: ResourceTypes, permission: AccountSasPermissions) -> str:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    return generate_account_sas(ACCOUNT, ACCOUNT_KEY, resource_types, permission, expiry)


def test_the_blob_store_check_writes_reads_lists_and_deletes_a_test_blob(tmp_path: Path, azurite: Azurite) -> None:
    container = f"doctor-{secrets.token_hex(4)}"
    with start_emulator(EmulatorConfig(accepted_api_keys=frozenset({KEY}))) as emu:
        run = doctor(blob_environment(tmp_path, emu.endpoint, azurite.connection_string(), container))
    assert run.code == 0, run.stdout + run.stderr
    assert run.results() == ["PASS"] * 7 + ["SKIP"], run.stdout
    store = run.rows["store"]
    assert store.detail.startswith(f"azure-blob {azurite.blob_endpoint}/{container}: wrote, read, listed and deleted")
    assert f"store azure-blob (container {container})" in run.rows["configuration"].detail
    assert ACCOUNT_KEY not in run.stdout + run.stderr
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    assert list(service.get_container_client(container).list_blobs()) == [], "created, and the test blob removed"


FULL_BLOB_RIGHTS = AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True)


@pytest.mark.parametrize(
    ("case", "says", "fix"),
    [
        ("wrong key", "refused the credentials (HTTP 403", "Check the account key"),
        ("no container rights", "may not create it", "Create the container FOUNDRY_IMAGE_MCP_BLOB_CONTAINER names"),
        ("read only", "(HTTP 403 AuthorizationPermissionMismatch)", "Storage Blob Data Contributor role"),
        ("nothing listening", "cannot reach the storage account", "FOUNDRY_IMAGE_MCP_BLOB_ACCOUNT_URL"),
    ],
)
def test_a_refusing_blob_store_fails_with_its_fix_and_the_rest_still_runs(
    tmp_path: Path, azurite: Azurite, case: str, says: str, fix: str
) -> None:
    objects = ResourceTypes(object=True)
    connection = {
        "wrong key": azurite.connection_string("A" * 86 + "=="),
        "no container rights": f"BlobEndpoint={azurite.blob_endpoint};"
        f"SharedAccessSignature={account_sas(objects, FULL_BLOB_RIGHTS)}",
        "read only": f"BlobEndpoint={azurite.blob_endpoint};"
        f"SharedAccessSignature={account_sas(objects, AccountSasPermissions(read=True, list=True))}",
        "nothing listening": Azurite(port=1).connection_string(),
    }[case]
    container = f"doctor-{secrets.token_hex(4)}"
    if case == "read only":
        BlobServiceClient.from_connection_string(azurite.connection_string()).create_container(container)
    with start_emulator(EmulatorConfig(accepted_api_keys=frozenset({KEY}))) as emu:
        run = doctor(blob_environment(tmp_path, emu.endpoint, connection, container))
    assert run.code == 1
    store = run.rows["store"]
    assert store.result == "FAIL" and says in store.detail and fix in store.fix, run.stdout
    assert run.results() == ["PASS", "FAIL"] + ["PASS"] * 5 + ["SKIP"], run.stdout
    assert "sig=" not in run.stdout + run.stderr and ACCOUNT_KEY not in run.stdout + run.stderr
