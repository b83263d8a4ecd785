"""fercore.evaluation.calibration: ECE, reliability bins and temperature fitting, on generated data."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.evaluation.calibration import ece, fit_temperature, nll, reliability
from fercore.inference.temperature import apply_temperature


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_logits(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 7))
    p = softmax(z)
    labels = np.array([rng.choice(7, p=row) for row in p])
    return z, labels


def test_ece_by_hand():
    # two faces at confidence 0.9 (one right), two at 0.6 (both right), 15 bins
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # bin of 0.9: accuracy 0.5 vs confidence 0.9 → 0.4; bin of 0.6: 1.0 vs 0.6 → 0.4; weights 1/2 each
    assert ece(probs, labels) == pytest.approx(0.4)
    table = reliability(probs, labels, bins=15)
    assert len(table) == 15 and sum(b["count"] for b in table) == 4
    full = [b for b in table if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(2, 1.0), (2, 0.5)]
    assert full[0]["lower"] < 0.6 <= full[0]["upper"] and full[1]["lower"] < 0.9 <= full[1]["upper"]
    assert ece(probs[:0], labels[:0]) == 0.0


def test_perfect_confident_predictions_have_zero_ece():
    labels = np.arange(50) % 7
    probs = np.eye(7)[labels]
    assert ece(probs, labels) == 0.0


def test_overconfident_logits_fit_t_above_one_and_ece_drops():
    z, labels = calibrated_logits()
    over = z * 2.5  # the same ranking, far too sure of itself
    t = fit_temperature(over, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    before, after = ece(softmax(over), labels), ece(apply_temperature(softmax(over), t), labels)
    assert before > 0.1 and after < 0.03 and after < before / 4
    assert nll(over, labels, t) < nll(over, labels)


def test_underconfident_probabilities_fit_t_below_one():
    z, labels = calibrated_logits(seed=1)
    t = fit_temperature(softmax(z / 2.0), labels)  # probabilities in, not logits
    assert t == pytest.approx(0.5, rel=0.1)


def test_fit_on_int8_style_probabilities():
    """Softmax outputs on a 1/256 grid (an int8 model's) still count as probabilities."""
    z, labels = calibrated_logits(seed=2)
    p = np.round(softmax(z * 2.0) * 256) / 256
    assert fit_temperature(p, labels) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize(
    "probs, labels, message",
    [
        (np.ones(7) / 7, np.array([0]), r"\(n, classes\)"),
        (np.ones((2, 7)) / 7, np.array([0]), "one label per row"),
        (np.ones((2, 7)) / 7, np.array([0, 7]), "0..6"),
    ],
)
def test_bad_input_is_a_clear_error(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        ece(probs, labels)
    with pytest.raises(ValueError, match=message):
        fit_temperature(probs, labels)
