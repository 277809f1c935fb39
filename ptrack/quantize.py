"""INT8 for the OpenVINO backend: NNCF post-training quantization and its accuracy gate.

Calibrated on frames spread across the user's own video (no dataset download); the gate runs
the f32 and the INT8 model on other frames of that video, held aside from calibration, and
compares their boxes. The INT8 IR and the gate's figures (``gate.json``) are cached beside
the f32 export, keyed by model hash, input shape and precision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ptrack.errors import PtrackError
from ptrack.openvino_backend import (box_iou, compile_ir, export_dir, letterbox, postprocess,
                                     publish, staging_dir)

GATE_CONF = 0.25  # boxes compared at this confidence (the tracker's first-stage boxes)
# Which float layers stay in float: "head" keeps Ultralytics' whole Detect head (box and
# class convolutions, DFL, sigmoid, decoding) in float; "post" only the decoding after them.
IGNORE = "head"


def split_frames(frame_count: int, calib: int, gate: int) -> tuple[list[int], list[int]]:
    """Frame indices for calibration and for the gate: both spread over the whole video, never
    the same frame (the gate's frames lie half-way between calibration frames)."""
    if frame_count <= 0:
        return [], []
    n = min(frame_count, calib + gate)
    picks = np.unique(np.linspace(0, frame_count - 1, n).round().astype(int))
    n_gate = max(1, min(gate, len(picks) // 4)) if len(picks) > 1 else 0
    gate_pos = set(np.unique(np.linspace(0, len(picks) - 1, n_gate + 2)[1:-1].round().astype(int)).tolist())
    gate_idx = [int(picks[i]) for i in sorted(gate_pos)]
    calib_idx = [int(f) for i, f in enumerate(picks) if i not in gate_pos]
    return calib_idx, gate_idx


def read_frames(video: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The BGR frames at ``indices`` (sorted), decoded in one sequential pass."""
    import cv2

    want = sorted(set(indices))
    out: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise PtrackError(f"cannot read {video} for INT8 calibration")
        index, pos = 0, 0
        while pos < len(want):
            if want[pos] - index > 300:  # far ahead: seek instead of decoding everything
                cap.set(cv2.CAP_PROP_POS_FRAMES, want[pos])
                index = want[pos]
            if not cap.grab():
                break
            if index == want[pos]:
                ok, image = cap.retrieve()
                if ok:
                    out[index] = image
                pos += 1
            index += 1
    finally:
        cap.release()
    return out


def network_input(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """What the exported IR takes: float32 NCHW RGB in [0, 1], letterboxed."""
    return np.ascontiguousarray(letterbox(image, shape)[..., ::-1].transpose(0, 3, 1, 2),
                                dtype=np.float32) / 255.0


def ignored_scope(model, mode: str = IGNORE):
    """NNCF ignored scope for a YOLOv8 OpenVINO model: the layers kept in float."""
    import nncf

    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if mode == "none" or not sigmoids:
        return None
    if mode == "post":
        return nncf.IgnoredScope(types=["Sigmoid", "Multiply", "Subtract", "Add", "Concat",
                                        "Softmax"], validate=False)
    head = sigmoids[-1].split("/", 1)[0]  # e.g. "__module.model.22": the Detect head
    names = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"
             or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))]
    return nncf.IgnoredScope(names=names, validate=False)


def match_boxes(a: np.ndarray, b: np.ndarray, thr: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy one-to-one matching by IoU (best pair first); (index in a, index in b, IoU)."""
    if not len(a) or not len(b):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    iou = box_iou(a, b)
    ia, ib, vals = [], [], []
    order = np.argsort(-iou, axis=None)
    used_a, used_b = set(), set()
    for flat in order:
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < thr:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        ia.append(i)
        ib.append(j)
        vals.append(iou[i, j])
    return np.asarray(ia, int), np.asarray(ib, int), np.asarray(vals)


def compare(reference: list, candidate: list, thr: float = 0.5) -> dict:
    """Agreement of ``candidate`` boxes with ``reference`` over frames (each a (xyxy, conf, cls))."""
    n_ref = n_cand = matched = 0
    ious, shifts = [], []
    for (ra, rc, _), (ca, cc, _) in zip(reference, candidate):
        ia, ib, v = match_boxes(ra, ca, thr)
        n_ref += len(ra)
        n_cand += len(ca)
        matched += len(ia)
        ious.extend(v.tolist())
        shifts.extend((cc[ib] - rc[ia]).tolist())
    return {"boxes_ref": n_ref, "boxes": n_cand,
            "recall": matched / n_ref if n_ref else 1.0,
            "precision": matched / n_cand if n_cand else 1.0,
            "median_iou": float(np.median(ious)) if ious else 1.0,
            "iou_0.9": float(np.mean(np.asarray(ious) >= 0.9)) * matched / max(n_ref, 1) if ious else 1.0,
            "conf_shift": float(np.median(np.abs(shifts))) if shifts else 0.0,
            "conf_bias": float(np.mean(shifts)) if shifts else 0.0}


def gate_verdict(figures: dict, thresholds: dict) -> tuple[bool, str]:
    """Pass or fail, and why, for the gate's figures against the config's thresholds."""
    fails = []
    agree = min(figures["recall"], figures["precision"])
    if agree < thresholds["int8_min_agree"]:
        fails.append(f"agreement {agree:.3f} < {thresholds['int8_min_agree']}")
    tight = figures.get("iou_0.9", 0.0)
    if tight < thresholds["int8_min_tight"]:
        fails.append(f"boxes matched at IoU 0.9 {tight:.3f} < {thresholds['int8_min_tight']}")
    if figures["median_iou"] < thresholds["int8_min_median_iou"]:
        fails.append(f"median IoU {figures['median_iou']:.3f} < {thresholds['int8_min_median_iou']}")
    if figures["conf_shift"] > thresholds["int8_max_conf_shift"]:
        fails.append(f"confidence shift {figures['conf_shift']:.3f} > {thresholds['int8_max_conf_shift']}")
    if figures["boxes_ref"] == 0:
        fails.append("no boxes in the held-aside frames to compare")
    return not fails, "; ".join(fails)


def gate_figures(f32_xml: Path, int8_xml: Path, frames: list[np.ndarray], shape: tuple[int, int],
                 precision_ref: str = "f32") -> dict:
    """INT8 boxes against the f32 model's on ``frames`` (all classes, conf >= GATE_CONF)."""
    results = {}
    for name, xml in (("ref", f32_xml), ("int8", int8_xml)):
        compiled, _ = compile_ir(xml, hint="latency", precision=precision_ref)
        results[name] = [postprocess(compiled(letterbox(f, shape))[0][0], f.shape[:2], shape,
                                     conf=GATE_CONF, iou=0.7, classes=None, max_det=300)
                         for f in frames]
    out = compare(results["ref"], results["int8"])
    out["frames"] = len(frames)
    return out


def quantize_int8(f32_dir: Path, video: Path, frame_count: int, shape: tuple[int, int], *,
                  calib_frames: int = 300, gate_frames: int = 60, mode: str = IGNORE,
                  log=None) -> Path:
    """Build (once) the INT8 IR beside ``f32_dir`` from frames of ``video``; its folder.

    The folder holds ``model.xml``/``.bin`` and ``gate.json`` (the gate's figures, the frames
    used, the NNCF settings).
    """
    import time

    digest_shape = f32_dir.name  # "<digest16>-<h>x<w>"
    target = f32_dir.parent / f"{digest_shape}-int8"
    if (target / "model.xml").exists() and (target / "gate.json").exists():
        return target
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise PtrackError("INT8 needs the nncf package (pip install nncf)") from None
    calib_idx, gate_idx = split_frames(frame_count, calib_frames, gate_frames)
    frames = read_frames(video, calib_idx + gate_idx)
    calib = [frames[i] for i in calib_idx if i in frames]
    held = [frames[i] for i in gate_idx if i in frames]
    if len(calib) < 8 or not held:
        raise PtrackError(f"{video.name} has too few readable frames ({len(frames)}) to calibrate INT8")
    if log:
        log(f"quantizing the model to INT8 (once per model and input shape): {len(calib)} "
            f"calibration frames of {video.name}, {len(held)} held aside for the accuracy gate")
    t0 = time.perf_counter()
    model = ov.Core().read_model(str(f32_dir / "model.xml"))
    dataset = nncf.Dataset(calib, lambda image: network_input(image, shape))
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(calib), ignored_scope=ignored_scope(model, mode))
    seconds = time.perf_counter() - t0
    staged = staging_dir(f32_dir.parent)
    try:
        ov.save_model(quantized, str(staged / "model.xml"), compress_to_fp16=False)
        figures = gate_figures(f32_dir / "model.xml", staged / "model.xml", held, shape)
        meta = {"figures": figures, "video": str(video), "calibration_frames": calib_idx,
                "gate_frames": gate_idx, "nncf": {"version": nncf.__version__, "preset": "mixed",
                                                  "ignored": mode}, "seconds": round(seconds, 1)}
        (staged / "gate.json").write_text(json.dumps(meta, indent=1))
        return publish(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def load_gate(int8_dir: Path) -> dict:
    """The gate record written by :func:`quantize_int8`."""
    return json.loads((int8_dir / "gate.json").read_text())


__all__ = ["compare", "gate_verdict", "quantize_int8", "split_frames", "load_gate", "export_dir"]
