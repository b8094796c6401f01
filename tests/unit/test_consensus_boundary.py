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


def private_mentions(path: Path, classes: set[str], private: set[str]) -> list[str]:
    """Every mangled pysyncobj name in `path`'s text, and every attribute access of one of
    pysyncobj's underscore names."""
    mangled = re.compile(r"\b_(?:{})__\w+".format("|".join(sorted(map(re.escape, classes)))))
    text = path.read_text()
    found = [f"{path.name}: {m}" for m in mangled.findall(text)]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    return found


def test_no_other_module_names_a_pysyncobj_private():
    classes, private = pysyncobj_private_names()
    assert {"SyncObj", "TcpConnection", "TCPTransport"} <= classes and "_getLeader" in private  # the scan sees them
    offenders = [m for path in modules() if path != BACKEND for m in private_mentions(path, classes, private)]
    assert offenders == []


def test_the_scan_finds_the_private_names_where_they_are():
    # the scan above would pass vacuously if it could not see them: in the backend it must
    found = private_mentions(BACKEND, *pysyncobj_private_names())
    assert any("_SyncObj__raftNextIndex" in m for m in found) and any("._getLeader" in m for m in found)


def test_importing_the_boundary_or_the_replica_does_not_load_pysyncobj():
    code = "import sys, raftcache.consensus, raftcache.consensus.memory, raftcache.replica; print('pysyncobj' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_both_implementations_offer_every_member_of_the_protocol():
    from raftcache.consensus import Consensus, RaftSettings
    from raftcache.consensus.memory import MemoryConsensus
    from raftcache.consensus.pysyncobj_backend import PysyncobjNode

    members = {name for name in vars(Consensus) if not name.startswith("_")} | set(Consensus.__annotations__)
    assert {"propose", "status", "add_member", "remove_member", "transfer_leadership", "force_snapshot", "settings"} <= members

    class Hooks:
        def apply(self, payload): ...
        def snapshot(self, path, meta): ...
        def restore(self, path): ...

    fake = MemoryConsensus(RaftSettings(address="127.0.0.1:7101", peers=()), Hooks())
    assert [m for m in sorted(members) if not hasattr(fake, m)] == []
    assert [m for m in sorted(members - {"settings"}) if not hasattr(PysyncobjNode, m)] == []
