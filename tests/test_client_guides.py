"""The client guides (README's "Client configuration" and docs/clients.md) say only what is true.

Every JSON block parses; every server entry names only declared variables and only flags the real CLI parser
accepts; the stdio emulator entry, the HTTP entry and the MCP Python SDK example are run against the real server.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import anyio
import pytest
from helpers import HttpServer, text_of
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import BlobResourceContents, ImageContent, ResourceLink

from mcp_server.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "clients.md"
DOCS = (README, GUIDE)
PACKAGE = "foundry-image-mcp"
SCRIPT = Path(sys.executable).parent / ("foundry-image-mcp.exe" if os.name == "nt" else "foundry-image-mcp")
INPUT_REFERENCE = re.compile(r"\$\{input:([^}]+)\}")
SNIPPET_MARKER = "# test: mcp-client"
TOOLS = {"generate_image", "edit_image"}


@dataclass
class Entry:
    """One server entry of a client configuration, wherever it was written (JSON or Python)."""

    where: str
    command: str | None = None
    args: list[str] = field(default_factory=list[str])
    env: dict[str, str] = field(default_factory=dict[str, str])
    raw: dict[str, Any] = field(default_factory=dict[str, Any])


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def declared_variables() -> set[str]:
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return {variable["name"] for package in server["packages"] for variable in package["environmentVariables"]}


def json_configs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in DOCS:
        for number, block in enumerate(fenced_blocks(doc.read_text(encoding="utf-8"), "json"), start=1):
            yield f"{doc.relative_to(ROOT)} json block {number}", json.loads(block)


def json_entries() -> list[Entry]:
    entries = []
    for where, config in json_configs():
        for key in ("servers", "mcpServers"):
            for name, entry in config.get(key, {}).items():
                entries.append(
                    Entry(
                        f"{where} ({key}.{name})",
                        entry.get("command"),
                        list(entry.get("args", [])),
                        dict(entry.get("env", {})),
                        entry,
                    )
                )
    return entries


def python_blocks() -> list[tuple[str, str]]:
    return [
        (f"{doc.relative_to(ROOT)} python block {number}", block)
        for doc in DOCS
        for number, block in enumerate(fenced_blocks(doc.read_text(encoding="utf-8"), "python"), start=1)
    ]


def literal(node: ast.expr | None, where: str) -> Any:
    """A literal from a snippet; env values may be expressions (os.environ[...]), so those become '<expr>'."""
    if node is None:
        return None
    if isinstance(node, ast.Dict):
        keys = [ast.literal_eval(key) if key is not None else None for key in node.keys]
        assert all(isinstance(key, str) for key in keys), f"{where}: env keys must be string literals"
        values = [value.value if isinstance(value, ast.Constant) else "<expr>" for value in node.values]
        return dict(zip(keys, values, strict=True))
    return ast.literal_eval(node)


def python_entries() -> list[Entry]:
    """Server entries in the Python snippets: StdioServerParameters(...), MCPStdioTool(...), params={...}."""
    entries = []
    for where, block in python_blocks():
        tree = ast.parse(block, filename=where)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in ("StdioServerParameters", "MCPStdioTool"):
                    keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                    entries.append(
                        Entry(
                            f"{where} ({name}, line {node.lineno})",
                            literal(keywords.get("command"), where),
                            literal(keywords.get("args"), where) or [],
                            literal(keywords.get("env"), where) or {},
                        )
                    )
            elif isinstance(node, ast.Dict):
                keys = [key.value if isinstance(key, ast.Constant) else None for key in node.keys]
                if "command" in keys and "args" in keys:
                    values = dict(zip(keys, node.values, strict=True))
                    entries.append(
                        Entry(
                            f"{where} (params dict, line {node.lineno})",
                            literal(values["command"], where),
                            literal(values["args"], where),
                            literal(values.get("env"), where) or {},
                        )
                    )
    return entries


def server_argv(entry: Entry) -> list[str]:
    """The arguments the foundry-image-mcp script receives, from `uvx foundry-image-mcp ...` or the script itself."""
    assert entry.command, f"{entry.where}: a stdio entry needs a command"
    name = PureWindowsPath(entry.command).name if "\\" in entry.command else PurePosixPath(entry.command).name
    if name in ("uvx", "uvx.exe"):
        assert entry.args[:1] == [PACKAGE], f"{entry.where}: uvx needs the package name first, got {entry.args}"
        return entry.args[1:]
    assert name in (PACKAGE, f"{PACKAGE}.exe"), f"{entry.where}: unexpected command {entry.command!r}"
    return entry.args


def parse_cli(argv: list[str], where: str) -> Any:
    """Parse exactly as `foundry-image-mcp` does: main() inserts "serve" when no command is given."""
    argv = list(argv)
    if not argv or (argv[0] not in cli.COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            return cli._parser().parse_args(argv)
    except SystemExit as exit:
        if exit.code != 0:
            pytest.fail(f"{where}: the CLI refuses {argv}: {errors.getvalue().strip()}")
    return None


def shell_commands(text: str) -> Iterator[tuple[str, list[str]]]:
    """`foundry-image-mcp ...` and `uvx foundry-image-mcp ...` commands in the ```sh blocks, as argument lists."""
    for block in fenced_blocks(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                if words[-1:] == ["&"]:
                    words.pop()  # run in the background
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words.pop(0)  # VAR=value prefixes
                if words[:1] == ["uvx"]:
                    words.pop(0)
                if words[:1] == [PACKAGE]:
                    yield command.strip(), words[1:]


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)}


# --- static checks -----------------------------------------------------------------------------------------------


def test_every_json_block_parses_and_is_a_client_configuration() -> None:
    configs = list(json_configs())
    assert len(configs) >= 8, [where for where, _ in configs]
    for where, config in configs:
        assert config.get("servers") or config.get("mcpServers"), f"{where}: no servers"


def test_the_guide_covers_every_client_with_entra_api_key_and_emulator_variants() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for heading in ("VS Code", "Claude Desktop", "Cursor", "Python: MCP SDK client"):
        section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", guide, flags=re.MULTILINE | re.DOTALL)
        assert section is not None, heading
        text = section.group(1)
        assert "az login" in text, heading
        assert "AZURE_AI_API_KEY" in text, heading
        assert '"--emulator"' in text, heading
    for heading in ("Python: Microsoft Agent Framework", "Python: OpenAI Agents SDK"):
        section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", guide, flags=re.MULTILINE | re.DOTALL)
        assert section is not None and "AZURE_AI_API_KEY" in section.group(1) and "--emulator" in section.group(1)
    for fact in ("FOUNDRY_IMAGE_MCP_OUTPUT_DIR", "resources/read", "foundry-image://images/", "%APPDATA%"):
        assert fact in guide, fact


def test_every_server_entry_names_only_declared_variables() -> None:
    declared = declared_variables()
    entries = json_entries() + python_entries()
    assert len(entries) >= 12
    for entry in entries:
        unknown = set(entry.env) - declared
        assert not unknown, f"{entry.where}: {sorted(unknown)} not declared in server.json"


def test_every_stdio_args_list_parses_with_the_real_cli() -> None:
    stdio = [entry for entry in json_entries() + python_entries() if entry.raw.get("type") != "http"]
    assert any("--emulator" in entry.args for entry in stdio)
    for entry in stdio:
        assert entry.raw.get("type") in (None, "stdio"), entry.where
        args = parse_cli(server_argv(entry), entry.where)
        assert args is not None and args.command == "serve", entry.where


def test_the_argument_check_catches_a_wrong_flag() -> None:
    with pytest.raises(pytest.fail.Exception, match="--emulater"):
        parse_cli(server_argv(Entry("bad", "uvx", [PACKAGE, "--emulater"])), "bad")
    with pytest.raises(AssertionError):
        server_argv(Entry("no package name", "uvx", ["--emulator"]))


def test_every_shell_command_in_the_docs_parses_with_the_real_cli() -> None:
    commands = [
        (f"{doc.relative_to(ROOT)}: {command}", argv)
        for doc in DOCS
        for command, argv in shell_commands(doc.read_text(encoding="utf-8"))
    ]
    assert any("--transport" in argv for _, argv in commands), commands
    for where, argv in commands:
        parse_cli(argv, where)


def test_secrets_come_from_password_inputs_and_http_entries_use_a_bearer_header() -> None:
    for where, config in json_configs():
        inputs = {item["id"]: item for item in config.get("inputs", [])}
        text = json.dumps(config)
        for reference in INPUT_REFERENCE.findall(text):
            assert reference in inputs, f"{where}: ${{input:{reference}}} has no input"
            assert inputs[reference].get("password") is True, f"{where}: input {reference} is not a password"
        for name, entry in config.get("servers", {}).items():
            assert entry["type"] in ("stdio", "http"), f"{where}: {name}"
            if entry["type"] == "http":
                assert re.fullmatch(r"https?://[^/]+/mcp", entry["url"]), entry["url"]
                assert re.fullmatch(r"Bearer \$\{input:[^}]+\}", entry["headers"]["Authorization"]), where
        for name, entry in config.get("mcpServers", {}).items():
            assert "type" not in entry and "command" in entry, f"{where}: {name}"


def test_the_python_snippets_are_valid_python() -> None:
    blocks = python_blocks()
    assert sum(SNIPPET_MARKER in block for _, block in blocks) == 1
    for where, block in blocks:
        compile(block, where, "exec")


def test_readme_section_links_the_guide_and_the_guide_links_resolve() -> None:
    readme = README.read_text(encoding="utf-8")
    section = re.search(r"^## Client configuration\n(.*?)(?=^## |\Z)", readme, flags=re.MULTILINE | re.DOTALL)
    assert section is not None and "(docs/clients.md)" in section.group(1)
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path_part, _, anchor = target.partition("#")
            path = (doc.parent / path_part).resolve() if path_part else doc
            assert path.is_file(), f"{doc.name}: link to missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path), f"{doc.name}: link to missing anchor {target}"


# --- the guides, run -----------------------------------------------------------------------------------------------


def emulator_entries() -> list[Entry]:
    entries = [entry for entry in json_entries() if "--emulator" in entry.args]
    assert entries
    return entries


@pytest.mark.anyio
async def test_the_stdio_emulator_configuration_runs_as_given(tmp_path: Path) -> None:
    assert SCRIPT.is_file(), f"no console script at {SCRIPT}; install the project (pip install -e '.[test]')"
    configurations = {tuple(server_argv(entry)): entry for entry in emulator_entries()}
    for argv, entry in configurations.items():
        out = tmp_path / "out"
        params = StdioServerParameters(
            command=str(SCRIPT),
            args=list(argv),
            env={**entry.env, "HOME": str(tmp_path), "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(out)},
        )
        with anyio.fail_after(60):
            async with Client(params) as client:
                tools = await client.list_tools()
                result = await client.call_tool("generate_image", {"prompt": "a guide's kite", "quality": "low"})
                meta = result.structured_content
                assert meta is not None and not result.is_error, text_of(result)
                read = await client.read_resource(meta["uri"])
        assert {tool.name for tool in tools.tools} >= TOOLS, entry.where
        assert [type(block) for block in result.content if not hasattr(block, "text")] == [ImageContent, ResourceLink]
        (link,) = [block for block in result.content if isinstance(block, ResourceLink)]
        assert str(link.uri) == meta["uri"] and meta["uri"].startswith("foundry-image://images/")
        (content,) = read.contents
        assert isinstance(content, BlobResourceContents)
        path = Path(meta["path"])
        assert path.parent == out and base64.b64decode(content.blob) == path.read_bytes()


@pytest.mark.anyio
async def test_the_vs_code_http_configuration_connects_with_its_bearer_header(tmp_path: Path) -> None:
    (entry,) = [entry for entry in json_entries() if entry.raw.get("type") == "http"]
    token = "guide-token-0123456789abcdef"
    server = HttpServer(
        "https://unused.invalid/api/projects/unused",
        tmp_path,
        extra_env={"FOUNDRY_IMAGE_MCP_AUTH_TOKENS": f"me:{token}", "HOME": str(tmp_path)},
        args=["--emulator", "--log-level", "INFO"],
    )
    try:
        base = server.wait_ready()
        url = re.sub(r"^https?://[^/]+", base, entry.raw["url"])
        headers = {name: INPUT_REFERENCE.sub(token, value) for name, value in entry.raw["headers"].items()}
        with anyio.fail_after(60):
            async with (
                create_mcp_http_client(headers=headers) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                tools = await client.list_tools()
    finally:
        server.stop()
    assert {tool.name for tool in tools.tools} >= TOOLS


def test_the_mcp_sdk_example_runs_as_written(tmp_path: Path) -> None:
    """The example runs unchanged; `uvx` on PATH is a shim that runs this checkout's script as uvx would."""
    assert SCRIPT.is_file(), f"no console script at {SCRIPT}"
    (snippet,) = [block for _, block in python_blocks() if SNIPPET_MARKER in block]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "uvx"
    shim.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = {PACKAGE} ] || {{ echo "uvx shim: expected {PACKAGE} first, got: $*" >&2; exit 64; }}\n'
        "shift\n"
        f'exec {shlex.quote(str(SCRIPT))} "$@"\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    script = tmp_path / "example.py"
    script.write_text(snippet, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={
            "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(home),
            "FOUNDRY_IMAGE_MCP_OUTPUT_DIR": str(tmp_path / "out"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["tools"] == "edit_image, generate_image", done.stdout
    saved, edited = Path(lines["saved"]), Path(lines["edited"])
    uri, size, unit = lines["read back"].split()
    assert uri.startswith("foundry-image://images/") and unit == "bytes"
    assert int(size) == saved.stat().st_size
    assert saved.is_file() and edited.is_file() and saved != edited
    # The SDK hands the server only HOME, PATH and a few others, so images land in the per-user data directory.
    assert saved.is_relative_to(tmp_path) and edited.parent == saved.parent
    assert "Traceback" not in done.stderr
