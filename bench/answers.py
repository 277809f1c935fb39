"""Answers: how long the everyday commands take on the 30-minute project of person_stages.py.

Each command runs as a user runs it (the ``ptrack`` console script in a subprocess, output
piped), once to warm the page cache, then ``--runs`` times; the median wall time is compared
with its bar:

    ptrack --help            < 0.3 s
    ptrack list persons      < 0.5 s
    ptrack show ID           < 1 s      (ID = the top-ranked person; piped, so stats only;
                                          also with --graphics blocks, which draws the crops)
    ptrack table --top 20    < 2 s      (writes the PNG selection table)
    ptrack select ID         < 1 s      (writes the npz)

A command the CLI does not have yet is reported as SKIP (rerun when it lands). The project is
built (and track/group/rank run) when missing: see person_stages.py.

Run: ``python bench/answers.py [--runs 5] [--no-crops]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Report, finish, median, ptrack_cmd, run_child  # noqa: E402


def ensure_project(frames: int, with_crops: bool) -> Path:
    """The person_stages project, with ranked persons."""
    from ptrack.store import Store

    root, _ = common.build_stages_project(frames, with_crops)
    with Store.open(root, create=False) as store:
        v = store.video()
        ranked = store.stage_state(v.id, "rank") == "done"
    if not ranked:
        print("running track, group, rank on the project first ...", flush=True)
        common.time_stages(root)
    return root


def has_command(*words: str) -> bool:
    child = run_child(ptrack_cmd(*words, "--help"), check=False)
    return child.rc == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=common.STAGES_FRAMES)
    ap.add_argument("--no-crops", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("answers")
    report.details["load"] = common.load_note()
    missing = common.have(common.STAGES_SOURCE / "gt.txt")
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    root = ensure_project(args.frames, not args.no_crops)
    from ptrack.store import Store

    with Store.open(root, create=False) as store:
        v = store.video()
        persons = store.persons(v.id)
    top = str(persons[0]["id"]) if persons else "1"
    report.details["project"] = str(root)
    report.details["persons"] = len(persons)
    report.details["top_person"] = top
    print(f"project {root}: {len(persons)} persons, top-ranked P{top}", flush=True)
    sel_out = common.WORK / "answers-selection.npz"
    proj = ["--project", str(root)]
    cases = [
        ("ptrack --help", ["--help"], 0.3, ()),
        ("ptrack list persons", [*proj, "list", "persons"], 0.5, ("list", "persons")),
        (f"ptrack show ID", [*proj, "show", top], 1.0, ("show",)),
        (f"ptrack show ID --graphics blocks", [*proj, "show", top, "--graphics", "blocks"], 1.0,
         ("show",)),
        ("ptrack table --top 20", [*proj, "table", "--top", "20"], 2.0, ("table",)),
        (f"ptrack select ID", [*proj, "select", top, "--out", str(sel_out)], 1.0, ("select",)),
    ]
    for name, argv, bar, words in cases:
        if words and not has_command(*proj, *words):
            report.add(name, None, "s", bar, "<", note="command not in the CLI yet")
            print(f"  {name}: SKIP (command not in the CLI yet)", flush=True)
            continue
        warm = run_child(ptrack_cmd(*argv), check=False)
        if warm.rc != 0:
            line = (warm.stderr.strip().splitlines() or ["?"])[-1][:120]
            report.add(name, None, "s", bar, "<", error=f"exit {warm.rc}: {line}")
            print(f"  {name}: ERROR exit {warm.rc}: {line}", flush=True)
            continue
        walls = [run_child(ptrack_cmd(*argv)).wall for _ in range(args.runs)]
        report.add(name, median(walls), "s", bar, "<",
                   note=f"median of {len(walls)}: " + ", ".join(f"{w:.2f}" for w in walls))
        print(f"  {name}: {median(walls):.3f} s (" + ", ".join(f"{w:.2f}" for w in walls) + ")",
              flush=True)
    finish(report, t0)


if __name__ == "__main__":
    main()
