"""fercore.train.swa and SWA runs: the exported model holds the mean of the last epochs' weights
with BatchNorm statistics recomputed for it, and a stop and resume averages the same epochs."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest

from fercore import runs
from fercore.train import TrainConfig, fit
from fercore.train.swa import first_averaged_epoch, load_state, save_state
from tests.conftest import TINY, model_weights, stop_at

pytestmark = pytest.mark.slow  # every test here trains a model for real


def _config(class_folder: Path, **extra) -> TrainConfig:
    base = {"data": str(class_folder), "model_params": TINY, "epochs": 3, "batch_size": 32, "lr": 0.02}
    return TrainConfig.from_dict({**base, "warmup_epochs": 1, "log_every": 1, "swa_epochs": 2, **extra})


def _epoch_weights(into: dict[int, list[np.ndarray]]):
    """A callback that keeps the weights at the end of every epoch (1-based)."""
    import keras

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            into[epoch + 1] = [np.asarray(w) for w in self.model.get_weights()]

    return Keep()


def _bn_names(model) -> set[str]:
    from fercore.train.batch_norm import batch_norm_layers

    return {v.path for layer in batch_norm_layers(model) for v in layer.weights}


def test_first_averaged_epoch():
    base = TrainConfig(epochs=10)
    assert first_averaged_epoch(base) == 11  # off
    assert first_averaged_epoch(dataclasses.replace(base, swa_epochs=3)) == 8
    assert first_averaged_epoch(dataclasses.replace(base, swa_epochs=50)) == 1


def test_recompute_batch_norm_sets_the_mean_of_the_batch_statistics():
    import keras

    from fercore.train.swa import recompute_batch_norm

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(keras.layers.Rescaling(1 / 255)(inputs)))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 48, 48), dtype=np.uint8)
    images[64:] //= 4  # the last batch differs: a plain running average would not give the mean
    assert recompute_batch_norm(model, images, batch_size=32) == 3
    bn = model.get_layer("bn")
    batches = images.astype(np.float64).reshape(3, -1) / 255
    np.testing.assert_allclose(bn.moving_mean.numpy(), [batches.mean(axis=1).mean()], rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [batches.var(axis=1).mean()], rtol=1e-3)
    assert bn.momentum == pytest.approx(0.99)  # put back


def test_an_swa_run_exports_the_mean_of_its_last_epochs(tmp_path, class_folder, monkeypatch):
    exported = []
    monkeypatch.setattr(
        importlib.import_module("fercore.models.export"), "export_all", lambda src, *a, **k: exported.append(src)
    )
    seen: dict[int, list[np.ndarray]] = {}
    run = tmp_path / "run"
    status = fit(_config(class_folder), run, verbose=0, callbacks=[_epoch_weights(seen)])
    assert status["state"] == "finished" and status.get("export_error") is None
    assert status["swa_epochs_averaged"] == 2 and 0.0 <= status["swa_val_accuracy"] <= 1.0
    assert exported == [run / runs.SWA]  # the export is the averaged model, not the last epoch
    [row] = runs.summary_rows(tmp_path)  # the runs table shows it
    assert row[runs.AVERAGED_COLUMN] == status["swa_val_accuracy"]
    from fercore.models.architectures import load_keras_model

    model = load_keras_model(run / runs.SWA)
    bn = _bn_names(model)
    assert bn, "the tiny net has BatchNorm layers"
    compared = 0
    for var, got, w2, w3, last in zip(
        model.weights, model.get_weights(), seen[2], seen[3], model_weights(run / runs.LAST), strict=True
    ):
        if var.path in bn and "moving" in var.path:  # recomputed for the mean weights
            continue
        np.testing.assert_allclose(got, (w2 + w3) / 2, rtol=1e-5, atol=1e-6)
        compared += 1
        assert var.path in bn or not np.allclose(got, last)  # a real average, not the last epoch
    assert compared > 10
    moving = [got for var, got in zip(model.weights, model.get_weights(), strict=True) if "moving_mean" in var.path]
    last_moving = [w for var, w in zip(model.weights, seen[3], strict=True) if "moving_mean" in var.path]
    assert any(not np.allclose(a, b) for a, b in zip(moving, last_moving, strict=True))


def test_a_stopped_swa_run_resumes_to_the_same_mean(tmp_path, class_folder, no_export):
    config = _config(class_folder)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert fit(config, whole, verbose=0)["state"] == "finished"
    # 4 steps per epoch: stop in epoch 3, after epoch 2 entered the mean
    assert fit(config, parts, verbose=0, callbacks=[stop_at(parts, 10)])["state"] == "stopped"
    assert load_state(parts / runs.SWA_STATE)[:2] == (1, 2)
    assert fit(config, parts, resume=True, verbose=0)["state"] == "finished"
    assert load_state(parts / runs.SWA_STATE)[:2] == (2, 3)
    for a, b in zip(model_weights(parts / runs.SWA), model_weights(whole / runs.SWA), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_an_epoch_already_in_the_mean_is_not_counted_again(tmp_path, class_folder, no_export):
    """A kill after the mean was saved but before last.keras: the resumed run trains that epoch
    again, and the averager must skip it."""
    config = _config(class_folder, epochs=2, swa_epochs=1)
    run = tmp_path / "run"
    assert fit(config, run, verbose=0, callbacks=[stop_at(run, 6)])["state"] == "stopped"  # mid-epoch 2
    planted = [np.zeros_like(w) for w in model_weights(run / runs.LAST)]
    save_state(run / runs.SWA_STATE, 1, 2, planted)  # as if epoch 2 had ended and been averaged before the kill
    status = fit(config, run, resume=True, verbose=0)
    assert status["swa_epochs_averaged"] == 1
    assert load_state(run / runs.SWA_STATE)[:2] == (1, 2)
    assert all(not np.any(w) for w in load_state(run / runs.SWA_STATE)[2])


def test_swa_refuses_a_distributed_strategy(class_folder):
    """Refused with the config itself, so the CLI and the Train page say so before anything starts."""
    with pytest.raises(ValueError, match="swa_epochs needs the default strategy"):
        _config(class_folder, strategy="mirrored")
