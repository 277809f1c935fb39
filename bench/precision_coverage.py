"""Persons coverage on TUD-Stadtmitte per detector precision (f32, bf16 where the CPU has it,
INT8): does INT8 keep the tracking result? (issue 13: INT8 within 1 point of f32.)

For each precision, a fresh project runs the CLI as a user does: ``ptrack detect
--precision P``, ``ptrack track``, ``ptrack group``, ``ptrack eval gt.txt --json``; the
persons' subject coverage, purity, HOTA and IDF1 are reported. The INT8 model comes from the
shared cache (``PTRACK_CACHE_DIR``; built on this video's frames by ``--precision int8`` when
absent) and its gate's figures are printed. In-sample: one sequence, no tuning here.

Run: ``python bench/precision_coverage.py [--precisions f32,int8]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Report, finish, run_child  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", default="", help="comma-separated subset of f32,bf16,int8 "
                    "(default: f32, bf16 where the CPU has it, int8)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("precision_coverage")
    report.details["load"] = common.load_note()
    video = common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4"
    gt = common.TUD_STADTMITTE / "gt.txt"
    missing = common.have(video, gt)
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    from ptrack.openvino_backend import cpu_capabilities

    precs = ["f32"] + (["bf16"] if "BF16" in cpu_capabilities() else []) + ["int8"]
    if args.precisions:
        precs = [p.strip() for p in args.precisions.split(",") if p.strip()]
    base = None
    for p in precs:
        project = common.fresh_project(f"coverage-{p}")
        pre = ["--project", str(project)]
        det = run_child(common.ptrack_cmd(*pre, "detect", str(video), "--model", common.MODEL,
                                          "--classes", common.CLASSES, "--precision", p))
        run_child(common.ptrack_cmd(*pre, "track"))
        run_child(common.ptrack_cmd(*pre, "group"))
        res = json.loads(run_child(common.ptrack_cmd(*pre, "eval", str(gt), "--json")).stdout)
        persons = res.get("persons", {})
        cov = float(persons.get("coverage", float("nan")))
        base = cov if base is None else base
        print(f"{p}: {det.stdout.strip()}\n{det.stderr.strip()}\n  persons {json.dumps(persons)}",
              flush=True)
        report.add(f"TUD-Stadtmitte persons coverage, {p}", cov, "%",
                   note=f"purity {float(persons.get('purity', float('nan'))):.1f}, HOTA "
                        f"{float(persons.get('HOTA', float('nan'))):.1f}, IDF1 "
                        f"{float(persons.get('IDF1', float('nan'))):.1f}; "
                        f"{cov - base:+.1f} points vs f32")
        if p != "f32":
            report.add(f"TUD-Stadtmitte coverage {p} - f32", cov - base, "points", -1.0, ">=")
        report.details[p] = {"persons": persons, "detect_stdout": det.stdout,
                             "detect_stderr": det.stderr}
    finish(report, t0)


if __name__ == "__main__":
    main()
