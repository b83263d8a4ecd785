"""Training: ``fit(config, run_dir)`` — tf.data pipeline with on-graph augmentation, callbacks,
checkpoints, clean stop on request or SIGTERM, resume, and tf.distribute strategies.
"""

from __future__ import annotations

import math
import os
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fercore import runs
from fercore.labels import NUM_CLASSES


@dataclass
class Augment:
    """On-graph augmentation switches and strengths."""

    flip: bool = True
    rotation: float = 10.0  # degrees, ±
    shift: float = 0.1  # fraction of the side, ±
    zoom: float = 0.1  # ±
    brightness: float = 0.2  # ± fraction of full scale
    contrast: float = 0.2  # ±
    erasing: float = 0.5  # probability of one random rectangle per image
    mixup: float = 0.0  # Beta(a, a) mixing of pairs; 0 = off


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run's config.json and in the model."""

    data: str = ""
    model: str = "fernet"
    model_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov) | adam | adamw
    lr: float = 0.04
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | constant | plateau
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    class_weights: bool = False
    ferplus: str = ""  # path of ferplus_votes.csv for soft labels
    ferplus_weight: float = 0.0  # 0 = FER2013 labels only, 1 = FER+ vote shares only
    augment: Augment = field(default_factory=Augment)
    subset: int = 0  # use only N training images (stratified); 0 = all
    val_split: str = "test"  # split used for validation/model selection
    val_fraction: float = 0.1  # held out from train when the data has no val_split
    early_stopping: int = 0  # patience in epochs; 0 = off
    seed: int = 1
    init_from: str = ""  # a .keras model to fine-tune
    strategy: str = "default"  # default | mirrored | multiworker
    log_every: int = 20  # batches between metrics.csv rows
    mixed_precision: bool = False  # bfloat16 compute (fast on CPUs with AMX/AVX512-BF16)
    init_from_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a (possibly partial) dict; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        aug = d.pop("augment", {}) or {}
        if isinstance(aug, Augment):
            aug = asdict(aug)
        bad = set(aug) - {f.name for f in fields(Augment)}
        if bad:
            raise ValueError(f"unknown augment keys: {', '.join(sorted(bad))}")
        return cls(augment=Augment(**aug), **d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Data pipeline


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of about ``n`` samples keeping class proportions."""
    rng = np.random.default_rng(seed)
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(n * len(idx) / len(labels))))
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def class_weight_vector(labels: np.ndarray) -> np.ndarray:
    """Balanced class weights (n / (k · count)), clipped to [0.2, 5]."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    w = len(labels) / (NUM_CLASSES * np.maximum(counts, 1))
    return np.clip(w, 0.2, 5.0).astype(np.float32)


def augment_batch(images, aug: Augment, seed: int | None = None):
    """Randomly transform a float batch (b, 48, 48, 1) in 0–255, on the TF graph."""
    import tensorflow as tf

    b = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    x = images
    if aug.flip:
        flip = tf.random.uniform([b, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if aug.rotation or aug.shift or aug.zoom:
        ang = tf.random.uniform([b], -1.0, 1.0) * (aug.rotation * math.pi / 180.0)
        scale = 1.0 + tf.random.uniform([b], -1.0, 1.0) * aug.zoom
        tx = tf.random.uniform([b], -1.0, 1.0) * aug.shift * size
        ty = tf.random.uniform([b], -1.0, 1.0) * aug.shift * size
        # output→input mapping: p_in = R(-ang)/scale · (p_out - c) + c + t
        cos, sin = tf.cos(ang) / scale, tf.sin(ang) / scale
        c = (size - 1.0) / 2.0
        a0, a1 = cos, -sin
        b0, b1 = sin, cos
        a2 = c - a0 * c - a1 * c + tx
        b2 = c - b0 * c - b1 * c + ty
        zeros = tf.zeros_like(a0)
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.shape(x)[1:3],
            fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
        )
    if aug.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        factor = 1.0 + tf.random.uniform([b, 1, 1, 1], -aug.contrast, aug.contrast)
        x = (x - mean) * factor + mean
    if aug.brightness:
        x = x + tf.random.uniform([b, 1, 1, 1], -aug.brightness, aug.brightness) * 255.0
    if aug.erasing:
        h = tf.shape(x)[1]
        side = tf.cast(size, tf.int32)
        eh = tf.random.uniform([b], side // 6, side // 3 + 1, dtype=tf.int32)
        ew = tf.random.uniform([b], side // 6, side // 3 + 1, dtype=tf.int32)
        ey = tf.cast(tf.random.uniform([b]) * tf.cast(h - eh, tf.float32), tf.int32)
        ex = tf.cast(tf.random.uniform([b]) * tf.cast(side - ew, tf.float32), tf.int32)
        rows = tf.range(h)[None, :, None]
        cols = tf.range(side)[None, None, :]
        inside = (
            (rows >= ey[:, None, None]) & (rows < (ey + eh)[:, None, None])
            & (cols >= ex[:, None, None]) & (cols < (ex + ew)[:, None, None])
        )
        apply = tf.random.uniform([b, 1, 1]) < aug.erasing
        mask = tf.cast(inside & apply, tf.float32)[..., None]
        noise = tf.random.uniform(tf.shape(x), 0.0, 255.0)
        x = x * (1.0 - mask) + noise * mask
    return tf.clip_by_value(x, 0.0, 255.0)


def mixup_batch(x, y, w, alpha: float):
    """Mix each sample with a shuffled partner: λ ~ Beta(α, α)."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    g1 = tf.random.gamma([b], alpha)
    g2 = tf.random.gamma([b], alpha)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(b))
    lx = lam[:, None, None, None]
    ly = lam[:, None]
    x = lx * x + (1.0 - lx) * tf.gather(x, perm)
    y = ly * y + (1.0 - ly) * tf.gather(y, perm)
    w = lam * w + (1.0 - lam) * tf.gather(w, perm)
    return x, y, w


def make_train_dataset(images: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                       config: TrainConfig):
    """Cached, shuffled, batched, augmented tf.data pipeline of (x, y, sample_weight)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images[..., None], targets, weights))
    ds = ds.shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size, drop_remainder=len(images) >= config.batch_size)
    aug = config.augment

    def transform(x, y, w):
        x = augment_batch(tf.cast(x, tf.float32), aug)
        if aug.mixup > 0:
            x, y, w = mixup_batch(x, y, w, aug.mixup)
        return x, y, w

    return ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int = 256):
    """Batched (x, one-hot y) without augmentation."""
    import tensorflow as tf

    y = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    ds = tf.data.Dataset.from_tensor_slices((images[..., None].astype(np.float32), y))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------
# Schedules and callbacks


def lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Learning rate at a global step for the non-plateau schedules."""
    total = max(1, config.epochs * steps_per_epoch)
    warm = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "constant" or config.schedule == "plateau":
        return config.lr
    if step < warm:
        return config.lr * (0.1 + 0.9 * step / max(1, warm))
    progress = min(1.0, (step - warm) / max(1, total - warm))
    floor = config.lr * (1e-3 if config.schedule == "onecycle" else 1e-2)
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _make_callbacks(run_dir: Path, config: TrainConfig, steps_per_epoch: int, stopper):
    import keras

    class RunLogger(keras.callbacks.Callback):
        """Writes metrics.csv and status.json; checks for stop requests; sets the LR."""

        def __init__(self):
            super().__init__()
            self.t0 = time.time()
            self.epoch = 0
            self.best = -1.0

        def _lr(self) -> float:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

        def on_train_batch_begin(self, batch, logs=None):
            if config.schedule != "plateau":
                step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
                self.model.optimizer.learning_rate.assign(lr_at(step, steps_per_epoch, config))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_t0 = time.time()
            self.batches_done = 0

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.batches_done = batch + 1
            if stopper.requested or runs.stop_requested(run_dir):
                stopper.requested = True
                self.model.stop_training = True
            if (batch + 1) % config.log_every and batch + 1 != steps_per_epoch:
                return
            done = self.epoch * steps_per_epoch + batch + 1
            elapsed = time.time() - self.t0
            rate = (batch + 1) / max(1e-6, time.time() - self.epoch_t0)
            remaining = config.epochs * steps_per_epoch - done
            runs.append_metrics(run_dir, {
                "time": round(elapsed, 2), "kind": "batch", "epoch": self.epoch + 1, "step": done,
                "loss": logs.get("loss"), "accuracy": logs.get("accuracy"), "lr": self._lr(),
            })
            runs.update_status(run_dir, state="stopping" if stopper.requested else "running",
                               epoch=self.epoch + 1, epochs=config.epochs, step=done,
                               steps_per_epoch=steps_per_epoch, eta=round(remaining / max(rate, 1e-6)))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if stopper.requested and self.batches_done < steps_per_epoch:
                # stopped mid-epoch: keep the weights, but the epoch is not complete
                models_save(self.model, run_dir / runs.LAST, config, epoch, self.best)
                runs.update_status(run_dir, completed_epochs=epoch)
                return
            val = logs.get("val_accuracy")
            if val is not None and val > self.best:
                self.best = float(val)
                models_save(self.model, run_dir / runs.BEST, config, epoch + 1, self.best)
            models_save(self.model, run_dir / runs.LAST, config, epoch + 1, self.best)
            runs.append_metrics(run_dir, {
                "time": round(time.time() - self.t0, 2), "kind": "epoch", "epoch": epoch + 1,
                "step": (epoch + 1) * steps_per_epoch, "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"), "val_loss": logs.get("val_loss"),
                "val_accuracy": val, "lr": self._lr(),
            })
            runs.update_status(run_dir, completed_epochs=epoch + 1, best_val_accuracy=self.best)

    cbs = [RunLogger()]
    if config.schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2,
                                                     min_lr=1e-6))
    if config.early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                 patience=config.early_stopping))
    cbs.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD),
                                           write_graph=False, update_freq="epoch"))
    return cbs


def models_save(model, file: Path, config: TrainConfig, epoch: int, best: float) -> None:
    from fercore.model import save_model

    save_model(model, file, {**config.to_dict(), "epoch": epoch, "best_val_accuracy": best})


class _Stopper:
    """Set by SIGTERM/SIGINT or a STOP file; training ends after the current batch."""

    def __init__(self):
        self.requested = False

    def install(self) -> None:
        def handler(signum, frame):
            self.requested = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not in the main thread
                pass


# ----------------------------------------------------------------------------------------------
# Entry


def get_strategy(name: str):
    """A tf.distribute strategy: default, mirrored (all local devices) or multiworker (TF_CONFIG)."""
    import tensorflow as tf

    if name in ("", "default", "none"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in (gpus or cpus)])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored or multiworker")


def prepare_data(config: TrainConfig):
    """Load data → (train_x, train_targets, train_weights, val_x, val_y)."""
    from fercore.data import (DataError, align_votes, load_dataset, load_ferplus_votes,
                              soft_labels)

    ds = load_dataset(config.data)
    if config.val_split and config.val_split in ds.split_names:
        train, val = ds.split("train") if "train" in ds.split_names else ds, ds.split(config.val_split)
    else:
        rng = np.random.default_rng(config.seed)
        order = rng.permutation(len(ds))
        n_val = max(1, int(len(ds) * config.val_fraction))
        val, train = ds.subset(np.sort(order[:n_val])), ds.subset(np.sort(order[n_val:]))
    if len(train) < 2:
        raise DataError(f"{config.data}: too few training images ({len(train)})")
    if config.subset:
        train = train.subset(stratified_subset(train.labels, config.subset, config.seed))
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[train.labels]
    if config.ferplus and config.ferplus_weight > 0:
        rows, votes = load_ferplus_votes(config.ferplus)
        soft = soft_labels(align_votes(train, rows, votes))
        has = soft.sum(axis=1, keepdims=True) > 0
        mixed = (1 - config.ferplus_weight) * targets + config.ferplus_weight * soft
        targets = np.where(has, mixed, targets).astype(np.float32)
    weights = np.ones(len(train), np.float32)
    if config.class_weights:
        weights = class_weight_vector(train.labels)[train.labels]
    return train.images, targets, weights, val.images, val.labels


def build_for_training(config: TrainConfig, resume_from: Path | None):
    """Build (or load) and compile the model inside the current strategy scope."""
    import keras

    from fercore.model import build_model, load_keras_model

    if resume_from is not None:
        return keras.models.load_model(resume_from, compile=True)
    if config.init_from:
        model = load_keras_model(config.init_from)
    else:
        model = build_model(config.model, **config.model_params)
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(config.lr, momentum=0.9, nesterov=True,
                                   weight_decay=config.weight_decay or None)
    elif config.optimizer == "adam":
        opt = keras.optimizers.Adam(config.lr)
    elif config.optimizer == "adamw":
        opt = keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose sgd, adam or adamw")
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def fit(config: TrainConfig, run_dir: str | Path, resume: bool = False, verbose: int = 1) -> dict:
    """Train according to ``config`` into ``run_dir``; returns the final status dict.

    With ``resume`` the run continues from ``checkpoints/last.keras`` (optimizer state included)
    at the epoch after the last completed one. A STOP file or SIGTERM ends training after the
    current batch: the last checkpoint is saved and the state becomes ``stopped``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stopper = _Stopper()
    stopper.install()
    if resume:  # the request that stopped it is spent; a fresh run honours an early Stop
        runs.clear_stop(run_dir)
    start_epoch = 0
    resume_from = None
    if resume:
        status = runs.read_status(run_dir)
        if not (run_dir / runs.LAST).exists():
            raise FileNotFoundError(f"{run_dir}: nothing to resume (no {runs.LAST})")
        resume_from = run_dir / runs.LAST
        start_epoch = int(status.get("completed_epochs", 0))
    runs.write_config(run_dir, config.to_dict())
    if not resume:  # a fresh run starts from a clean status (a launcher may have written one)
        runs.write_json_atomic(runs.path(run_dir, runs.STATUS), {})
    runs.update_status(run_dir, state="starting", pid=os.getpid(), started=time.time(), error=None,
                       finished=None, epoch=start_epoch, epochs=config.epochs)
    try:
        tx, ty, tw, vx, vy = prepare_data(config)  # bad data fails here, before TensorFlow loads
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(config.seed)
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        strategy = get_strategy(config.strategy)
        if strategy.num_replicas_in_sync > 1:
            # every replica must get an equal share of each batch: trim the validation set to a
            # multiple of the replica count (eval batches of 256 then always split evenly)
            keep = len(vx) - len(vx) % strategy.num_replicas_in_sync
            vx, vy = vx[:keep], vy[:keep]
        global_batch = config.batch_size
        steps_per_epoch = max(1, len(tx) // global_batch)
        with strategy.scope():
            model = build_for_training(config, resume_from)
        train_ds = make_train_dataset(tx, ty, tw, config)
        val_ds = make_eval_dataset(vx, vy)
        if config.strategy in ("mirrored", "multiworker"):
            opts = tf.data.Options()
            opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            train_ds, val_ds = train_ds.with_options(opts), val_ds.with_options(opts)
        callbacks = _make_callbacks(run_dir, config, steps_per_epoch, stopper)
        if resume_from is not None:
            prior = runs.read_status(run_dir).get("best_val_accuracy")
            if prior is not None:
                callbacks[0].best = float(prior)
        runs.update_status(run_dir, state="running", n_train=int(len(tx)), n_val=int(len(vx)),
                           steps_per_epoch=steps_per_epoch, params=int(model.count_params()))
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=start_epoch,
                  callbacks=callbacks, verbose=verbose)
        if stopper.requested:
            return runs.update_status(run_dir, state="stopped", finished=time.time())
        export_error = _export_final(run_dir)
        return runs.update_status(run_dir, state="finished", finished=time.time(),
                                  export_error=export_error)
    except BaseException as exc:  # record why, then let the caller see it
        runs.update_status(run_dir, state="failed", finished=time.time(),
                           error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc()[-4000:])
        raise


def _export_final(run_dir: Path) -> str | None:
    """Export the best checkpoint (or the last one) in every format into ``export/``.

    Returns None, or the reason the export failed (training itself still counts as finished:
    the checkpoints are there and ``python -m training.export`` can be retried).
    """
    from fercore.export import export_all

    best = run_dir / runs.BEST
    src = best if best.exists() else run_dir / runs.LAST
    try:
        export_all(src, run_dir / runs.EXPORT, check=False)
    except Exception as exc:  # noqa: BLE001 - reported in status.json, checkpoints are kept
        return f"{type(exc).__name__}: {exc}"
    return None

