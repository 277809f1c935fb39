"""YOLO person detector: model lookup (and fetch), class choice, precision, backends.

Ultralytics is imported only here, in ``openvino_backend`` (export) and in ``track``, inside
functions, with its auto-install and online checks switched off. The one download ptrack
allows is Ultralytics' own official weights by name (``yolov8s.pt``) when the machine is online
and the file is nowhere on disk; it says which file and where it goes.

Backends: ``torch`` (:mod:`ptrack.detect.torch_backend`: CUDA, fp16 by default, or the CPU) and
``openvino`` (:mod:`ptrack.detect.openvino_backend`, async inference, INT8 from :mod:`ptrack.detect.quantize`).
Both suppress overlapping boxes across the chosen classes (class-agnostic NMS).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Sequence

from ptrack.errors import PtrackError


def quiet_ultralytics() -> None:
    """Set Ultralytics' environment so it stays offline and never installs packages."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")


def _inside(path: Path, folder: Path) -> bool:
    """Is ``path`` (resolved) ``folder`` or under it?"""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (OSError, ValueError):
        return False


def _weights_dirs(project: Path | None) -> list[Path]:
    """Where a bare model name is looked up: the working directory (unless it lies inside the
    project) and Ultralytics' weights directory. Never the project: a project is a thing people
    send each other, and Ultralytics unpickles weights, so a planted ``PROJECT/models/x.pt``
    would run its code."""
    dirs = []
    if project is None or not _inside(Path.cwd(), project):
        dirs.append(Path.cwd())
    settings_file = Path(os.environ.get("YOLO_CONFIG_DIR", Path.home() / ".config" / "Ultralytics"))
    settings_file = settings_file / "settings.json"
    try:
        import json

        weights = json.loads(settings_file.read_text()).get("weights_dir")
        if weights:
            dirs.append(Path(weights))
    except (OSError, ValueError):
        pass
    return dirs


def _package_file(name: str) -> Path:
    """``pkg:PACKAGE/rel/path`` -> that file inside an installed package (not imported)."""
    import importlib.util

    package, _, rel = name[4:].partition("/")
    try:
        spec = importlib.util.find_spec(package) if package else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PtrackError(f"model '{name}': no installed package named '{package}'")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise PtrackError(f"model '{name}': {path} does not exist")
    return path.resolve()


def find_model(name: str, project: Path | None = None) -> Path:
    """Resolve ``--model`` to an existing weights file, or explain where ptrack looked.

    ``name`` is a path, a bare file name (looked up in ``.`` and Ultralytics' weights
    directory, never inside the project ``project``), or ``pkg:PACKAGE/path`` for weights
    shipped in a package. The run records the file's SHA-256 (``model_sha256``).
    """
    if name.startswith("pkg:"):
        return _package_file(name)
    path = Path(name).expanduser()
    named = path.is_absolute() or len(path.parts) > 1  # a path the user wrote, used as given
    if named and path.is_file():
        return path.resolve()
    if path.exists() and not path.is_file():
        raise PtrackError(f"model path {path} is not a file")
    looked = [path.resolve()] if named else []
    if not named:
        for d in _weights_dirs(project):
            candidate = d / path.name
            looked.append(candidate)
            if candidate.is_file():
                return candidate.resolve()
    plan = fetch_plan(name, looked, official=_official_name(name, path), online=_online())
    if plan[0] == "fetch":
        return _fetch(name, plan[1])
    raise PtrackError(plan[1])


def _official_name(name: str, path: Path) -> bool:
    """Is ``name`` a bare file name of Ultralytics' official weights (``yolov8s.pt``...)?"""
    if len(path.parts) != 1 or not name.endswith(".pt"):
        return False
    try:
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
    except ImportError:
        return False
    return name in GITHUB_ASSETS_NAMES


def _online() -> bool:
    """Can this machine resolve a public host? (Ultralytics' own check, without its switch.)"""
    import socket

    for host in ("one.one.one.one", "dns.google"):
        try:
            socket.getaddrinfo(host, 0, socket.AF_UNSPEC, 0, 0, socket.AI_ADDRCONFIG)
            return True
        except OSError:
            continue
    return False


def ultralytics_weights_dir() -> Path:
    """Where Ultralytics keeps downloaded weights (its settings' ``weights_dir``)."""
    try:
        from ultralytics.utils import SETTINGS

        return Path(SETTINGS["weights_dir"])
    except (ImportError, KeyError):
        return Path.home() / ".config" / "Ultralytics" / "weights"


def _ways_out(name: str, looked: list[Path]) -> str:
    where = ", ".join(str(p) for p in looked)
    return (f"pass --model PATH to a weights file, put {Path(name).name} in one of the places "
            f"looked in ({where}), or name weights shipped in an installed package with "
            f"--model pkg:PACKAGE/path/to/weights.pt")


def fetch_plan(name: str, looked: list[Path], *, official: bool, online: bool) -> tuple[str, object]:
    """What to do about weights not found on disk: ``("fetch", destination)`` when Ultralytics
    knows ``name`` and the machine is online, else ``("error", message)``."""
    if official and online:
        return "fetch", ultralytics_weights_dir() / Path(name).name
    if official:
        return "error", (f"model file '{name}' not found and fetching Ultralytics' official "
                         f"{name} failed: this machine is offline; {_ways_out(name, looked)}")
    return "error", f"model file '{name}' not found; {_ways_out(name, looked)}"


def _fetch(name: str, dest: Path) -> Path:
    """Let Ultralytics download its official ``name`` to ``dest`` (online only)."""
    import sys

    print(f"fetching Ultralytics' official {name} into {dest} (once)", file=sys.stderr)
    saved = os.environ.pop("YOLO_OFFLINE", None)
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        dest.parent.mkdir(parents=True, exist_ok=True)
        got = Path(attempt_download_asset(dest))
        if not got.is_file():
            raise OSError("no file was written")
        return got.resolve()
    except Exception as exc:  # network errors come in many kinds
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PtrackError(f"model file '{name}' not found and fetching Ultralytics' official "
                          f"{name} failed ({reason}); {_ways_out(name, [dest])}") from None
    finally:
        if saved is not None:
            os.environ["YOLO_OFFLINE"] = saved


def file_hash(path: Path) -> str:
    """SHA-256 of a file (model weights are tens of MB: fine to read whole)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_shape(imgsz: int, width: int, height: int, stride: int = 32) -> tuple[int, int]:
    """(h, w) network input for a video: long side ``imgsz``, short side by aspect, x32."""
    imgsz = max(stride, int(math.ceil(imgsz / stride) * stride))
    if width >= height:
        short = int(math.ceil(imgsz * height / width / stride) * stride)
        return max(stride, short), imgsz
    short = int(math.ceil(imgsz * width / height / stride) * stride)
    return imgsz, max(stride, short)


def choose_classes(names: dict[int, str], spec: str | Sequence[str] | None) -> list[int] | None:
    """Class ids to keep from ``--classes``: None means all classes."""
    listing = ", ".join(f"{n} ({i})" for i, n in sorted(names.items()))
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "person"):
        for i, n in names.items():
            if n.lower() == "person":
                return [int(i)]
        raise PtrackError(f"the model has no 'person' class; its classes are: {listing}; "
                          f"pick some with --classes NAME[,NAME] or --classes all")
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    if any(p.lower() == "all" for p in parts):
        return None
    by_name = {n.lower(): int(i) for i, n in names.items()}
    out = []
    for p in parts:
        if p.isdigit() and int(p) in names:
            out.append(int(p))
        elif p.lower() in by_name:
            out.append(by_name[p.lower()])
        else:
            raise PtrackError(f"--classes: unknown class '{p}'; the model's classes are: {listing}",
                              exit_code=2)
    return sorted(set(out))


def _torch_device(device: str) -> str:
    import torch

    if device in ("", "auto"):
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PtrackError(f"device '{device}' asked for, but no CUDA GPU is available")
    return device


def _openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _load_yolo(path: Path, task: str | None = None):
    from ultralytics import YOLO

    try:
        return YOLO(str(path), task=task) if task else YOLO(str(path))
    except Exception as exc:  # corrupt or foreign files raise many kinds of errors
        raise PtrackError(f"cannot load model {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def check_precision(settings: dict) -> None:
    """Refuse an unknown ``precision`` or ``ov_hint`` (cheap: no model is loaded)."""
    from ptrack.detect.openvino_backend import HINTS, PRECISIONS

    if settings.get("precision", "auto") not in PRECISIONS:
        raise PtrackError(f"--precision: unknown precision '{settings.get('precision')}' (use "
                          f"{', '.join(PRECISIONS)})", exit_code=2)
    if str(settings.get("ov_hint", "throughput")).lower() not in HINTS:
        raise PtrackError(f"unknown detect.ov_hint '{settings.get('ov_hint')}' (use "
                          f"{' or '.join(HINTS)})")


def precision_info(detector) -> dict:
    """What a run should store about the precision it ran in (and the INT8 gate's figures)."""
    return {"precision": detector.precision, "why": detector.precision_note, "gate": detector.gate}


def _resolve_precision(settings: dict, caps: list[str], int8_dir, gate: dict | None) -> tuple[str, str]:
    """(precision to run, why) for the OpenVINO backend. ``int8_dir`` None = no INT8 model
    (its reason in ``gate['error']``); ``gate`` = the gate record of the INT8 model."""
    from ptrack.detect.quantize import gate_verdict

    asked = settings.get("precision", "auto")
    has_bf16 = "BF16" in caps
    caps_text = ", ".join(caps)
    if asked == "f32":
        return "f32", "f32 asked for (--precision f32)"
    if asked == "bf16":
        if not has_bf16:
            raise PtrackError(f"--precision bf16: this CPU has no bf16 in OpenVINO (it offers "
                              f"{caps_text}); use f32, int8 or auto")
        return "bf16", "bf16 asked for (--precision bf16)"
    floating = "bf16" if has_bf16 else "f32"
    if int8_dir is None:
        why = (gate or {}).get("error", "no INT8 model")
        if asked == "int8":
            raise PtrackError(f"--precision int8: {why}")
        return floating, f"auto: {floating} ({why})"
    figures = gate["figures"]
    ok, fails = gate_verdict(figures, settings)
    text = (f"agreement with f32 at IoU 0.5 {min(figures['recall'], figures['precision']):.3f}, "
            f"at IoU 0.9 {figures.get('iou_0.9', float('nan')):.3f}, median IoU "
            f"{figures['median_iou']:.3f}, confidence shift {figures['conf_shift']:.3f} "
            f"on {figures['frames']} held-aside frames")
    if asked == "int8":
        if not ok:
            return "int8", (f"warning: INT8 ran anyway because --precision int8 asked for it, "
                            f"although it failed its accuracy gate ({fails}; {text}); "
                            f"--precision auto would not have run it")
        return "int8", f"int8 asked for (gate passed; {text})"
    if ok:
        return "int8", f"auto: int8, it passed the accuracy gate ({text})"
    return floating, f"auto: {floating}, INT8 failed the accuracy gate ({fails})"


def _load_openvino(settings: dict, pt_path: Path, shape: tuple[int, int], *, names, classes,
                   video: Path | None, frame_count: int, log) -> object:
    from ptrack.detect import openvino_backend as ob
    asked = settings.get("precision", "auto")
    if asked not in ob.PRECISIONS:
        raise PtrackError(f"unknown precision '{asked}' (use {', '.join(ob.PRECISIONS)})")
    hint = str(settings.get("ov_hint", "throughput")).lower()
    if hint not in ob.HINTS:
        raise PtrackError(f"unknown detect.ov_hint '{hint}' (use {' or '.join(ob.HINTS)})")
    caps = ob.cpu_capabilities()
    if asked == "fp16":
        raise PtrackError("--precision fp16 is for the torch backend on a CUDA GPU; OpenVINO on "
                          f"this CPU offers {', '.join(caps)} (use f32, int8 or auto)")
    if asked == "bf16" and "BF16" not in caps:
        _resolve_precision(settings, caps, None, None)  # raises the message
    digest = file_hash(pt_path)
    f32_dir = ob.export_ir(pt_path, digest, shape, log=log)
    int8_dir, gate = None, None
    if asked in ("auto", "int8"):
        from ptrack.detect import quantize
        cached = quantize.int8_dir(f32_dir)
        if (cached / "gate.json").exists():
            int8_dir = cached
        elif video is None or frame_count <= 0:
            gate = {"error": "no INT8 model for this model and input shape yet, and no video to "
                             "calibrate one on"}
        elif asked == "auto" and frame_count < int(settings.get("int8_min_frames", 2000)):
            gate = {"error": f"no INT8 model for this model and input shape yet; building one "
                             f"pays from {int(settings.get('int8_min_frames', 2000))} frames, "
                             f"this video has {frame_count} (--precision int8 builds it now)"}
        else:
            try:
                int8_dir = quantize.quantize_int8(
                    f32_dir, video, frame_count, shape,
                    calib_frames=int(settings.get("int8_calib_frames", 300)),
                    gate_frames=int(settings.get("int8_gate_frames", 60)), log=log)
            except PtrackError as exc:
                if asked == "int8":
                    raise
                gate = {"error": str(exc)}
        if int8_dir is not None:
            gate = quantize.load_gate(int8_dir)
    precision, why = _resolve_precision(settings, caps, int8_dir, gate)

    def build(precision: str, why: str):
        xml = (int8_dir if precision == "int8" else f32_dir) / "model.xml"
        compiled, requests = ob.compile_ir(xml, hint=hint,
                                           precision="bf16" if precision == "bf16" else "f32")
        return ob.OpenVINODetector(compiled=compiled, imgsz=shape, conf=float(settings["conf"]),
                                   iou=float(settings["iou"]), classes=classes,
                                   max_det=int(settings["max_det"]), names=names,
                                   requests=requests, precision=precision, precision_note=why,
                                   gate=gate.get("figures") if gate else None)

    if asked == "auto":
        passing = ["f32"] + (["bf16"] if "BF16" in caps else []) + \
            (["int8"] if precision == "int8" else [])
        if len(passing) > 1 and video is not None:
            fastest = _fastest_detector(build, passing, f32_dir, video, why, log)
            if fastest is not None:
                return fastest
    return build(precision, why)


def _fastest_detector(build, passing: list[str], f32_dir: Path, video: Path, why: str, log):
    """``--precision auto``: the fastest of the precisions that pass their gate, timed on the
    video's first frames on this CPU (cached per model, input shape and CPU:
    :mod:`ptrack.detect.speed`). None when nothing is cached and no frame can be read to time
    them (the caller keeps the choice made before timing)."""
    from ptrack.detect import speed
    from ptrack.detect.video import first_frames

    if speed.cached_speeds(speed.cache_file(f32_dir), speed.cpu_name(), passing) is None \
            and not first_frames(video, 1):
        return None
    built: dict = {}

    def get(p: str):
        if p not in built:
            built[p] = build(p, "")
        return built[p]

    def measure() -> dict[str, float]:
        frames = first_frames(video, speed.FRAMES)
        if not frames:
            raise PtrackError(f"{video}: no frame could be read to time the precisions")
        if log:
            log(f"timing {', '.join(passing)} on this CPU (once per model and input shape)")
        runs = speed.time_candidates({p: (lambda d=get(p): d(frames)) for p in passing})
        return {p: r * len(frames) for p, r in runs.items()}

    speeds, cached = speed.measured_speeds(speed.cache_file(f32_dir), passing, measure)
    best = speed.fastest(speeds, passing)
    reason = why[len("auto: "):] if why.startswith("auto: ") else why
    note = (f"auto: {best}, the fastest precision that passes its gate here "
            f"({speed.speeds_text(speeds)} on this CPU{', measured earlier' if cached else ''}; "
            f"before timing: {reason})")
    detector = get(best)
    detector.precision_note = note
    return detector


def load_detector(settings: dict, *, width: int, height: int, project: Path,
                  video: Path | None = None, frame_count: int = 0, log=None):
    """Build a detector from the ``detect`` settings for a video of this size.

    ``video`` and ``frame_count`` let the OpenVINO backend calibrate INT8 on that video the
    first time (``precision`` auto or int8); ``log`` gets one-time messages (export, INT8).
    The result has ``precision`` and ``precision_note`` (which precision runs and why) and
    ``gate`` (the INT8 accuracy gate's figures, or None): see :func:`precision_info`.
    """
    check_precision(settings)
    quiet_ultralytics()
    path = find_model(settings["model"], project)
    import torch  # noqa: F401  (after the environment is set)

    model = _load_yolo(path)
    if getattr(model, "task", "detect") != "detect":
        raise PtrackError(f"model {path.name} is a '{model.task}' model; ptrack needs a detection model")
    names = {int(k): str(v) for k, v in model.names.items()}
    classes = choose_classes(names, settings["classes"])
    device = _torch_device(settings["device"])
    backend = settings["backend"]
    if backend not in ("auto", "torch", "openvino"):
        raise PtrackError(f"unknown backend '{backend}' (use auto, torch or openvino)")
    if backend == "auto":
        backend = "openvino" if device == "cpu" and _openvino_available() else "torch"
    if backend == "openvino" and not _openvino_available():
        raise PtrackError("backend openvino asked for, but the openvino package is not installed")
    shape = input_shape(settings["imgsz"], width, height)
    if backend == "openvino":
        return _load_openvino(settings, path, shape, names=names, classes=classes, video=video,
                              frame_count=frame_count, log=log)
    precision, why = torch_precision(settings.get("precision", "auto"), device)
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)  # Ultralytics leaves one core idle
    from ptrack.detect.torch_backend import TorchDetector, prepare_network

    detector = TorchDetector(net=prepare_network(model, device, precision == "fp16"),
                             device=device, imgsz=shape, conf=float(settings["conf"]),
                             iou=float(settings["iou"]), classes=classes,
                             max_det=int(settings["max_det"]), names=names, precision=precision,
                             precision_note=why)
    detector.warm_up(height, width, batch_size(settings, device, width, height))
    return detector


def batch_size(settings: dict, device: str, width: int = 0, height: int = 0) -> int:
    """Frames per batch: ``batch``, or for 0 (auto) 8 on the CPU and on a CUDA GPU 32 frames
    of up to 1080p (on an H200, 32 ran ptrack detect 1.4x faster than 8 at 640x480, 1.1x at
    1080p), fewer of larger frames (8 at 4K), so that a batch letterboxed on the GPU stays
    near 1 GB whatever the video's size."""
    asked = int(settings.get("batch", 0) or 0)
    if asked > 0:
        return asked
    if not str(device).startswith("cuda"):
        return 8
    pixels = max(1, width * height) if width and height else 1920 * 1080
    return int(min(32, max(4, 32 * 1920 * 1080 // pixels)))


def torch_precision(asked: str, device: str) -> tuple[str, str]:
    """(precision, why) for the torch backend: fp16 on CUDA unless f32 is asked for; f32 on
    the CPU. bf16 and int8 are OpenVINO's."""
    cuda = device.startswith("cuda")
    if asked in ("bf16", "int8"):
        raise PtrackError(f"--precision {asked} needs the OpenVINO backend (--backend openvino)")
    if asked == "fp16" and not cuda:
        raise PtrackError("--precision fp16 needs a CUDA GPU (--device cuda); on the CPU use "
                          "f32, or bf16/int8 with OpenVINO")
    if asked == "f32":
        return "f32", f"torch backend on {device}: f32 asked for (--precision f32)"
    if cuda:
        return "fp16", (f"torch backend on {device}: fp16" +
                        (" asked for (--precision fp16)" if asked == "fp16" else
                         " (auto: half precision on a GPU; --precision f32 for full)"))
    return "f32", f"torch backend on {device}: f32"
