"""The package layout: no import cycles inside ptrack/ (imports inside functions count too), few
loose modules at the top, a package for each half of the program, and a docstring per package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ptrack"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return mods[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """Module -> the ptrack modules it imports anywhere in its body, with the packages Python
    runs on the way (a module's own enclosing packages excepted: they are already running)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if _is_package(name, mods) else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    up = up[: len(up) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in mods else base)
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if not target.startswith("ptrack"):
                continue
            mine = set(_ancestors(name))
            for t in [*_ancestors(target), target]:
                if t != name and t not in mine and t in mods:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_function_level_imports_are_edges():
    graph = import_graph()
    # ptrack.detect.detector imports the OpenVINO backend inside a function only
    assert "ptrack.detect.openvino_backend" in graph["ptrack.detect.detector"]
    assert "ptrack.detect.base" in graph["ptrack.detect.openvino_backend"]


def test_few_loose_modules_at_the_top():
    loose = sorted(p.name for p in PKG.glob("*.py"))
    assert len(loose) <= 10, loose


@pytest.mark.parametrize("package", ["detect", "persons", "formats", "store", "views", "cli", "batch"])
def test_packages_exist_and_say_what_they_hold(package):
    init = PKG / package / "__init__.py"
    assert init.is_file()
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc) > 60, f"ptrack/{package}/__init__.py needs a docstring saying what it holds"


def test_every_subpackage_has_an_init():
    for folder in PKG.rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), folder


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between ptrack's top-level packages and modules (``ptrack.persons`` ...)."""
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set[str]] = {top(m): set() for m in graph}
    for src, targets in graph.items():
        out[top(src)].update(top(t) for t in targets if top(t) != top(src))
    return out


def test_no_cycles_between_packages():
    cycle = find_cycle(package_graph(import_graph()))
    assert cycle is None, "packages import each other: " + " -> ".join(cycle)


def test_the_halves_keep_their_direction():
    packages = package_graph(import_graph())
    assert "ptrack.persons" not in packages["ptrack.detect"]
    assert "ptrack.cli" not in set().union(*(v for k, v in packages.items() if k not in ("ptrack.cli", "ptrack.__main__")))
