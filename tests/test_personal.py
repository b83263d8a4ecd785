"""fercore.inference.personal: the personal neutral baseline rule and its pipeline step."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.inference.personal import FLOOR, NEUTRAL, PersonalBaseline, apply_baseline, fit_baseline, reference
from fercore.labels import EMOTIONS
from fercore.types import Box, FacePrediction

SAD = EMOTIONS.index("sad")
HAPPY = EMOTIONS.index("happy")


def _probs(**kw: float) -> np.ndarray:
    p = np.array([kw.get(e, 0.0) + 0.02 for e in EMOTIONS])  # a softmax is never exactly 0
    return p / p.sum()


def test_reference_is_mostly_neutral_and_sums_to_one():
    q = reference(0.8)
    assert q.sum() == pytest.approx(1.0) and q[NEUTRAL] == pytest.approx(0.8)
    assert np.allclose(np.delete(q, NEUTRAL), 0.2 / 6)
    assert np.argmax(reference()) == NEUTRAL
    with pytest.raises(ValueError, match="neutral target"):
        reference(1.0)


def test_the_baseline_face_itself_reads_as_the_reference():
    resting = _probs(sad=0.6, neutral=0.3, angry=0.1)  # a resting face the model reads as sad
    b = fit_baseline(np.stack([resting, resting]))
    np.testing.assert_allclose(apply_baseline(resting, b), reference(), atol=1e-9)
    assert np.argmax(resting) == SAD and np.argmax(apply_baseline(resting, b)) == NEUTRAL


def test_an_emotion_shows_as_much_as_it_grew_relative_to_the_baseline():
    b = fit_baseline(_probs(sad=0.6, neutral=0.3, happy=0.1)[None])
    smiling = _probs(sad=0.1, neutral=0.1, happy=0.8)  # happy grew, sad and neutral fell
    out = apply_baseline(smiling, b)
    assert np.argmax(out) == HAPPY
    assert out[SAD] < reference()[SAD]
    assert out.sum() == pytest.approx(1.0)


def test_rows_are_calibrated_independently_and_tiny_baselines_are_floored():
    b = np.full(7, 1e-9)
    b[NEUTRAL] = 1.0
    rows = np.stack([_probs(happy=1, neutral=1), _probs(fear=1, neutral=3)])
    out = apply_baseline(rows, b)
    assert out.shape == (2, 7) and np.allclose(out.sum(axis=1), 1.0)
    expected = rows[0] * reference() / np.maximum(b, FLOOR)
    np.testing.assert_allclose(out[0], expected / expected.sum())


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="probabilities"):
        fit_baseline(np.zeros((0, 7)))
    with pytest.raises(ValueError, match="probabilities"):
        fit_baseline(np.zeros((3, 5)))


def _face(face_id: int, probs: np.ndarray) -> FacePrediction:
    pred = FacePrediction.from_probs(Box(0, 0, 10, 10), probs, np.zeros((48, 48), np.uint8))
    pred.face_id = face_id
    return pred


def test_the_step_captures_per_face_then_applies_only_where_a_baseline_exists():
    step = PersonalBaseline(min_frames=3)
    resting = _probs(sad=0.6, neutral=0.4)
    step.start(3.0, now=100.0)
    for t in range(5):  # face 1 seen 5 times, face 2 only twice during the capture
        step([_face(1, resting)] + ([_face(2, resting)] if t < 2 else []), now=100.0 + t * 0.5)
    out = step([_face(1, resting), _face(2, resting)], now=104.0)  # the capture has ended
    assert set(step.baselines) == {1}
    assert step.last_capture.frames == {1: 5, 2: 2} and step.last_capture.fitted == (1,)
    message = step.last_capture.message()
    assert "fitted for face 1" in message and "face 2 in 2 frames (needs 3" in message
    assert out[0].label == "neutral" and out[0].raw_scores is not None and out[0].raw_scores["sad"] > 0.5
    assert out[1].label == "sad" and out[1].scores == _face(2, resting).scores  # no baseline: unchanged
    step.enabled = False
    assert step([_face(1, resting)], now=105.0)[0].label == "sad"  # the toggle shows raw scores again


def test_a_capture_without_faces_says_so_and_a_new_capture_replaces_the_report():
    step = PersonalBaseline(min_frames=2)
    assert step.last_capture is None
    step.start(1.0, now=10.0)
    step([], now=10.5)
    step([], now=11.5)  # ended with nothing seen
    assert step.last_capture.frames == {} and not step.baselines
    assert step.last_capture.message().startswith("No baseline: no face was seen")
    step.start(1.0, now=20.0)
    step([_face(4, _probs(neutral=1.0))], now=20.2)
    step([_face(4, _probs(neutral=1.0))], now=20.4)
    step([], now=21.2)
    assert step.last_capture.fitted == (4,) and step.last_capture.message() == "Baseline fitted for face 4."
