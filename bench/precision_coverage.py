"""Persons coverage on TUD-Stadtmitte and TUD-Campus per detector precision (f32, bf16 where
the CPU has it, INT8): does INT8 keep the tracking result? (issue 13: INT8 within 1 point.)

For each precision and sequence, a fresh project runs the CLI as a user does: ``ptrack detect
--precision P``, ``ptrack track``, ``ptrack group``, ``ptrack eval gt.txt --json``; the
persons' subject coverage, purity, HOTA and IDF1 are reported. The INT8 model comes from the
shared cache (``PTRACK_CACHE_DIR``); when absent, ``--precision int8`` builds it on
TUD-Stadtmitte's frames (the first sequence), and TUD-Campus (same 640x480 input) reuses it, as
a user's second video would: TUD-Stadtmitte is in-sample for INT8's calibration, TUD-Campus is
not. f32 runs twice, to show the run-to-run noise (none is expected: OpenVINO f32 is
deterministic). No tuning here; bench/int8_recipes.py compares quantization recipes.

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

SEQUENCES = ("TUD-Stadtmitte", "TUD-Campus")


def run_sequence(label: str, precision: str, sequence: str):
    """detect (at ``precision``), track, group, eval in a fresh project; (persons, tracklets,
    detect child)."""
    seq = common.MOT15 / sequence
    project = common.fresh_project(f"coverage-{label}-{sequence}")
    pre = ["--project", str(project)]
    det = run_child(common.ptrack_cmd(*pre, "detect", str(seq / f"{sequence}.mp4"), "--model",
                                      common.MODEL, "--classes", common.CLASSES,
                                      "--precision", precision))
    run_child(common.ptrack_cmd(*pre, "track"))
    run_child(common.ptrack_cmd(*pre, "group"))
    res = json.loads(run_child(common.ptrack_cmd(*pre, "eval", str(seq / "gt.txt"), "--json")).stdout)
    return res.get("persons", {}), res.get("tracklets", {}), det


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", default="", help="comma-separated subset of f32,bf16,int8 "
                    "(default: f32, bf16 where the CPU has it, int8)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("precision_coverage")
    report.details["load"] = common.load_note()
    missing = common.have(*(common.MOT15 / s / f for s in SEQUENCES for f in (f"{s}.mp4", "gt.txt")))
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    from ptrack.detect.openvino_backend import cpu_capabilities

    precs = ["f32"] + (["bf16"] if "BF16" in cpu_capabilities() else []) + ["int8"]
    if args.precisions:
        precs = [p.strip() for p in args.precisions.split(",") if p.strip()]
    runs = [(p, p) for p in precs]
    if "f32" in precs:
        runs.insert(precs.index("f32") + 1, ("f32 again", "f32"))
    base: dict[str, float] = {}
    for label, p in runs:
        for seq in SEQUENCES:
            persons, tracklets, det = run_sequence(label.replace(" ", "-"), p, seq)
            cov = float(persons.get("coverage", float("nan")))
            base.setdefault(seq, cov)
            print(f"{label} {seq}: {det.stdout.strip()}\n{det.stderr.strip()}\n  persons "
                  f"{json.dumps({k: v for k, v in persons.items() if k != 'per_subject'})}", flush=True)
            report.add(f"{seq} persons coverage, {label}", cov, "%",
                       note=f"purity {float(persons.get('purity', float('nan'))):.1f}, HOTA "
                            f"{float(persons.get('HOTA', float('nan'))):.1f}, IDF1 "
                            f"{float(persons.get('IDF1', float('nan'))):.1f}; "
                            f"{cov - base[seq]:+.1f} points vs f32")
            # the tracklets (before group joins them): less sensitive to one link flipping
            report.add(f"{seq} tracklets MOTA, {label}", float(tracklets.get("MOTA", float("nan"))), "%",
                       note=f"coverage {float(tracklets.get('coverage', float('nan'))):.1f}, purity "
                            f"{float(tracklets.get('purity', float('nan'))):.1f}, IDF1 "
                            f"{float(tracklets.get('IDF1', float('nan'))):.1f}")
            if p != "f32":
                report.add(f"{seq} coverage {label} - f32", cov - base[seq], "points", -1.0, ">=")
            report.details[f"{label} {seq}"] = {"persons": persons, "tracklets": tracklets,
                                                "detect_stdout": det.stdout,
                                                "detect_stderr": det.stderr}
    finish(report, t0)


if __name__ == "__main__":
    main()
