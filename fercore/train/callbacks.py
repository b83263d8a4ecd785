"""The callbacks that make a run directory tell the truth while Keras trains.

:class:`RunLogger` counts the global step (the optimizer's iteration count: the one clock that
survives a stop and resume), appends metrics.csv rows, keeps status.json current, saves the
checkpoints, and ends training after the current batch when a stop is requested. Imported only
once TensorFlow is needed (it subclasses a Keras class).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

import fercore.models.architectures
from fercore import runs
from fercore.train.config import TrainConfig
from fercore.train.schedule import lr_of_step


def rng_variables(model: Any) -> list[Any]:
    """The model's random-stream states (dropout's seed generators): variables that Keras does not
    save with the weights, so a resumed run would draw other dropout masks without them."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def restore_rng(model: Any, saved: dict[str, Any] | None) -> None:
    """Put back the random-stream states a checkpoint recorded (checkpoints without them: nothing)."""
    states = (saved or {}).get("rng_state")
    variables = rng_variables(model)
    if isinstance(states, list) and len(states) == len(variables):
        for var, value in zip(variables, states, strict=True):
            var.assign(np.asarray(value, dtype=var.dtype))


def save_checkpoint(model: Any, file: Path, config: TrainConfig, epoch: int, step: int, best: float) -> None:
    """Save ``model`` atomically (a kill while saving leaves the previous file intact), with the
    config, the progress and the random-stream states that an exact resume needs."""
    rng = [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in rng_variables(model)]
    extra = {"epoch": epoch, "step": step, "best_val_accuracy": best, "rng_state": rng}
    fercore.models.architectures.save_model(model, file, {**config.to_dict(), **extra})


class RunLogger(keras.callbacks.Callback):
    """Writes metrics.csv, status.json and the checkpoints; honours stop requests."""

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        steps_per_epoch: int,
        stop_requested: Callable[[], bool],
        best: float = -1.0,
    ) -> None:
        super().__init__()
        self.run_dir, self.config, self.spe = run_dir, config, steps_per_epoch
        self.stop_requested = stop_requested
        self.best = best
        self.stopped = False
        self.step = 0
        self.t0 = time.time()
        self.epoch_t0 = self.t0
        self.epoch_step0 = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_t0, self.epoch_step0 = time.time(), self.step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.step += 1
        if self.stopped or self.stop_requested():
            self.stopped = self.model.stop_training = True
        in_epoch = (self.step - 1) % self.spe + 1
        if in_epoch % self.config.log_every and in_epoch != self.spe and not self.stopped:
            return
        epoch = (self.step - 1) // self.spe + 1
        if in_epoch % self.config.log_every == 0 or in_epoch == self.spe:
            runs.append_metrics(
                self.run_dir,
                {
                    "time": round(time.time() - self.t0, 2),
                    "kind": "batch",
                    "epoch": epoch,
                    "step": self.step,
                    "loss": logs.get("loss"),
                    "accuracy": logs.get("accuracy"),
                    "lr": lr_of_step(self.model.optimizer, self.step - 1),
                },
            )
        rate = (self.step - self.epoch_step0) / max(1e-6, time.time() - self.epoch_t0)
        remaining = self.config.epochs * self.spe - self.step
        runs.update_status(
            self.run_dir,
            state="stopping" if self.stopped else "running",
            epoch=epoch,
            epochs=self.config.epochs,
            step=self.step,
            steps_per_epoch=self.spe,
            eta=round(remaining / max(rate, 1e-6)),
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        completed = self.step // self.spe
        if self.step % self.spe:  # stopped mid-epoch: keep the weights; the epoch is not complete
            self._save(runs.LAST, completed)
            return
        val = logs.get("val_accuracy")
        if val is not None and val > self.best:
            self.best = float(val)
            self._save(runs.BEST, completed)
        # the row goes first: a resume drops rows past its checkpoint, so a kill in between is harmless
        runs.append_metrics(
            self.run_dir,
            {
                "time": round(time.time() - self.t0, 2),
                "kind": "epoch",
                "epoch": completed,
                "step": self.step,
                "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"),
                "val_loss": logs.get("val_loss"),
                "val_accuracy": val,
                "lr": lr_of_step(self.model.optimizer, self.step - 1),
            },
        )
        self._save(runs.LAST, completed)

    def _save(self, name: str, completed: int) -> None:
        save_checkpoint(self.model, self.run_dir / name, self.config, completed, self.step, self.best)
        if name == runs.LAST:  # status follows the checkpoint, never runs ahead of it
            runs.update_status(
                self.run_dir, completed_epochs=completed, checkpoint_step=self.step, best_val_accuracy=self.best
            )
