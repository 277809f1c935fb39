"""What ``--precision auto`` chooses on this machine, and the speeds it chose from (issue 24).

Builds the f32 export and the INT8 model (the shipped recipe, calibrated and gated on the
video) of a model once, then times f32, bf16 (where the CPU has it) and INT8 on the video's
first frames exactly as ``auto`` does (``ptrack.detect.speed.time_candidates``: one batch of 8
frames per call, interleaved rounds, best round), prints frames/s and ratios, and loads the
detector with ``--precision auto`` to show which precision it runs and its note. Ratios are
the thing to compare; the CPU model and the load average are printed beside them.

Run: ``python bench/precision_auto.py [--video ../shared/data/mot15/TUD-Stadtmitte/TUD-Stadtmitte.mp4]
[--model pkg:fall_detection/models/best.pt] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path,
                    default=REPO.parent / "shared/data/mot15/TUD-Stadtmitte/TUD-Stadtmitte.mp4")
    ap.add_argument("--model", default="pkg:fall_detection/models/best.pt")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=None,
                    help="model cache (default: a fresh temporary folder)")
    args = ap.parse_args()
    os.environ["PTRACK_CACHE_DIR"] = str(args.cache or tempfile.mkdtemp(prefix="ptrack-bench-"))

    from ptrack.detect import openvino_backend as ob
    from ptrack.detect import quantize, speed
    from ptrack.detect.detector import (file_hash, find_model, input_shape, load_detector,
                                        quiet_ultralytics)
    from ptrack.detect.video import first_frames, probe
    from ptrack.settings import load_defaults

    quiet_ultralytics()
    info = probe(args.video)
    model = find_model(args.model)
    shape = input_shape(640, info.width, info.height)
    caps = ob.cpu_capabilities()
    print(f"CPU {speed.cpu_name()}; OpenVINO capabilities {', '.join(caps)}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    f32_dir = ob.export_ir(model, file_hash(model), shape, log=print)
    int8_dir = quantize.int8_dir(f32_dir)
    if not (int8_dir / "gate.json").exists():
        quantize.quantize_int8(f32_dir, args.video, info.frame_count, shape, log=print)
    gate = quantize.load_gate(int8_dir)["figures"]
    ok, fails = quantize.gate_verdict(gate, load_defaults()["detect"])
    print(f"INT8 gate: {'passed' if ok else 'failed: ' + fails}")
    frames = first_frames(args.video, speed.FRAMES)
    cfg = dict(load_defaults()["detect"], model=str(model), classes="all", backend="openvino")
    dets = {}
    for p in ["f32"] + (["bf16"] if "BF16" in caps else []) + ["int8"]:
        dets[p] = load_detector(dict(cfg, precision=p), width=info.width, height=info.height,
                                project=REPO, video=args.video, frame_count=info.frame_count)
    rates = speed.time_candidates({p: (lambda d=d: d(frames)) for p, d in dets.items()},
                                  rounds=args.rounds)
    fps = {p: r * len(frames) for p, r in rates.items()}
    print(f"frames/s (batches of {len(frames)}, best of {args.rounds} interleaved rounds): "
          + speed.speeds_text(fps))
    for p in fps:
        print(f"  {p} / f32 = {fps[p] / fps['f32']:.2f}x")
    auto = load_detector(cfg, width=info.width, height=info.height, project=REPO,
                         video=args.video, frame_count=info.frame_count, log=print)
    print(f"auto runs {auto.precision}: {auto.precision_note}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
