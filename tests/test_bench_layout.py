"""The layout of ``bench/``: scripts share code only through ``bench/common.py``.

Parses the scripts with ``ast`` (nothing under ``bench/`` is imported or run): an import of one
bench script by another, at the top or inside a function, ties two measurements together so
that changing one silently changes the other's numbers.
"""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
SHARED = "common"  # the one helper module every script may import


def scripts() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BENCH.glob("*.py"))}


def bench_imports(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path`` that names a module of ``bench/``: ``import X``
    / ``from X import`` (the scripts put ``bench/`` on ``sys.path``), ``bench.X`` and
    ``from bench import X``; at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "bench":
                modules = [f"bench.{a.name}" for a in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            name = parts[1] if parts[0] == "bench" and len(parts) > 1 else parts[0]
            if name in names:
                found.append((node.lineno, name))
    return sorted(found)


def test_bench_has_scripts_and_the_shared_module():
    assert SHARED in scripts()
    assert len(scripts()) > 5


def test_no_bench_script_imports_another_but_common():
    names = set(scripts())
    offenders = [f"bench/{path.name}:{line} imports {name}"
                 for stem, path in scripts().items()
                 for line, name in bench_imports(path, names)
                 if name != SHARED and name != stem]
    assert offenders == []


def test_common_imports_no_bench_script():
    names = set(scripts()) - {SHARED}
    assert bench_imports(BENCH / f"{SHARED}.py", names) == []


def test_the_check_sees_every_form_of_import(tmp_path):
    """The parser catches top-level, in-function, ``bench.X`` and ``from bench import X``."""
    src = tmp_path / "x.py"
    src.write_text("import a\nfrom b import f\n\ndef g():\n    import bench.c\n"
                   "    from bench import d, common\n    from bench.e import h\n"
                   "import numpy\nfrom ptrack.store import Store\n")
    found = bench_imports(src, {"a", "b", "c", "d", "e", "common"})
    assert found == [(1, "a"), (2, "b"), (5, "c"), (6, "common"), (6, "d"), (7, "e")]


def test_run_all_runs_scripts_that_exist():
    """``run_all.py``'s plan names only scripts present in ``bench/``."""
    tree = ast.parse((BENCH / "run_all.py").read_text())
    plan = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "SCRIPTS" for t in n.targets))
    names = [ast.literal_eval(e)[0] for e in plan.elts]
    assert names and set(names) <= set(scripts()) - {"run_all", SHARED}
