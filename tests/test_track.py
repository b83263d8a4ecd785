"""fercore.inference.track: stable ids across frames, smoothed scores, no label flicker, retired ids."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.inference.track import FaceTracker, Track
from fercore.labels import EMOTIONS
from fercore.types import Box, FacePrediction

FACE = np.zeros((48, 48), np.uint8)


def pred(x: int, y: int, probs, side: int = 80) -> FacePrediction:
    probs = np.asarray(probs, dtype=float)
    probs = probs / probs.sum()
    scores = dict(zip(EMOTIONS, probs.tolist(), strict=True))
    return FacePrediction(Box(x, y, side, side), scores, EMOTIONS[int(np.argmax(probs))], FACE)


def onehot(label: str, p: float = 0.7) -> np.ndarray:
    v = np.full(7, (1 - p) / 6)
    v[EMOTIONS.index(label)] = p
    return v


def test_steady_face_keeps_its_id_and_its_label_does_not_flicker():
    """Raw scores that alternate between two close emotions flip the raw label every frame;
    the tracked label settles on one and stays there."""
    rng = np.random.default_rng(0)
    tracker = FaceTracker()
    raw_labels, labels, ids = [], [], []
    for i in range(60):
        happy, neutral = (0.46, 0.40) if i % 2 else (0.40, 0.46)
        probs = np.array([0.02, 0.02, 0.02, happy, 0.04, 0.04, neutral]) + rng.uniform(0, 0.01, 7)
        jitter = rng.integers(-3, 4, 2)
        p = pred(200 + int(jitter[0]), 120 + int(jitter[1]), probs)
        raw_labels.append(p.label)
        (out,) = tracker.update([p])
        labels.append(out.label)
        ids.append(out.face_id)
    assert len(set(raw_labels)) == 2 and sum(a != b for a, b in zip(raw_labels, raw_labels[1:], strict=False)) > 50
    assert set(ids) == {1}
    assert len(set(labels[1:])) == 1, labels
    assert labels[-1] in ("happy", "neutral")


def test_scores_are_an_exponential_moving_average():
    tracker = FaceTracker(smoothing=0.6, switch_margin=0.0)
    a, b = onehot("sad", 0.9), onehot("surprise", 0.9)
    (first,) = tracker.update([pred(10, 10, a)])
    assert np.allclose([first.scores[e] for e in EMOTIONS], a)
    (second,) = tracker.update([pred(12, 10, b)])
    expected = 0.6 * a + 0.4 * b
    assert np.allclose([second.scores[e] for e in EMOTIONS], expected)
    assert sum(second.scores.values()) == pytest.approx(1.0)
    assert second.label == "sad"  # 0.6·0.9 beats 0.4·0.9
    # a lasting change of expression does get through
    for _ in range(5):
        (out,) = tracker.update([pred(12, 10, b)])
    assert out.label == "surprise"


def test_no_smoothing_passes_scores_through():
    tracker = FaceTracker(smoothing=0.0, switch_margin=0.0)
    for label in ("angry", "fear", "happy"):
        p = pred(50, 50, onehot(label))
        (out,) = tracker.update([p])
        assert out.label == label and out.scores == pytest.approx(p.scores)


def test_two_moving_faces_keep_their_ids():
    tracker = FaceTracker()
    seen: dict[str, set[int]] = {"left": set(), "right": set()}
    for i in range(30):
        left = pred(20 + 6 * i, 100, onehot("happy"))  # moves right
        right = pred(600 - 6 * i, 300, onehot("sad"))  # moves left, lower in the frame
        out = tracker.update([right, left] if i % 2 else [left, right])
        by_y = sorted(out, key=lambda p: p.box.y)
        seen["left"].add(by_y[0].face_id)
        seen["right"].add(by_y[1].face_id)
        assert by_y[0].label == "happy" and by_y[1].label == "sad"
    assert len(seen["left"]) == 1 and len(seen["right"]) == 1
    assert seen["left"] != seen["right"]


def test_fast_zoom_matches_by_centre_distance():
    """A box that grows and shifts at once overlaps too little (IoU < 0.3) but is the same face."""
    tracker = FaceTracker(iou_threshold=0.3, max_center_shift=0.6)
    a, b = Box(100, 100, 60, 60), Box(110, 100, 100, 100)
    assert a.iou(b) < 0.3
    (first,) = tracker.update([pred(a.x, a.y, onehot("happy"), side=a.w)])
    (second,) = tracker.update([pred(b.x, b.y, onehot("happy"), side=b.w)])
    assert second.face_id == first.face_id
    (jump,) = tracker.update([pred(260, 100, onehot("happy"), side=100)])  # 1.5 sides away
    assert jump.face_id != first.face_id


def test_missed_frames_keep_the_id_until_retired():
    tracker = FaceTracker(max_missed=3)
    (first,) = tracker.update([pred(100, 100, onehot("happy"))])
    for _ in range(3):  # three frames without the face: still remembered
        assert tracker.update([]) == []
    (back,) = tracker.update([pred(104, 100, onehot("happy"))])
    assert back.face_id == first.face_id
    for _ in range(4):  # four missed frames > max_missed: retired
        tracker.update([])
    assert tracker.tracks == []
    (new,) = tracker.update([pred(104, 100, onehot("happy"))])
    assert new.face_id == first.face_id + 1  # ids are never reused
    tracker.reset()
    (again,) = tracker.update([pred(104, 100, onehot("happy"))])
    assert again.face_id == 1


def test_update_does_not_modify_its_input_and_keeps_order():
    tracker = FaceTracker()
    preds = [pred(10, 10, onehot("fear")), pred(300, 10, onehot("angry"))]
    out = tracker.update(preds)
    assert [p.face_id for p in preds] == [None, None]
    assert [p.box for p in out] == [p.box for p in preds]
    assert [p.face_id for p in out] == [1, 2]


def test_bad_parameters():
    with pytest.raises(ValueError, match="smoothing"):
        FaceTracker(smoothing=1.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        FaceTracker(iou_threshold=1.5)
    with pytest.raises(ValueError, match="max_missed"):
        FaceTracker(max_missed=-1)
    with pytest.raises(ValueError, match="switch_margin"):
        FaceTracker(switch_margin=-0.1)
    assert FaceTracker().max_missed == 8


# ------------------------------------------------------------------------ motion through misses


def test_track_predicts_constant_velocity_through_missed_frames():
    track = Track(face_id=1, box=Box(100, 50, 80, 80), scores=np.full(7, 1 / 7), label=0, velocity=(10.0, -2.0))
    assert track.predicted() == Box(110, 48, 80, 80)
    track.missed = 4
    assert track.predicted() == Box(150, 40, 80, 80)


@pytest.mark.parametrize("dropped", [5, 6, 7])
def test_a_moving_face_keeps_its_id_through_several_dropped_detections(dropped):
    """A face sliding 12 px per frame (80-px box) is not detected for 5–7 frames in a row: by then
    it is 72–96 px (about a whole box) from where it was last seen. It keeps its id — even though
    a newcomer shows up exactly where it was last seen when it comes back (matching on the
    last-seen box would hand the newcomer its id) — and a face elsewhere during the gap gets a new one."""
    tracker = FaceTracker()
    last_seen, back_at = Box(20 + 12 * 14, 200, 80, 80), 15 + dropped
    ids, newcomer_ids = [], set()
    for i in range(40):
        lost = 15 <= i < back_at
        preds = [] if lost else [pred(20 + 12 * i, 200 + (i % 3), onehot("happy"))]
        if i == 16:
            preds.append(pred(700, 20, onehot("sad")))  # someone else, far away, for one frame
        if i >= back_at:
            preds.append(pred(last_seen.x, last_seen.y, onehot("sad")))  # a newcomer where it vanished
        out = tracker.update(preds)
        if lost:
            assert [p.label for p in out] == (["sad"] if i == 16 else [])
            assert all(p.face_id != 1 for p in out)
            continue
        (face,) = [p for p in out if p.label == "happy"]
        ids.append(face.face_id)
        newcomer_ids |= {p.face_id for p in out if p.label == "sad"}
    assert set(ids) == {1}
    assert len(newcomer_ids) == 1 and 1 not in newcomer_ids
    assert Box(20 + 12 * back_at, 200, 80, 80).iou(last_seen) < 0.3  # far from where it was last seen


def test_without_motion_a_far_jump_after_misses_is_a_new_face():
    """A face that did not move before it was lost and reappears far away is someone else."""
    tracker = FaceTracker()
    for _ in range(10):
        (first,) = tracker.update([pred(100, 100, onehot("happy"))])
    for _ in range(3):
        tracker.update([])
    (other,) = tracker.update([pred(500, 100, onehot("happy"))])
    assert other.face_id != first.face_id


@pytest.mark.parametrize("dy", [0, 20])
def test_two_faces_crossing_paths_keep_their_ids(dy):
    """Two faces walking towards each other, overlapping fully (dy=0) or partly at the crossing,
    then moving apart: each keeps its id, and its label."""
    tracker = FaceTracker()
    by_direction: dict[str, set[int]] = {"right": set(), "left": set()}
    for i in range(40):
        a = pred(40 + 10 * i, 200, onehot("happy"))  # moves right
        b = pred(430 - 10 * i, 200 + dy, onehot("sad"))  # moves left; they meet around frame 19
        out = tracker.update([a, b] if i % 2 else [b, a])
        assert len(out) == 2
        for face in out:
            direction = "right" if face.box.x == a.box.x and face.box.y == a.box.y else "left"
            by_direction[direction].add(face.face_id)
            if i > 25:  # long after the crossing the smoothed labels still belong to the right face
                assert face.label == ("happy" if direction == "right" else "sad"), (i, face)
    assert len(by_direction["right"]) == 1 and len(by_direction["left"]) == 1
    assert by_direction["right"] != by_direction["left"]
