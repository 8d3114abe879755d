"""The layout ARCHITECTURE.md describes, checked: one-way flow, no import cycles, small modules.

Imports are read from the source (every import, also inside functions), so a lazy import
that closes a cycle counts; only imports under `if TYPE_CHECKING:` are left out, since they
never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("loadkit", "mocks")
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name imported at run time (absolute, relative resolved)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join([*parts[:keep], *([base] if base else [])])
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)
        stack.extend(ast.iter_child_nodes(node))


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for imported in _imports(tree, name, path.name == "__init__.py"):
            # `from loadkit.x import y` names module loadkit.x.y when y is one, else loadkit.x
            while imported and imported not in mods:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_parent_package(a: str, b: str) -> bool:
    """A package's __init__ re-exporting its own modules is not a cycle of the design."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package importing its own submodules (re-exports) and the submodule importing a
    # sibling through the package would both show as cycles of two; drop the package edge
    pruned = {m: {t for t in ts if not _is_parent_package(m, t)} for m, ts in graph.items()}
    assert _cycles(pruned) == []


ORCHESTRATION = ("loadkit.orchestration",)


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("loadkit.traffic", ("loadkit.analysis", "loadkit.report", *ORCHESTRATION)),
        ("loadkit.chaos", ("loadkit.traffic", "loadkit.analysis", "loadkit.report")),
        ("loadkit.analysis", ("loadkit.report", "loadkit.traffic", *ORCHESTRATION)),
        ("loadkit.report", ("loadkit.traffic", *ORCHESTRATION)),
        ("loadkit.results", ("loadkit.traffic", "loadkit.analysis", "loadkit.report")),
        # the API registry is a pure leaf: traffic, chaos, mocks, the start-up check and
        # calibration read it, so it imports none of them and no network stack
        (
            "loadkit.apis",
            (
                "loadkit.traffic",
                "loadkit.chaos",
                "loadkit.analysis",
                "loadkit.report",
                "loadkit.serving",
                "mocks",
                *ORCHESTRATION,
            ),
        ),
        (
            "loadkit.serving",
            ("loadkit.traffic", "loadkit.analysis", "loadkit.report", *ORCHESTRATION),
        ),
        ("mocks", ("loadkit.traffic", "loadkit.analysis", "loadkit.report", *ORCHESTRATION)),
    ],
)
def test_data_flows_one_way(room: str, forbidden: tuple[str, ...]) -> None:
    """scenario -> traffic -> records -> analysis -> report: no room reaches back, and only
    the orchestrators (`loadkit.orchestration`) sit above them all."""
    bad = {
        (m, t)
        for m, ts in _graph().items()
        if m == room or m.startswith(room + ".")
        for t in ts
        if any(t == f or t.startswith(f + ".") or t.startswith(f + "_") for f in forbidden)
    }
    assert not bad, sorted(bad)


def test_apis_are_pure() -> None:
    """The provider-API registry runs in Locust's gevent world and in the aiohttp servers
    alike: it imports neither."""
    tree_imports = {
        (m, t)
        for m, path in _modules().items()
        if m == "loadkit.apis" or m.startswith("loadkit.apis.")
        for t in _imports(ast.parse(path.read_text(encoding="utf-8")), m, False)
        if t.split(".")[0] in {"gevent", "aiohttp", "locust", "requests", "urllib3"}
    }
    assert not tree_imports, sorted(tree_imports)


# loadkit/'s top level: its rooms, the CLI and a few leaves every room may read
TOP_LEVEL = {
    "__init__.py",
    "cli.py",
    "errors.py",  # the one user-error type
    "fmt.py",  # how a millisecond figure reads
    "tokens.py",  # the one token estimate
    "cost.py",  # the price of one request
}


def test_top_level_shows_the_rooms() -> None:
    root = REPO / "loadkit"
    modules = {p.name for p in root.glob("*.py")}
    assert modules == TOP_LEVEL, f"new top-level modules belong in a room: {modules - TOP_LEVEL}"


def test_no_module_over_the_limit() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in _modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_the_checker_sees_a_cycle_and_a_lazy_import() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import loadkit.hidden\n"
        "def f():\n    from . import sibling\n"
    )
    seen = set(_imports(tree, "loadkit.room.mod", False))
    assert seen >= {"loadkit.room", "loadkit.room.sibling"}
    assert "loadkit.hidden" not in seen
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_with_a_real_server_is_in_its_xdist_group() -> None:
    """A module that starts llama-server or LiteLLM outside its group would start a second
    server in the other worker (and measure beside it)."""
    from tests.conftest import XDIST_GROUPS

    tests = REPO / "tests"
    for group, marker in (("llama", "llama_server"), ("litellm", "litellm_gateway")):
        users = {
            str(p.relative_to(tests))
            for tier in ("integration", "e2e")
            for p in (tests / tier).glob("test_*.py")
            if marker in p.read_text(encoding="utf-8")
        }
        assert users <= set(XDIST_GROUPS[group]), sorted(users - set(XDIST_GROUPS[group]))
