"""YOLO person detector: model lookup, class choice, torch and OpenVINO backends.

Ultralytics is imported only here (and in ``track``), inside functions, with its auto-install
and online checks switched off: ptrack never downloads or pip-installs in its user's name.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ptrack.errors import PtrackError


def quiet_ultralytics() -> None:
    """Set Ultralytics' environment so it stays offline and never installs packages."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")


def _weights_dirs(project: Path | None) -> list[Path]:
    dirs = [Path.cwd()]
    if project is not None:
        dirs.append(project / "models")
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

    ``name`` is a path, a bare file name (looked up in ``.``, the project's ``models/`` and
    Ultralytics' weights directory), or ``pkg:PACKAGE/path`` for weights shipped in a package.
    """
    if name.startswith("pkg:"):
        return _package_file(name)
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():
        raise PtrackError(f"model path {path} is not a file")
    looked = [path.resolve()] if path.is_absolute() or len(path.parts) > 1 else []
    if not looked:
        for d in _weights_dirs(project):
            candidate = d / path.name
            looked.append(candidate)
            if candidate.is_file():
                return candidate.resolve()
    where = ", ".join(str(p) for p in looked)
    raise PtrackError(
        f"model file '{name}' not found (looked in: {where}); ptrack does not download "
        f"weights: Ultralytics fetches official ones only when online, so get it once on a "
        f"connected machine or pass --model PATH")


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
            raise PtrackError(f"unknown class '{p}'; the model's classes are: {listing}")
    return sorted(set(out))


@dataclass
class Detector:
    """A loaded model ready to detect. Call :meth:`__call__` with a list of BGR frames."""

    model: object
    backend: str
    device: str
    imgsz: tuple[int, int]
    conf: float
    iou: float
    classes: list[int] | None
    max_det: int
    names: dict[int, str]

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per frame: (xyxy float32 (N,4) in frame pixels, conf float32 (N,), cls int64 (N,))."""
        results = self.model.predict(list(frames), imgsz=list(self.imgsz), conf=self.conf,
                                     iou=self.iou, classes=self.classes, max_det=self.max_det,
                                     device=self.device, verbose=False, half=False)
        out = []
        for r in results:
            b = r.boxes
            out.append((b.xyxy.cpu().numpy().astype(np.float32),
                        b.conf.cpu().numpy().astype(np.float32),
                        b.cls.cpu().numpy().astype(np.int64)))
        return out


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


def _openvino_model(pt_path: Path, digest: str, shape: tuple[int, int], cache_root: Path):
    """Export (once) and load the OpenVINO model for this weights file and input shape."""
    target = cache_root / f"{digest[:16]}-{shape[0]}x{shape[1]}_openvino_model"  # suffix Ultralytics needs
    xml = target / "model.xml"
    if not xml.exists():
        cache_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_root, prefix=".export-") as tmp:
            local = Path(tmp) / "model.pt"
            shutil.copyfile(pt_path, local)
            model = _load_yolo(local)
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exported = model.export(format="openvino", imgsz=list(shape), half=False,
                                            dynamic=False, batch=1, verbose=False)
            except Exception as exc:
                raise PtrackError(f"OpenVINO export of {pt_path} failed: {exc}") from None
            exported = Path(exported)
            if target.exists():
                shutil.rmtree(target)
            os.replace(exported, target)
    return _load_yolo(target, task="detect")


def load_detector(settings: dict, *, width: int, height: int, project: Path) -> Detector:
    """Build a :class:`Detector` from the ``detect`` settings for a video of this size."""
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
        model = _openvino_model(path, file_hash(path), shape, project / "models")
        device = "cpu"
    else:
        if device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)  # Ultralytics leaves one core idle
    return Detector(model=model, backend=backend, device=device, imgsz=shape,
                    conf=float(settings["conf"]), iou=float(settings["iou"]), classes=classes,
                    max_det=int(settings["max_det"]), names=names)
