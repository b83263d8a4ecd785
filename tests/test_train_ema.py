"""EMA runs (``ema`` in fercore.train.config, finished in fercore.train.fit): the run trains on its raw
weights, exports the moving average of them with BatchNorm statistics recomputed for it, and a stop
and resume ends with the same average as a run that was never stopped."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from fercore import runs
from fercore.train import TrainConfig, fit
from tests.conftest import TINY, model_weights, stop_at

pytestmark = pytest.mark.slow  # every test here trains a model for real

MOMENTUM = 0.8  # a short memory, so that four-step epochs move the average visibly


def _config(class_folder: Path, **extra) -> TrainConfig:
    base = {"data": str(class_folder), "model_params": TINY, "epochs": 2, "batch_size": 32, "lr": 0.02}
    return TrainConfig.from_dict({**base, "warmup_epochs": 1, "log_every": 1, "ema": MOMENTUM, **extra})


def _batch_weights(into: list[list[np.ndarray]]):
    """A callback that keeps the trainable weights after every step."""
    import keras

    class Keep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            into.append([np.asarray(w) for w in self.model.trainable_weights])

    return Keep()


def test_an_ema_run_trains_raw_weights_and_exports_their_moving_average(tmp_path, class_folder, monkeypatch):
    exported = []
    monkeypatch.setattr(
        importlib.import_module("fercore.models.export"), "export_all", lambda src, *a, **k: exported.append(src)
    )
    steps: list[list[np.ndarray]] = []
    run = tmp_path / "run"
    status = fit(_config(class_folder), run, verbose=0, callbacks=[_batch_weights(steps)])
    assert status["state"] == "finished" and status.get("export_error") is None
    assert 0.0 <= status["ema_val_accuracy"] <= 1.0
    assert exported == [run / runs.EMA] and runs.exported_checkpoint(run) == (run / runs.EMA, "ema")
    [row] = runs.summary_rows(tmp_path)
    assert row[runs.AVERAGED_COLUMN] == status["ema_val_accuracy"]

    expected = steps[0]  # the first step's weights, then w ← m·average + (1 − m)·w after each step
    for weights in steps[1:]:
        expected = [MOMENTUM * a + (1 - MOMENTUM) * w for a, w in zip(expected, weights, strict=True)]
    from fercore.models.architectures import load_keras_model

    averaged = load_keras_model(run / runs.EMA)
    last = load_keras_model(run / runs.LAST)
    assert len(steps) == 2 * status["steps_per_epoch"]
    for got, want, raw, final in zip(
        averaged.trainable_weights, expected, last.trainable_weights, steps[-1], strict=True
    ):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(raw), final)  # the checkpoint kept the raw weights
    moved = [not np.allclose(np.asarray(a), np.asarray(r)) for a, r in zip(averaged.weights, last.weights, strict=True)]
    assert sum(moved) > 10  # a real average, not the last weights
    pairs = zip(averaged.weights, last.weights, strict=True)
    moving = [(np.asarray(a), np.asarray(r)) for a, r in pairs if "moving_mean" in a.path]
    assert moving and any(not np.allclose(a, r) for a, r in moving)  # statistics recomputed for the average


def test_a_stopped_ema_run_resumes_to_the_same_average(tmp_path, class_folder, no_export):
    """Stopped mid-epoch, the resumed run first finishes that epoch in a fit call of its own: the
    average must not be copied into the weights there, and it must come back from the checkpoint."""
    config = _config(class_folder)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert fit(config, whole, verbose=0)["state"] == "finished"
    assert fit(config, parts, verbose=0, callbacks=[stop_at(parts, 6)])["state"] == "stopped"  # 4 steps/epoch
    assert not (parts / runs.EMA).exists()
    assert fit(config, parts, resume=True, verbose=0)["state"] == "finished"
    for name in (runs.LAST, runs.EMA):
        for a, b in zip(model_weights(parts / name), model_weights(whole / name), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
