"""Structure of the ``adabert`` package: no import cycles between its modules, no overlong functions."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "adabert"
MAX_FUNCTION_LINES = 100


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file below ``package`` (a package is its
    ``__init__.py``)."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every dotted name an import statement anywhere in ``tree`` (module level or inside a function) may
    load, with its line: ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (``b``
    may be a submodule); relative imports are resolved against ``module``'s package."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            names.append((source, node.lineno))
            names += [(f"{source}.{alias.name}", node.lineno) for alias in node.names]
    return names


def import_graph(package: Path) -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """Edges module -> imported module between the modules of ``package``, and the line of each edge.

    A submodule importing its own (grand)parent package is left out: the package's ``__init__`` is
    already running when the submodule loads, so that is not a cycle between files.
    """
    files = module_files(package)
    graph: dict[str, set[str]] = {m: set() for m in files}
    lines: dict[tuple[str, str], int] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, lineno in imported_names(tree, module, path.name == "__init__.py"):
            if name not in files or name == module or module.startswith(name + "."):
                continue
            graph[module].add(name)
            lines.setdefault((module, name), lineno)
    return graph, lines


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (sorted), each as a sorted list."""
    reach = {m: reachable(graph, m) for m in graph}
    components = {tuple(sorted(w for w in reach[m] if m in reach[w])) for m in graph}
    return sorted(list(c) for c in components if len(c) > 1)


def long_functions(package: Path, limit: int) -> list[str]:
    """``file:line qualified.name (N lines)`` of every function or method longer than ``limit`` lines."""
    found = []

    def visit(node: ast.AST, path: Path, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        found.append(f"{path.relative_to(package.parent)}:{child.lineno} {name} ({length} lines)")
                visit(child, path, name + ".")
            else:
                visit(child, path, prefix)

    for path in module_files(package).values():
        visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), path, "")
    return found


def _describe(cycle: list[str], lines: dict[tuple[str, str], int], files: dict[str, Path]) -> str:
    edges = [f"    {a} -> {b} ({files[a].relative_to(REPO)}:{lines[(a, b)]})"
             for a in cycle for b in cycle if (a, b) in lines]
    return " <-> ".join(cycle) + "\n" + "\n".join(edges)


def test_structure_helpers_on_a_small_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "from pkg import a\n",
        "a.py": "import pkg\nfrom . import b\n",
        "b.py": "def f():\n    from pkg.sub import c\n    return c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\nfrom ..sub import d\nfrom pkg import sub\n",
        "sub/d.py": "import os\n" + "def long():\n" + "    x = 1\n" * 3,
    }
    for name, text in sources.items():
        (pkg / name).write_text(text)
    graph, lines = import_graph(pkg)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub", "pkg.sub.c"}, "pkg.sub": set(),
                     "pkg.sub.c": {"pkg.a", "pkg.sub.d"}, "pkg.sub.d": set()}
    assert lines[("pkg.b", "pkg.sub.c")] == 2
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert long_functions(pkg, 3) == ["pkg/sub/d.py:2 long (4 lines)"]
    assert long_functions(pkg, 4) == []


def test_no_import_cycles_between_modules():
    graph, lines = import_graph(PACKAGE)
    files = module_files(PACKAGE)
    assert len(graph) > 20 and "adabert.nas.search" in graph
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in adabert:\n" + "\n".join(_describe(c, lines, files) for c in cycles)


def test_no_function_longer_than_the_limit():
    offenders = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not offenders, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)
