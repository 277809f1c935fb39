"""INT8 for the OpenVINO backend: NNCF post-training quantization and its accuracy gate.

Calibrated on frames spread across the user's own video (no dataset download); the gate runs
the f32 and the INT8 model on other frames of that video, held aside from calibration, and
compares their boxes. The INT8 IR and the gate's figures (``gate.json``) are cached beside
the f32 export, keyed by model hash, input shape, precision and :class:`Recipe` (with
:data:`RECIPE_VERSION`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ptrack.errors import PtrackError
from ptrack.detect.letterbox import letterbox
from ptrack.detect.openvino_backend import (box_iou, compile_ir, export_dir, postprocess, publish,
                                     staging_dir)

GATE_CONF = 0.25  # boxes compared at this confidence (the tracker's first-stage boxes)
RECIPE_VERSION = 2  # bump when the quantization code changes what a recipe builds


@dataclass(frozen=True)
class Recipe:
    """How the INT8 model is built; part of its cache key (a changed recipe builds anew).

    ``keep_float`` says which layers of Ultralytics' Detect head stay in float:

    * ``"decode"``: only the decoding after the convolutions (DFL, sigmoid, anchors);
    * ``"box"``: also the box-regression branch (``cv2``) at every scale, so box coordinates
      come out of float convolutions (the class branch ``cv3`` runs in INT8);
    * ``"head"``: the whole head (``cv2`` and ``cv3``).

    ``float_modules`` adds other modules kept in float by Ultralytics index (``"model.0"`` =
    the first convolution); ``preset`` is NNCF's (``mixed``: asymmetric activations;
    ``performance``: symmetric); ``fast_bias_correction`` False runs NNCF's full bias
    correction (slower to build).
    """

    keep_float: str = "box"
    float_modules: tuple[str, ...] = ()
    preset: str = "mixed"
    fast_bias_correction: bool = True

    def key(self) -> str:
        """Short hash of the recipe and :data:`RECIPE_VERSION` (the INT8 folder's suffix)."""
        text = json.dumps({"version": RECIPE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def describe(self) -> dict:
        return {"version": RECIPE_VERSION, **asdict(self), "float_modules": list(self.float_modules)}


KEEP_FLOAT = ("decode", "box", "head")
# What ptrack ships (bench/int8_recipes.py): the whole head in float and NNCF's full bias
# correction agree best with f32 (IoU 0.9 0.969, confidence shift 0.0038 on TUD-Stadtmitte's
# held-aside frames; the recipes with the head's convolutions in INT8 shift confidences 2-3x
# more). Persons coverage with today's person stages: +0.6 / +4.4 points on TUD-Stadtmitte /
# TUD-Campus (the test model), +0.2 / -1.5 (COCO YOLOv8n). Bare inference 1.55x f32 on an AVX2
# CPU without VNNI (the box branch alone in float: ~1.8x).
RECIPE = Recipe(keep_float="head", fast_bias_correction=False)


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


def float_names(model, recipe: Recipe | None = None) -> list[str]:
    """Friendly names of the ops of an exported YOLOv8 OpenVINO model kept in float.

    The Detect head is found from the one Sigmoid (``__module.model.22/...``: its prefix is
    the head's module). Its convolutions are named by module (``__module.model.22.cv2.0.0.conv
    /aten::_convolution/Convolution``); the activations are not (Ultralytics shares one SiLU
    module, so every Swish carries a borrowed name), hence convolutions are chosen by name and
    type, never activations by name.
    """
    recipe = recipe or RECIPE
    if recipe.keep_float not in KEEP_FLOAT:
        raise PtrackError(f"unknown INT8 recipe keep_float '{recipe.keep_float}' (use "
                          f"{', '.join(KEEP_FLOAT)})")
    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        return []
    head = sigmoids[-1].split("/", 1)[0]  # e.g. "__module.model.22": the Detect head
    root = head.rsplit(".", 1)[0]  # "__module.model"
    branches = {"decode": (f"{head}.dfl",), "box": (f"{head}.dfl", f"{head}.cv2."),
                "head": (f"{head}.dfl", f"{head}.cv2.", f"{head}.cv3.")}[recipe.keep_float]
    modules = tuple(f"{root}.{m.split('model.', 1)[-1]}{end}" for m in recipe.float_modules
                    for end in (".", "/"))
    names = []
    for op in ops:
        name, kind = op.get_friendly_name(), op.get_type_name()
        if kind in ("Sigmoid", "Softmax") or name.startswith(f"{head}/"):
            names.append(name)
        elif kind == "Convolution" and name.startswith(branches + modules):
            names.append(name)
    return names


def ignored_scope(model, recipe: Recipe | None = None):
    """NNCF ignored scope for a YOLOv8 OpenVINO model: the layers kept in float."""
    import nncf

    names = float_names(model, recipe)
    return nncf.IgnoredScope(names=names, validate=False) if names else None


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


def int8_dir(f32_dir: Path, recipe: Recipe | None = None) -> Path:
    """Where the INT8 IR built from ``f32_dir`` with ``recipe`` lives (beside it, keyed by
    the recipe, so a model built by another recipe or an older ptrack is never reused)."""
    return f32_dir.parent / f"{f32_dir.name}-int8-{(recipe or RECIPE).key()}"


def quantize_int8(f32_dir: Path, video: Path, frame_count: int, shape: tuple[int, int], *,
                  calib_frames: int = 300, gate_frames: int = 60, recipe: Recipe | None = None,
                  log=None) -> Path:
    """Build (once) the INT8 IR beside ``f32_dir`` from frames of ``video``; its folder.

    The folder holds ``model.xml``/``.bin`` and ``gate.json`` (the gate's figures, the frames
    used, the recipe and NNCF's version).
    """
    import time

    recipe = recipe or RECIPE
    target = int8_dir(f32_dir, recipe)
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
    preset = {"mixed": nncf.QuantizationPreset.MIXED,
              "performance": nncf.QuantizationPreset.PERFORMANCE}[recipe.preset]
    quantized = nncf.quantize(model, dataset, preset=preset, subset_size=len(calib),
                              fast_bias_correction=recipe.fast_bias_correction,
                              ignored_scope=ignored_scope(model, recipe))
    seconds = time.perf_counter() - t0
    staged = staging_dir(f32_dir.parent)
    try:
        ov.save_model(quantized, str(staged / "model.xml"), compress_to_fp16=False)
        figures = gate_figures(f32_dir / "model.xml", staged / "model.xml", held, shape)
        meta = {"figures": figures, "video": str(video), "calibration_frames": calib_idx,
                "gate_frames": gate_idx, "recipe": recipe.describe(),
                "nncf": nncf.__version__, "seconds": round(seconds, 1)}
        (staged / "gate.json").write_text(json.dumps(meta, indent=1))
        return publish(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def load_gate(int8_dir: Path) -> dict:
    """The gate record written by :func:`quantize_int8`."""
    return json.loads((int8_dir / "gate.json").read_text())


__all__ = ["RECIPE", "Recipe", "compare", "gate_verdict", "int8_dir", "quantize_int8",
           "split_frames", "load_gate", "export_dir"]
