"""Stochastic weight averaging (SWA): the mean of the weights at the end of the last
``swa_epochs`` epochs, with the BatchNorm statistics then recomputed for those mean weights
(averaged weights make activations whose statistics none of the averaged models had).

The running mean is saved after every averaged epoch (``runs.SWA_STATE``, atomically, before
the epoch's ``last.keras``), with the number of the last epoch it holds: a run killed and resumed
trains that epoch again and does not count it twice. Imported only once TensorFlow is needed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fercore import runs
from fercore.train.batch_norm import batch_norm_layers
from fercore.train.config import TrainConfig


def first_averaged_epoch(config: TrainConfig) -> int:
    """The first epoch (1-based) whose end weights enter the mean; past ``epochs`` when SWA is off."""
    if config.swa_epochs <= 0:
        return config.epochs + 1
    return max(1, config.epochs - config.swa_epochs + 1)


def load_state(file: Path) -> tuple[int, int, list[np.ndarray]]:
    """(epochs averaged, last epoch averaged, mean weights) from ``file``; (0, 0, []) if absent."""
    if not file.exists():
        return 0, 0, []
    with np.load(file) as z:
        count, epoch = int(z["count"]), int(z["epoch"])
        mean = [z[f"w{i}"] for i in range(int(z["n_weights"]))]
    return count, epoch, mean


def save_state(file: Path, count: int, epoch: int, mean: list[np.ndarray]) -> None:
    """Write the running mean atomically: a kill while writing leaves the previous file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".swa-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            arrays: dict[str, Any] = {f"w{i}": w for i, w in enumerate(mean)}
            np.savez(fh, count=count, epoch=epoch, n_weights=len(mean), **arrays)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WeightAverager(keras.callbacks.Callback):
    """Adds the weights at the end of every complete epoch from :func:`first_averaged_epoch` on to
    the running mean in ``run_dir``; a resume reads the mean from ``source`` (default ``run_dir``)."""

    def __init__(self, run_dir: Path, config: TrainConfig, steps_per_epoch: int, source: Path | None = None) -> None:
        super().__init__()
        self.file = run_dir / runs.SWA_STATE
        self.first = first_averaged_epoch(config)
        self.spe = steps_per_epoch
        self.count, self.epoch, self.mean = load_state((source or run_dir) / runs.SWA_STATE)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        completed, partial = divmod(step, self.spe)
        if partial or completed < self.first or completed <= self.epoch:
            return  # mid-epoch stop, not yet averaging, or an epoch the mean already holds
        weights = [np.asarray(w, np.float64) for w in self.model.get_weights()]
        if not self.mean:
            self.mean = weights
        else:
            self.mean = [m + (w - m) / (self.count + 1) for m, w in zip(self.mean, weights, strict=True)]
        self.count, self.epoch = self.count + 1, completed
        save_state(self.file, self.count, self.epoch, self.mean)


def recompute_batch_norm(model: Any, images: np.ndarray, batch_size: int = 256) -> int:
    """Replace every BatchNorm layer's moving mean and variance by their average over ``images``
    (uint8 faces, N×48×48) passed through ``model`` in training mode; returns the batches used.

    With the momentum at 0 a training-mode pass leaves exactly its batch's statistics in the
    moving ones; they are read after each batch and their plain mean is set at the end. The pass
    is one traced function (an eager pass over the training set took about a minute)."""
    import tensorflow as tf

    layers = list(batch_norm_layers(model))
    if not layers or len(images) == 0:
        return 0
    saved = [layer.momentum for layer in layers]
    sums = [(np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)) for layer in layers]
    starts = range(0, len(images), batch_size)
    try:
        for layer in layers:
            layer.momentum = 0.0  # read when the pass is traced, below
        forward = tf.function(lambda x: model(x, training=True), reduce_retracing=True)
        for start in starts:
            forward(images[start : start + batch_size, ..., None].astype(np.float32))
            for (mean, var), layer in zip(sums, layers, strict=True):
                mean += keras.ops.convert_to_numpy(layer.moving_mean)
                var += keras.ops.convert_to_numpy(layer.moving_variance)
        for (mean, var), layer in zip(sums, layers, strict=True):
            layer.moving_mean.assign(np.asarray(mean / len(starts), layer.moving_mean.dtype))
            layer.moving_variance.assign(np.asarray(var / len(starts), layer.moving_variance.dtype))
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return len(starts)


def averaged_model(model: Any, run_dir: Path, images: np.ndarray) -> tuple[Any, int]:
    """``model`` with the run's mean weights and recomputed BatchNorm statistics, and how many
    epochs were averaged. Raises FileNotFoundError when the run holds no mean."""
    count, _, mean = load_state(run_dir / runs.SWA_STATE)
    if not count:
        raise FileNotFoundError(f"{run_dir / runs.SWA_STATE}: no averaged weights")
    model.set_weights([m.astype(w.dtype) for m, w in zip(mean, model.get_weights(), strict=True)])
    recompute_batch_norm(model, images)
    return model, count
