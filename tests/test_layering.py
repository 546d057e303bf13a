"""SQL lives in argtree/store/: no other module builds queries (imports sqlalchemy beyond its exception types),
and the loop talks to its store only through the object it is handed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Modules outside argtree/store that still build queries, and why (issue 14: left for their owners).
LEFT: dict[str, str] = {}


def _sqlalchemy_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
    return names


def test_queries_are_built_only_in_the_store():
    offenders = {}
    for path in sorted([*ROOT.glob("argtree/**/*.py"), *ROOT.glob("oracle_ui/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("argtree/store/") or rel.startswith("argtree/migrations/"):
            continue
        query = [m for m in _sqlalchemy_imports(path) if m != "sqlalchemy.exc"]  # catching its errors is fine
        if query:
            offenders[rel] = query
    assert set(offenders) <= set(LEFT), {k: v for k, v in offenders.items() if k not in LEFT}


def test_the_loop_imports_nothing_from_the_store():
    tree = ast.parse((ROOT / "argtree" / "loop.py").read_text(encoding="utf-8"))
    store = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
             and (n.module == "store" or n.module.startswith("store.") or "argtree.store" in n.module)]
    assert store == [] and not _sqlalchemy_imports(ROOT / "argtree" / "loop.py")


def test_one_home_directory_function():
    """Only argtree.home reads ARGTREE_HOME; everything else asks argtree_home()."""
    readers = []
    for path in sorted([*ROOT.glob("argtree/**/*.py"), *ROOT.glob("oracle_ui/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "ARGTREE_HOME":
                readers.append(rel)
    assert sorted(set(readers)) == ["argtree/home.py"], readers


def test_commands_build_backends_through_open_backend():
    """One resolver: no command calls make_backend or a backend class itself (llm.open_backend does)."""
    direct = []
    for path in sorted(ROOT.glob("argtree/commands/*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in ("make_backend", "LocalBackend", "OpenAIBackend", "load_local_model", "resolve_version"):
                    direct.append(f"{path.name}:{node.lineno} {name}")
    assert direct == []
