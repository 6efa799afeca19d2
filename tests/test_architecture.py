"""The package's shape, as the README's Architecture section draws it: layers in folders, imports only
pointing down, no import cycles, small modules and functions, and every third-party import declared.

These read the source with `ast`, so they check every import, including those inside functions and
under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mcp_server"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("http", "stdio"),
    ("tools",),
    ("service",),
    ("inputs",),
    ("images",),
    ("foundry",),
    ("config", "config_source"),
    ("errors", "protocol", "__init__"),
)
"""Top to bottom: a module may import from its own layer's unit or from any layer below it."""

EMULATOR_MAY_IMPORT = {"protocol", "emulator"}
"""The emulator stands beside the stack: it shares only the wire models, and only cli starts it."""
EMULATOR_IMPORTERS = {"cli", "emulator"}

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The first component below `mcp_server`: a layer folder or a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rank(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"mcp_server.{unit} belongs to no layer; add it to LAYERS and the README's Architecture")


@cache
def imports_of(path: Path) -> tuple[str, ...]:
    """Every module `path` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")]
            found.extend(submodules)  # `from mcp_server.x import y` may name the submodule y ...
            if len(submodules) < len(node.names):
                found.append(base)  # ... or something defined in mcp_server.x itself
    return tuple(found)


def _is_module(name: str) -> bool:
    if not name.startswith("mcp_server."):
        return False
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def internal_edges() -> Iterator[tuple[str, str]]:
    for path in modules():
        source = module_name(path)
        for target in imports_of(path):
            if target != source and (target == "mcp_server" or _is_module(target)):
                yield source, target


def test_imports_only_point_down() -> None:
    wrong = []
    for source, target in internal_edges():
        if target == "mcp_server":
            continue  # the package root carries only __version__
        src, dst = unit_of(source), unit_of(target)
        if src == "emulator" or dst == "emulator":
            if (src == "emulator" and dst not in EMULATOR_MAY_IMPORT) or (
                dst == "emulator" and src not in EMULATOR_IMPORTERS
            ):
                wrong.append(f"{source} -> {target}")
            continue
        if rank(dst) < rank(src):
            wrong.append(f"{source} -> {target} (imports upward)")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in internal_edges():
        graph.setdefault(source, set()).add(target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_every_folder_is_a_documented_layer() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    architecture = re.search(r"^## Architecture\n(.*?)(?=^## )", readme, flags=re.MULTILINE | re.DOTALL)
    assert architecture is not None, "README has no '## Architecture' section"
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    for folder in folders:
        if folder != "emulator":
            rank(folder)
        assert f"`{folder}/`" in architecture.group(1), f"README's Architecture does not describe {folder}/"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has {len(text.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


# ---------------------------------------------------------------- declared dependencies


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    """The dependencies, and those of the optional extras that add a feature (not the `test` extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [req for name, reqs in project["optional-dependencies"].items() if name != "test" for req in reqs]
    return {_normalise(_requirement_name(requirement)) for requirement in [*project["dependencies"], *extras]}


@cache
def installed_packages() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@cache
def distribution_of(module: str) -> str | None:
    """The installed distribution that provides `module` (None for the standard library)."""
    top = module.split(".")[0]
    if top in __import__("sys").stdlib_module_names:
        return None
    candidates = installed_packages().get(top)
    assert candidates, f"no installed distribution provides {module!r}"
    if len(candidates) == 1:
        return candidates[0]
    # A namespace package (azure.*): the distribution whose files hold the submodule.
    prefix = "/".join(module.split(".")[:2]) + "/"
    owners = [
        name
        for name in candidates
        if any(str(file).startswith(prefix) for file in importlib.metadata.distribution(name).files or ())
    ]
    assert len(owners) == 1, f"cannot tell which of {candidates} provides {module!r}"
    return owners[0]


def test_every_third_party_import_is_declared() -> None:
    declared = declared_distributions()
    missing: dict[str, set[str]] = {}
    for path in modules():
        for module in imports_of(path):
            if not module or module.split(".")[0] == "mcp_server":
                continue
            distribution = distribution_of(module)
            if distribution is not None and _normalise(distribution) not in declared:
                missing.setdefault(distribution, set()).add(str(path.relative_to(ROOT)))
    assert missing == {}, "imported but not declared in pyproject's [project].dependencies (or a feature extra)"


def test_the_declaration_check_can_fail() -> None:
    """The checker itself sees an undeclared import: one of the test extra's packages."""
    assert _normalise(distribution_of("hypothesis.strategies") or "") == "hypothesis"
    assert "hypothesis" not in declared_distributions()
    assert distribution_of("json") is None
    assert _normalise(distribution_of("azure.core.credentials") or "") == "azure-core"
