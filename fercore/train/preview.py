"""Know a model before training it: its layers, parameters and FLOPs, and how long an epoch will
take on this machine.

The epoch estimate comes from a short measured probe, not from FLOPs: the same FLOPs cost very
different times on different CPUs (AVX-512, bfloat16 support, core count, other work running), and
a person choosing between architectures wants minutes on *their* machine. The probe times a few
warm training steps of the real model, compiled as a run compiles it, on random 48×48 inputs held
in memory; data loading and augmentation are not timed (they run beside the steps in tf.data).
Everything here imports TensorFlow only when a model is built.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fercore.inference.preprocess import FACE_SIZE
from fercore.labels import NUM_CLASSES
from fercore.models.architectures import build_model, count_flops, get_model_builder
from fercore.train.config import Augment, TrainConfig
from fercore.train.precision import compute_precision

EVAL_BATCH = 256  # make_eval_dataset's batch: validation runs at this size whatever the training batch
_PROBE_LOCK = threading.Lock()  # two probes at once would each time the other's work


@dataclass(frozen=True)
class LayerRow:
    """One layer as a table row."""

    name: str
    type: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """What a model is before it is trained: its layers, size and cost per face."""

    name: str
    params: dict[str, Any]
    layers: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    flops: int  # per 48×48 face, forward pass (see fercore.models.architectures.count_flops)

    def rows(self) -> list[dict[str, Any]]:
        """The layer table as records (for a dataframe)."""
        return [
            {"layer": r.name, "type": r.type, "output shape": r.output_shape, "parameters": r.params}
            for r in self.layers
        ]


def builder_params(model_name: str) -> dict[str, Any]:
    """The keyword parameters of an architecture's builder and their defaults (the form's help and
    the check of typed parameters use the builder itself, so they never go stale)."""
    sig = inspect.signature(get_model_builder(model_name))
    return {n: p.default for n, p in sig.parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}


def check_params(model_name: str, params: Any) -> dict[str, Any]:
    """``params`` as a dict of the builder's parameters; ValueError for anything else.

    The builders accept and ignore unknown keywords (a saved config may carry old ones), so a typo
    such as ``width`` for ``widths`` would silently train the default model: refuse it here."""
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except ValueError as exc:
            raise ValueError(f"architecture parameters: not valid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise ValueError(f"architecture parameters: a JSON object, not {type(params).__name__}")
    known = builder_params(model_name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{model_name} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}")
    return dict(params)


def summarize(model: Any, params: dict[str, Any] | None = None) -> ModelSummary:
    """The summary of a built Keras model."""
    layers = tuple(
        LayerRow(layer.name, type(layer).__name__, _shape(layer), int(layer.count_params())) for layer in model.layers
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return ModelSummary(
        model.name, dict(params or {}), layers, int(model.count_params()), trainable, count_flops(model)
    )


def describe(model_name: str, params: dict[str, Any]) -> ModelSummary:
    """Build the architecture (no training, no compile) and summarize it."""
    params = check_params(model_name, params)
    return summarize(build_model(model_name, **params), params)


def _shape(layer: Any) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return "?"
    return " × ".join("?" if d is None else str(d) for d in tuple(shape)[1:])


def probe_seconds_per_step(
    model_name: str,
    params: dict[str, Any],
    batch_size: int,
    precision: str = "auto",
    steps: int = 4,
    warmup: int = 2,
    training: bool = True,
    augment: Augment | None = None,
) -> float:
    """Median seconds of one warm step at ``batch_size`` on this machine, right now.

    ``training``: a training step as a run takes it: the model compiled as a run compiles it
    (optimizer, loss, precision) and fed by ``model.fit`` from the run's input pipeline
    (:func:`fercore.train.dataset.make_train_dataset`, with the recipe's ``augment``, crops included)
    on generated faces; a step counts from the end of the one before, so waiting for augmented
    batches counts, as it does in a run. Else a validation step (forward pass and metrics, whole
    faces). The first ``warmup`` steps are not timed (tracing, memory allocation, the pipeline
    filling). Probes run one at a time in this process."""
    if batch_size < 1 or steps < 1 or warmup < 0:
        raise ValueError("batch_size and steps must be ≥ 1, warmup ≥ 0")
    params = check_params(model_name, params)
    augment = augment if augment is not None else Augment.off()
    config = TrainConfig(
        model=model_name, model_params=params, batch_size=batch_size, precision=precision, augment=augment, epochs=1
    )
    from fercore.train.fit import build_for_training

    with _PROBE_LOCK, compute_precision(precision):  # restores this thread's policy for its next model
        model = build_for_training(config)
        times = (
            _fit_step_times(model, config, warmup + steps)
            if training
            else _eval_step_times(model, config, warmup + steps)
        )
    return float(np.median(times[warmup:]))


def _fit_step_times(model: Any, config: TrainConfig, steps: int) -> list[float]:
    """Seconds of each of ``steps`` training steps of ``model.fit`` on generated faces through the
    run's input pipeline, each from the end of the step before (the first from the start of fit)."""
    import keras

    from fercore.train.dataset import make_train_dataset

    rng = np.random.default_rng(0)
    n = config.batch_size * steps
    faces = rng.integers(0, 256, (n, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, n)]
    dataset = make_train_dataset(faces, targets, np.ones(n, np.float32), config)
    times: list[float] = []
    marks = [0.0]

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            marks[0] = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            times.append(now - marks[0])
            marks[0] = now

    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[StepTimer()], shuffle=False)
    return times


def _eval_step_times(model: Any, config: TrainConfig, steps: int) -> list[float]:
    """Seconds of each of ``steps`` validation steps (``test_on_batch``) on one batch of whole faces."""
    import keras

    rng = np.random.default_rng(0)
    n = config.batch_size
    x = keras.ops.convert_to_tensor(rng.uniform(0, 255, (n, FACE_SIZE, FACE_SIZE, 1)).astype(np.float32))
    y = keras.ops.convert_to_tensor(np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, n)])
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.test_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return times


def epoch_estimate(
    seconds_per_step: float,
    n_train: int,
    batch_size: int,
    n_val: int = 0,
    seconds_per_val_step: float = 0.0,
    val_batch: int = EVAL_BATCH,
) -> float:
    """Seconds of one epoch: its training steps (full batches, as the run takes them) plus the
    validation pass over ``n_val`` images at ``val_batch``."""
    from fercore.train.dataset import steps_per_epoch

    if not (math.isfinite(seconds_per_step) and seconds_per_step >= 0 and n_train >= 0 and n_val >= 0):
        raise ValueError("epoch_estimate needs finite non-negative times and counts")
    train = steps_per_epoch(n_train, batch_size) * seconds_per_step if n_train else 0.0
    val = math.ceil(n_val / val_batch) * seconds_per_val_step if n_val else 0.0
    return train + val


def probe_sides(
    config: TrainConfig, sides: Iterable[int] | None = None, probe: Callable[..., float] | None = None
) -> dict[int, float]:
    """Seconds per training step of ``config``'s model at each input side (crop px, 0 = whole faces;
    default: the sides the run trains on, :meth:`TrainConfig.epochs_per_crop`), each timed by ``probe``
    (default :func:`probe_seconds_per_step`) with the recipe's augmentation at that side."""
    probe = probe or probe_seconds_per_step
    sides = config.epochs_per_crop() if sides is None else sides
    return {
        side: probe(
            config.model,
            config.model_params,
            config.batch_size,
            config.precision,
            training=True,
            augment=replace(config.augment, crop=side),
        )
        for side in sides
    }


def run_estimate(
    config: TrainConfig, seconds_per_step: dict[int, float], n_train: int, n_val: int, seconds_per_val_step: float
) -> float:
    """Seconds of a whole run of ``config``: each input side's epochs (:meth:`TrainConfig.epochs_per_crop`:
    crops first, then whole faces) at that side's probed seconds per training step, plus validation."""
    sides = config.epochs_per_crop()
    missing = sorted(set(sides) - set(seconds_per_step))
    if missing:
        raise ValueError(f"no probed step time for input side(s) {missing} (0 = whole faces)")
    return sum(
        n * epoch_estimate(seconds_per_step[side], n_train, config.batch_size, n_val, seconds_per_val_step)
        for side, n in sides.items()
    )


def training_images(config: TrainConfig) -> tuple[int, int]:
    """(training, validation) image counts of a config's data: the split, subset and relabelling of
    :func:`fercore.train.dataset.prepare_data` itself, so the estimate counts what a run will see."""
    from fercore.train.dataset import prepare_data

    tx, _, _, vx, _ = prepare_data(config)
    return len(tx), len(vx)
