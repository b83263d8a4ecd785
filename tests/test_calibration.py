"""fercore.evaluation.calibration: ECE, reliability bins, temperature fitting and the side file, on generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fercore.evaluation.calibration import (
    CALIBRATION_FILE,
    apply_temperature,
    calibration_file,
    ece,
    fit_temperature,
    load_calibration,
    nll,
    reliability,
    save_temperature,
    saved_temperature,
)


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


def test_apply_temperature_keeps_argmax_and_sums_to_one():
    rng = np.random.default_rng(3)
    p = softmax(rng.normal(0, 2, (20, 7))).astype(np.float32)
    for t in (0.5, 1.0, 2.0):
        q = apply_temperature(p, t)
        assert q.dtype == np.float32
        np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(q.argmax(axis=1), p.argmax(axis=1))
    np.testing.assert_array_equal(apply_temperature(p, 1.0), p)
    assert (apply_temperature(p, 2.0).max(axis=1) < p.max(axis=1)).all()
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(p, 0.0)


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


def test_side_file_round_trip(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"")
    assert saved_temperature(model) == 1.0  # no file: no change
    file = save_temperature(model, 1.37, fitted_on="train sample", ece_before=0.06, ece_after=0.02)
    assert file == tmp_path / CALIBRATION_FILE == calibration_file(model) == calibration_file(tmp_path)
    assert json.loads(file.read_text()) == {
        "temperature": 1.37,
        "fitted_on": "train sample",
        "ece_before": 0.06,
        "ece_after": 0.02,
    }
    assert (
        load_calibration(model)["fitted_on"] == "train sample"
        and load_calibration(tmp_path / "other" / "m.tflite") == {}
    )
    # every format in the folder shares it; a tier folder is looked into
    assert saved_temperature(tmp_path / "model.keras") == 1.37 == saved_temperature(tmp_path)
    file.write_text('{"temperature": -1}')
    with pytest.raises(ValueError, match="positive"):
        saved_temperature(model)
    file.write_text("not json")
    with pytest.raises(ValueError, match="unreadable calibration file"):
        saved_temperature(model)


def test_a_temperature_applies_only_to_outputs_of_the_kind_it_was_fitted_on(tmp_path):
    model = tmp_path / "model.tflite"
    save_temperature(model, 1.5)  # no "tta" entry: fitted without TTA
    assert saved_temperature(model) == 1.5 and saved_temperature(model, tta=True) == 1.0
    save_temperature(model, 1.2, tta=True)
    assert saved_temperature(model, tta=True) == 1.2 and saved_temperature(model, tta=False) == 1.0


def test_the_serving_path_uses_the_same_rule(tmp_path, monkeypatch):
    from fercore.models import ensemble

    class Member:
        def predict(self, x):
            return np.full((len(x), 7), 1 / 7, np.float32)

    (tmp_path / "m.tflite").write_bytes(b"")
    ensemble.write_manifest(tmp_path, [{"file": "m.tflite"}], tta=True, name="t")
    monkeypatch.setattr(ensemble, "load_backend", lambda path: Member())
    save_temperature(tmp_path, 1.3, tta=False)  # fitted on plain outputs: not for this TTA tier
    assert ensemble.load_classifier(tmp_path).temperature == 1.0
    save_temperature(tmp_path, 1.3, tta=True)
    assert ensemble.load_classifier(tmp_path).temperature == 1.3
