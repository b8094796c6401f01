"""The package's import structure: every module imports on its own, the network client does
not load the consensus layer or the Prometheus exporter, and module-level imports form no
circle (a circle makes import order matter and hides half-initialised modules)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "raftcache"
HEAVY = ("pysyncobj", "prometheus_client")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# `python -m raftcache`: importing it runs the CLI, which is its whole job
IMPORTABLE = sorted(name for name in MODULES if not name.endswith(".__main__"))


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new interpreter (nothing already imported by this test session)."""
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent)


def test_every_module_imports_alone() -> None:
    # `import raftcache.x` in a new interpreter first runs the package's __init__ (always the
    # same imports, in the same order), then x. So a child forked from one interpreter that
    # has run exactly that __init__ and nothing else of raftcache starts where a new
    # interpreter importing x would be at that point, without paying the interpreter's and the
    # package's start-up once per module. One child per module, two at a time (two cores).
    driver = (
        "import json, os, sys, traceback\n"
        "import raftcache\n"
        f"modules = {IMPORTABLE!r}\n"
        "def load(name):\n"
        "    r, w = os.pipe()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.close(r)\n"
        "        try:\n"
        "            exec(f'import {name}')\n"
        "        except BaseException:\n"
        "            os.write(w, traceback.format_exc().strip().splitlines()[-1].encode())\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    os.close(w)\n"
        "    return pid, name, r\n"
        "def reap(child):\n"
        "    pid, name, r = child\n"
        "    with os.fdopen(r, 'rb') as f:\n"
        "        err = f.read().decode(errors='replace')\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    return name, os.waitstatus_to_exitcode(status), err\n"
        "failed, running = {}, []\n"
        "for name in modules:\n"
        "    running.append(load(name))\n"
        "    if len(running) == 2:\n"
        "        n, rc, err = reap(running.pop(0))\n"
        "        if rc: failed[n] = [err] if err else [f'exit status {rc}']\n"
        "for child in running:\n"
        "    n, rc, err = reap(child)\n"
        "    if rc: failed[n] = [err] if err else [f'exit status {rc}']\n"
        "print(json.dumps(failed))\n"
    )
    result = _fresh(driver)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    # ...and the driver does catch a module that does not import alone
    broken = _fresh(driver.replace(f"modules = {IMPORTABLE!r}", "modules = ['raftcache.no_such_module', 'raftcache.resp']"))
    assert json.loads(broken.stdout) == {"raftcache.no_such_module": ["ModuleNotFoundError: No module named 'raftcache.no_such_module'"]}


@pytest.mark.parametrize(
    "statement",
    [
        "import raftcache.client",
        "from raftcache import Client, AsyncClient, RetryPolicy",
        "import raftcache; raftcache.NodeStatus",
        "import raftcache.status, raftcache.stats",
    ],
)
def test_the_client_side_does_not_load_consensus_or_the_exporter(statement: str) -> None:
    result = _fresh(f"import sys\n{statement}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"{statement} loaded {result.stdout.strip()}"


def test_cache_is_still_reachable_from_the_package() -> None:
    code = "import sys, raftcache\nassert 'pysyncobj' not in sys.modules\nprint(raftcache.Cache.__module__, raftcache.AsyncCache.__module__, 'pysyncobj' in sys.modules)"
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    # Even Cache defers pysyncobj until a node is built (consensus.default_factory).
    assert result.stdout.split() == ["raftcache.cache", "raftcache.cache", "False"]
    import raftcache

    assert set(raftcache.__all__) <= set(dir(raftcache))
    with pytest.raises(AttributeError):
        raftcache.NoSuchThing  # noqa: B018


# ------------------------------------------------------------------------ circles
def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, and inside module-level
    if/try/with blocks; not inside functions or classes' methods, nor under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _under_type_checking(node):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
        elif isinstance(node, (ast.With, ast.ClassDef)):
            pending += node.body
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """raftcache module -> the raftcache modules it imports at module level."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                origin = _resolve(name, is_package, node)
                # `from pkg import sub` imports the submodule; `from pkg import name` the package
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
            edges |= {t for t in targets if t in MODULES and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_only_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_and_absolute_imports() -> None:
    graph = import_graph()
    assert "raftcache.status" in graph["raftcache.replica"]  # from .status import NodeStatus
    assert "raftcache.commands" in graph["raftcache.client.core"]  # from .. import commands as c
    assert "raftcache.server" not in graph["raftcache.metrics"]  # only under TYPE_CHECKING


def test_no_import_circles() -> None:
    assert find_cycle(import_graph()) is None
