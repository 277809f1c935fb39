"""Run every benchmark and print one summary table: each number next to its bar, PASS/FAIL.

    python bench/run_all.py               # everything (about 16 minutes on 2 cores)
    python bench/run_all.py --no-levers   # only the numbers that have bars
    python bench/run_all.py --summary     # reprint the table from bench/out/results/*.json

Each script runs in its own process, in this order (later ones reuse what earlier ones built):
detect_speed.py, int8_recipes.py (the shipped recipe only: its gate's figures and persons
coverage INT8 - f32, bf16 - f32 where the CPU has bf16; no speed rounds, no noise reruns),
crop_store.py, person_stages.py (with crops; then --no-crops, the import-like project),
answers.py, levers.py. The table is also written as Markdown to bench/out/summary.md. Exit
status 0 whatever the verdicts (a benchmark is a measurement, not a test); 1 only when a
script itself crashed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import RESULTS, Metric, fmt_bar, fmt_value, machine_summary, print_table  # noqa: E402

SCRIPTS = [("detect_speed", []),
           ("int8_recipes", ["--recipes", "head-fullbc", "--no-speed", "--no-noise"]),
           ("crop_store", []), ("person_stages", []),
           ("person_stages", ["--no-crops"]), ("answers", []), ("levers", [])]


def load_results(names: list[str] | None = None) -> list[dict]:
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if names is None or data["script"] in names:
            out.append(data)
    def rank(script: str) -> int:
        return next((i for i, (name, _) in enumerate(SCRIPTS) if script.startswith(name)), 99)

    return sorted(out, key=lambda d: (rank(d["script"]), d["script"]))


def metrics_of(data: dict) -> list[Metric]:
    fields = {"name", "value", "unit", "bar", "op", "note", "error"}
    return [Metric(**{k: v for k, v in m.items() if k in fields}) for m in data["metrics"]]


def summary(results: list[dict]) -> tuple[str, int, int]:
    """Print the tables; return the Markdown text, passes and fails."""
    barred, info = [], []
    for data in results:
        for m in metrics_of(data):
            (barred if m.bar is not None else info).append((data["script"], m))
    m = machine_summary()
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['isa']}; "
          f"Python {m['python']}")
    print_table([x for _, x in barred], "SUMMARY: numbers with bars")
    if info:
        print_table([x for _, x in info], "measured for information (levers, components)")
    passes = sum(x.verdict == "PASS" for _, x in barred)
    fails = sum(x.verdict in ("FAIL", "ERROR") for _, x in barred)
    skips = sum(x.verdict == "SKIP" for _, x in barred)
    print(f"\n{passes} PASS, {fails} FAIL/ERROR, {skips} SKIP")
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM ({m['isa']}), "
             f"Python {m['python']}.", "", "| benchmark | measured | bar | verdict |", "|---|---|---|---|"]
    for script, x in barred:
        lines.append(f"| {x.name} | {fmt_value(x.value, x.unit)} | {fmt_bar(x)} | {x.verdict} |")
    lines += ["", "| measured for information | value | note |", "|---|---|---|"]
    for script, x in info:
        lines.append(f"| {x.name} | {fmt_value(x.value, x.unit)} | {x.error or x.note} |")
    return "\n".join(lines) + "\n", passes, fails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-levers", action="store_true")
    ap.add_argument("--summary", action="store_true", help="only reprint the last results")
    args = ap.parse_args()
    crashed = []
    if not args.summary:
        t0 = time.perf_counter()
        print(f"load before the run: {common.load_note()}", flush=True)
        plan = [(n, e) for n, e in SCRIPTS if not (n == "levers" and args.no_levers)]
        for name in {n for n, _ in plan}:  # stale results of what runs now would mislead
            for old in RESULTS.glob(f"{name}*.json"):
                old.unlink()
        for name, extra in plan:
            print(f"\n######## {name} {' '.join(extra)}", flush=True)
            rc = subprocess.call([sys.executable, str(Path(__file__).with_name(f"{name}.py")), *extra],
                                 env=common.child_env())
            if rc != 0:
                crashed.append(f"{name} (exit {rc})")
        print(f"\nall benchmarks: {time.perf_counter() - t0:.0f} s", flush=True)
    text, _, _ = summary(load_results())
    common.OUT.mkdir(parents=True, exist_ok=True)
    (common.OUT / "summary.md").write_text(text)
    print(f"Markdown: {(common.OUT / 'summary.md').relative_to(common.REPO)}")
    if crashed:
        print("crashed: " + ", ".join(crashed))
        sys.exit(1)


if __name__ == "__main__":
    main()
