"""Tests of the package's layout: no import circle among ntm's modules, and the public module names kept.

The import graph is read from the source (`ast`), not by importing: every `import ntm...` and
`from ntm... import ...` of every module under src/ntm, at module level or inside a function (a lazy
import only hides a circle until the day both ends load in another order). `from P import name` is an
edge to the module P.name where that is a module, else to P.
"""

import ast
import importlib
from pathlib import Path

import ntm

SOURCE = Path(ntm.__file__).resolve().parent


def module_files(root: Path) -> dict[str, Path]:
    """Every module under `root` (a package directory), by dotted name; a package is its __init__.py."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(root: Path) -> dict[str, set[str]]:
    """For each module under `root`, the modules of the same package that it imports."""
    modules = module_files(root)
    top = root.name

    def known(name: str) -> str | None:  # the module that `name` (a module or a name in one) lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                imported.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                                for alias in node.names)
        graph[name] = {known(other) for other in imported if other.split(".")[0] == top} - {None, name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm, without recursion)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return found


def test_no_module_of_ntm_takes_part_in_an_import_circle():
    graph = import_graph(SOURCE)
    assert len(graph) > 50
    assert "ntm.commands.train_flags" in graph["ntm.commands.cli"]  # the graph sees module-level imports
    assert "ntm.commands.sweep.command" in graph["ntm.commands.cli"]  # and those inside functions
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(
        " <-> ".join(part) + " (" + ", ".join(f"{a} -> {b}" for a in part for b in sorted(graph[a] & set(part))) + ")"
        for part in found)


def test_the_circle_finder_finds_circles(tmp_path):
    """A package whose modules import each other through a function-level import, a `from` import of a
    module, and a relative import: the finder reports that circle and leaves the bystander out."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")
    (package / "c.py").write_text("from .a import name\nimport os\n")
    (package / "bystander.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (package / "c.py").write_text("import os\n")
    assert circles(import_graph(package)) == []


def test_the_public_modules_keep_their_names_after_the_move_into_ntm_turing():
    """`ntm.addressing`, `ntm.memory` and `ntm.controllers` (public before the NTM's modules moved into
    `ntm.turing`) still import, by either spelling, as the very same modules."""
    from ntm.addressing import content_weights
    from ntm.memory import read

    for name in ("addressing", "memory", "controllers"):
        moved = importlib.import_module(f"ntm.turing.{name}")
        assert importlib.import_module(f"ntm.{name}") is moved and getattr(ntm, name) is moved
    assert content_weights is ntm.turing.addressing.content_weights and read is ntm.turing.memory.read
    assert ntm.NTM is ntm.turing.NTM and ntm.NTMConfig is ntm.turing.config.NTMConfig
