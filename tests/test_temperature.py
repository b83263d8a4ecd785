"""fercore.inference.temperature: applying a temperature, its side file, and the one rule of when it
applies (serving and evaluation alike), on generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fercore.inference.temperature import (
    CALIBRATION_FILE,
    apply_temperature,
    calibration_file,
    load_calibration,
    save_temperature,
    saved_temperature,
)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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
