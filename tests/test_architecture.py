"""The shape of the ``autograder`` package: no import cycle, no module over 400 lines, no function over 60 lines.

The import graph is read from the source (``ast``), not from a running interpreter: an edge is an ``import`` or
``from ... import`` outside any function (module level, class bodies, ``if``/``try`` blocks, ``if TYPE_CHECKING:``
included: a module that names another's types depends on it), resolved to the ``autograder`` module it loads.
Imports inside functions run later, when called, and are left out. Importing ``a.b.c`` also runs the package
``a.b``'s ``__init__``: that is no edge, so a package may re-export its modules' names. The standalone files of ``autograder/grading/sandbox/`` (``kernel_boot.py``,
``kernel_forks.py``, ``joining.py``, ``peer.py`` and the siblings they load by path) import only the standard
library and each other by path, so they appear in the graph without edges; they are still imported alone like
every other module, since importing them does nothing but define names.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "autograder"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED = {("autograder/grading/sandbox/audit_hook.py", "_decisions")}
"""(file, function) pairs allowed over ``MAX_FUNCTION_LINES``: the audit hook's decisions are one generator on
purpose, their state in its local variables, which the student's kernel can read from its frames but not change;
a helper function would be one more thing to keep the kernel from changing."""


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` by dotted name (``a/b/__init__.py`` is ``a.b``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _outside_functions(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree`` outside any function body."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``node``, in ``module``, loads by name."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known}
    if target in known and len(found) < len(node.names):
        found.add(target)
    return found


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """For each module of ``package``, the modules of ``package`` that importing it imports directly."""
    files = module_files(root, package)
    known = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set().union(*(_imported(node, module, is_package, known) for node in _outside_functions(tree))) - {module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules, as the path ``[a, b, ..., a]``; empty when acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(min(group), group, graph) for group in groups]


def _cycle_through(start: str, group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from ``start`` back to itself inside ``group``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & group):
                if successor == start:
                    return paths[node] + [start]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but on no cycle")


@dataclass(frozen=True)
class Oversized:
    """A module or function over its bar."""

    where: str
    lines: int

    def __str__(self) -> str:
        return f"{self.where}: {self.lines} lines"


def long_modules(root: Path, package: str = PACKAGE, limit: int = MAX_MODULE_LINES) -> list[Oversized]:
    """The modules of ``package`` with more than ``limit`` lines."""
    found = []
    for path in module_files(root, package).values():
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found.append(Oversized(path.relative_to(root).as_posix(), lines))
    return found


def long_functions(root: Path, package: str = PACKAGE, limit: int = MAX_FUNCTION_LINES,
                   allowed: set[tuple[str, str]] = LONG_FUNCTIONS_ALLOWED) -> list[Oversized]:
    """The functions and methods of ``package`` (nested ones included) longer than ``limit`` lines, from ``def`` to
    their last line, except the ``(file, name)`` pairs of ``allowed``."""
    found = []
    for path in module_files(root, package).values():
        relative = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (relative, node.name) not in allowed:
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(Oversized(f"{relative}:{node.lineno} {node.name}", lines))
    return found


IMPORT_EACH_ALONE = """
import importlib, json, sys, traceback
names, package = json.loads(sys.argv[1]), sys.argv[2]
failures = {}
for name in names:
    for loaded in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-4)
print(json.dumps(failures))
"""
"""Imports each module named in ``argv[1]`` with no module of the package ``argv[2]`` loaded before it (nor any
whose name starts like it, such as the standalone files loaded by path; third-party modules stay loaded, so the
run takes seconds); prints ``{module: traceback}`` of those that failed."""


def import_failures(root: Path, package: str = PACKAGE) -> dict[str, str]:
    """Each module of ``package`` that fails to import when it is the first of the package imported: its traceback."""
    modules = sorted(module_files(root, package))
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, json.dumps(modules), package], capture_output=True,
                          text=True, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# The package itself.


def test_no_import_cycle_among_the_packages_modules():
    cycles = import_cycles(import_graph(REPO_ROOT))
    assert not cycles, "import cycles (module-level imports):\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    failures = import_failures(REPO_ROOT)
    assert not failures, "modules that fail to import first:\n" + "\n".join(f"{name}:\n{error}" for name, error in failures.items())


def test_no_module_over_400_lines():
    oversized = long_modules(REPO_ROOT)
    assert not oversized, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(map(str, oversized))


def test_no_function_over_60_lines():
    oversized = long_functions(REPO_ROOT)
    assert not oversized, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(map(str, oversized))


# The walkers, on a small package made for each test.


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_resolves_absolute_relative_and_from_package_imports(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\nfrom pkg.sub import c\nfrom . import b\nimport os\n",
        "pkg/b.py": "from .sub.c import thing\nfrom pkg import a as again\n",
        "pkg/sub/__init__.py": "from .c import thing\n",
        "pkg/sub/c.py": "from .. import b\nthing = 1\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b", "pkg.sub.c"}, "pkg.b": {"pkg.sub.c", "pkg.a"},
                     "pkg.sub": {"pkg.sub.c"}, "pkg.sub.c": {"pkg.b"}}


def test_imports_in_functions_are_no_edges_and_type_checking_imports_are(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def later():\n    from pkg import b\nclass K:\n    def method(self):\n        import pkg.c\n",
        "pkg/b.py": "try:\n    from pkg import a\nexcept ImportError:\n    a = None\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import Thing\nclass K:\n    import pkg.b as inner\n",
        "pkg/d.py": "import pkg.c\nclass Thing: ...\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": set(), "pkg.a": set(), "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.d", "pkg.b"}, "pkg.d": {"pkg.c"}}
    assert import_cycles(graph) == [["pkg.c", "pkg.d", "pkg.c"]]


def test_a_cycle_is_reported_with_its_path(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from pkg.c import x\n",
        "pkg/c.py": "import pkg.a\nx = 1\n",
        "pkg/d.py": "from pkg import e\n",
        "pkg/e.py": "from . import d\n",
        "pkg/f.py": "import pkg.a\n",
    })
    assert import_cycles(import_graph(root, "pkg")) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, ``def`` included."""
    return f"{indent}def {name}():\n" + "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))


def test_a_module_that_fails_when_imported_first_is_reported(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import B\nA = 1\n",
        "pkg/b.py": "from pkg.a import A\nB = 2\n",
        "pkg/fine.py": "import json\n",
    })
    failures = import_failures(root, "pkg")
    assert sorted(failures) == ["pkg.a", "pkg.b"]
    assert "partially initialized module" in failures["pkg.a"], failures["pkg.a"]


def test_long_modules_and_functions_are_found_except_the_allowed_one(tmp_path):
    method = "class K:\n" + _function("method", 62, "    ").replace("    x0 = 0\n", "    x0 = 0\n" + _function("inner", 61, "        "), 1)
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/short.py": _function("exactly_the_limit", 60),
        "pkg/long.py": _function("too_long", 61) + method + _function("allowed", 300) + "# filler\n" * 20,
    })
    found = long_functions(root, "pkg", allowed={("pkg/long.py", "allowed")})
    assert sorted((item.where.split(" ")[1], item.lines) for item in found) == [("inner", 61), ("method", 123), ("too_long", 61)]
    lines = len((root / "pkg/long.py").read_text().splitlines())
    assert lines > 400 and [str(item) for item in long_modules(root, "pkg")] == [f"pkg/long.py: {lines} lines"]
