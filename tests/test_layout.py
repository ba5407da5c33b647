"""The package's shape: no import cycle, no module past ~400 lines, and the layers: the
store knows nothing of its callers, pure decisions no I/O library, config no client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.fast

PACKAGE = ROOT / "relay"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The relay modules ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the path that closes it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_in_the_package() -> None:
    """No module of relay/ imports, directly or not, one that imports it."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports(path, set(files)) - {name} for name, path in files.items()}
    assert len(graph) > 20
    assert cycles(graph) == []


def test_cycles_are_found() -> None:
    """The walk finds a cycle when there is one (so the test above can fail)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_past_the_size_of_one_concept() -> None:
    """Past ~400 lines a module is usually two concepts (STYLE.md)."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def _graph() -> tuple[dict[str, Path], dict[str, set[str]]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return files, {name: imports(path, set(files)) - {name} for name, path in files.items()}


def foreign(path: Path) -> set[str]:
    """The top-level packages outside relay/ that ``path`` imports, at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found - {"relay"}


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


#: Modules of decisions alone: no socket, no file, no database driver.
PURE = ("relay.products", "relay.routing", "relay.times", "relay.redact", "relay.drop_reasons",
        "relay.delivery.backoff", "relay.delivery.breaker", "relay.delivery.pacing",
        "relay.ingest.signature", "relay.ingest.identity", "relay.ingest.admission",
        "relay.messages.lifecycle", "relay.ops.shown", "relay.store.sql")
IO_LIBRARIES = {"aiohttp", "asyncpg", "sqlite3", "httptools", "socket"}


def test_the_store_imports_none_of_its_callers() -> None:
    """relay.store imports neither the web, the CLI nor the operator's layer."""
    _, graph = _graph()
    wrong = {name: sorted(t for t in targets if _under(t, "relay.web", "relay.cli", "relay.ops"))
             for name, targets in graph.items() if _under(name, "relay.store")}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_pure_modules_import_no_io_library() -> None:
    """The pure decisions import no aiohttp, asyncpg, sqlite3 or HTTP client."""
    files, _ = _graph()
    wrong = {name: sorted(foreign(files[name]) & IO_LIBRARIES) for name in PURE}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_config_imports_no_delivery_client_web_or_store() -> None:
    """Loading a config starts no client, no server and no store (relay check runs it)."""
    files, graph = _graph()
    banned = ("relay.delivery.client", "relay.delivery.worker", "relay.web", "relay.store",
              "relay.ops", "relay.cli")
    wrong = {name: sorted(t for t in targets if _under(t, *banned))
             for name, targets in graph.items() if _under(name, "relay.config")}
    assert {k: v for k, v in wrong.items() if v} == {}
    assert not any("aiohttp" in foreign(files[n]) for n in graph if _under(n, "relay.config"))
