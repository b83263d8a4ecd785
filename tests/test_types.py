"""fercore.types: the Box value type, FacePrediction's one serialiser, the error hierarchy."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest

from fercore.labels import EMOTIONS
from fercore.types import ROW_COLUMNS, Box, DataError, DetectorError, FacePrediction, FerError, ImageError, VideoError

FACE = np.zeros((48, 48), np.uint8)

# ------------------------------------------------------------------------------------------- Box


def test_box_iou_area_and_list():
    a = Box(0, 0, 10, 10)
    assert a.area == 100
    assert a.iou(a) == 1.0
    assert a.iou(Box(20, 20, 5, 5)) == 0.0
    # half-overlapping boxes: intersection 50, union 150
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.as_list() == [0, 0, 10, 10]
    assert all(type(v) is int for v in Box(np.int64(1), 2, 3, 4).as_list())
    assert tuple(Box(1, 2, 3, 4)) == (1, 2, 3, 4)


def test_box_iou_is_symmetric_and_handles_containment_touching_and_empty_boxes():
    outer, inner = Box(0, 0, 20, 20), Box(5, 5, 10, 10)
    assert outer.iou(inner) == inner.iou(outer) == pytest.approx(100 / 400)
    assert Box(0, 0, 10, 10).iou(Box(10, 0, 10, 10)) == 0.0  # sharing an edge is no overlap
    assert Box(0, 0, 0, 0).iou(Box(0, 0, 0, 0)) == 0.0  # no division by zero
    assert Box(3, 3, 0, 5).area == 0 and Box(3, 3, -4, 5).area == 0
    assert Box(10, 20, 30, 40).center == (25.0, 40.0)


def test_box_scaled_and_clipped():
    assert Box(10, 20, 30, 40).scaled(2.5) == Box(25, 50, 75, 100)
    assert Box(10, 20, 30, 40).scaled(1 / 3) == Box(3, 7, 10, 13)  # rounded to whole pixels
    assert Box(10, 20, 30, 40).scaled(1.0) == Box(10, 20, 30, 40)
    assert Box(-5, -5, 20, 20).clipped(10, 12) == Box(0, 0, 10, 12)
    assert Box(5, 6, 20, 20).clipped(15, 16) == Box(5, 6, 10, 10)  # right and bottom edges
    assert Box(2, 3, 4, 5).clipped(100, 100) == Box(2, 3, 4, 5)  # inside: unchanged
    assert Box(50, 50, 5, 5).clipped(10, 10).area == 0
    assert Box(-50, -50, 5, 5).clipped(10, 10).area == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        Box(1, 2, 3, 4).x = 5  # frozen value type


def test_box_is_hashable_and_compares_by_value():
    assert Box(1, 2, 3, 4) == Box(1, 2, 3, 4) and Box(1, 2, 3, 4) != Box(1, 2, 3, 5)
    assert len({Box(1, 2, 3, 4), Box(1, 2, 3, 4)}) == 1


# -------------------------------------------------------------------------------- FacePrediction


def _pred(face_id=None, probs=(0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1)) -> FacePrediction:
    p = FacePrediction.from_probs(Box(np.int64(10), 20, 30, 40), np.asarray(probs, np.float32), FACE)
    p.face_id = face_id
    return p


def test_from_probs_names_the_seven_emotions_in_order_and_picks_the_top_label():
    p = _pred()
    assert list(p.scores) == list(EMOTIONS)
    assert all(type(v) is float for v in p.scores.values())
    assert p.label == "happy" and p.confidence == pytest.approx(0.5)
    assert p.face_id is None and p.raw_scores is None and p.whole_image is False
    with pytest.raises(ValueError):
        FacePrediction.from_probs(Box(0, 0, 1, 1), np.ones(6), FACE)  # not 7 probabilities


def test_to_dict_keys_and_json_round_trip():
    d = _pred().to_dict()
    assert list(d) == ["face_id", "box", "label", "scores"]  # raw_scores/whole_image only when set
    assert d == json.loads(json.dumps(d))
    assert d["face_id"] is None and d["box"] == [10, 20, 30, 40] and d["label"] == "happy"
    assert all(type(v) is int for v in d["box"])
    assert list(d["scores"]) == list(EMOTIONS) and sum(d["scores"].values()) == pytest.approx(1.0)

    tracked = _pred(face_id=np.int64(3))
    tracked.raw_scores = dict(zip(EMOTIONS, [1 / 7] * 7, strict=True))
    tracked.whole_image = True
    d = json.loads(json.dumps(tracked.to_dict()))
    assert d["face_id"] == 3 and type(tracked.to_dict()["face_id"]) is int
    assert list(d["raw_scores"]) == list(EMOTIONS) and d["whole_image"] is True


def test_to_row_has_exactly_the_row_columns_and_writes_as_csv():
    assert ["face_id", "x", "y", "w", "h", "label", *EMOTIONS] == ROW_COLUMNS
    for face_id in (None, 7):
        row = _pred(face_id).to_row()
        assert list(row) == ROW_COLUMNS
        assert row["face_id"] == face_id and (row["x"], row["y"], row["w"], row["h"]) == (10, 20, 30, 40)
        assert row["label"] == "happy" and row["happy"] == pytest.approx(0.5)
        assert json.loads(json.dumps(row)) == row
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_COLUMNS)
    writer.writeheader()
    writer.writerow(_pred(1).to_row())
    (back,) = csv.DictReader(io.StringIO(buf.getvalue()))
    assert back["label"] == "happy" and float(back["angry"]) == pytest.approx(0.05)


def test_predictions_compare_without_their_pixels():
    a, b = _pred(), _pred()
    b.face = np.ones((48, 48), np.uint8)
    assert a == b  # the crop is not part of the value
    assert "face=" not in repr(a)


# ---------------------------------------------------------------------------------------- errors


def test_user_input_errors_share_one_base_that_is_a_value_error():
    for cls in (DataError, ImageError, DetectorError, VideoError):
        assert issubclass(cls, FerError) and issubclass(cls, ValueError)
    with pytest.raises(FerError, match="bad"):
        raise ImageError("bad image")


def test_one_line_prefers_strerror_then_the_first_line_then_the_type():
    from fercore.types import one_line

    assert one_line(FileNotFoundError(2, "No such file or directory", "x.mp4")) == "No such file or directory"
    assert one_line(OSError("image file is truncated\n(3 bytes not processed)")) == "image file is truncated"
    assert one_line(ValueError("")) == "ValueError"
