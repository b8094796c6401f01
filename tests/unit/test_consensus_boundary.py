"""The consensus boundary holds: exactly one module of raftcache imports pysyncobj, and no
other module names anything private of pysyncobj's (name-mangled ``_SyncObj__...`` state, or
the underscore methods and fields of its classes)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pysyncobj

PACKAGE = Path(__file__).resolve().parents[2] / "raftcache"
BACKEND = PACKAGE / "consensus" / "pysyncobj_backend.py"


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports_pysyncobj(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "pysyncobj" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "pysyncobj":
            return True
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == "pysyncobj" for a in node.args):
            return True  # importlib.import_module("pysyncobj"), __import__("pysyncobj")
    return False


def pysyncobj_private_names() -> tuple[set[str], set[str]]:
    """(its class names, the underscore attributes its classes define or set that are
    camelCase or mangled, i.e. cannot be mistaken for raftcache's own snake_case names)."""
    classes: set[str] = set()
    private: set[str] = set()
    for path in Path(pysyncobj.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.add(node.name.lstrip("_"))
                for item in ast.walk(node):
                    name = None
                    if isinstance(item, ast.FunctionDef):
                        name = item.name
                    elif isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store):
                        name = item.attr
                    if name and name.startswith("_") and not name.startswith("__") and re.search(r"[A-Z]", name):
                        private.add(name)
    return classes, private


def test_exactly_one_module_imports_pysyncobj():
    importers = [p.relative_to(PACKAGE).as_posix() for p in modules() if imports_pysyncobj(ast.parse(p.read_text()))]
    assert importers == ["consensus/pysyncobj_backend.py"]


def test_no_other_module_names_a_pysyncobj_private():
    classes, private = pysyncobj_private_names()
    assert {"SyncObj", "TcpConnection", "TCPTransport"} <= classes and "_getLeader" in private  # the scan sees them
    mangled = re.compile(r"\b_(?:%s)__\w+" % "|".join(sorted(map(re.escape, classes))))
    offenders = []
    for path in modules():
        if path == BACKEND:
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {m}" for m in mangled.findall(text)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert offenders == []


def test_the_backend_is_where_the_private_names_are():
    # the scan above would pass vacuously if it could not see them: it must find them here
    classes, private = pysyncobj_private_names()
    text = BACKEND.read_text()
    assert "_SyncObj__raftNextIndex" in text and "_getLeader" in text


def test_importing_the_boundary_or_the_replica_does_not_load_pysyncobj():
    code = "import sys, raftcache.consensus, raftcache.consensus.memory, raftcache.replica; print('pysyncobj' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
