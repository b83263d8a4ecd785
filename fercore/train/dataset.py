"""Training data: the split/subset/soft-label preparation and the tf.data pipelines.

The training pipeline is a pure function of (config, global step): epoch ``e`` visits the images
in the order of a permutation seeded by (seed, e), and batch ``s`` is augmented with the seed
(seed, s). A run resumed at step ``s`` therefore sees exactly the batches it would have seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fercore.data.dataset import stratified_subset
from fercore.labels import NUM_CLASSES
from fercore.train.augment import augment_batch, mixup_batch
from fercore.train.config import TrainConfig


def class_weight_vector(labels: np.ndarray) -> np.ndarray:
    """Balanced class weights (n / (k · count)), clipped to [0.2, 5]."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    w = len(labels) / (NUM_CLASSES * np.maximum(counts, 1))
    return np.clip(w, 0.2, 5.0).astype(np.float32)


def prepare_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load data → (train_x, train_targets, train_weights, val_x, val_y); no TensorFlow involved,
    so bad data fails in a second with a one-line DataError."""
    from fercore.data.audit import apply_relabel
    from fercore.data.loader import DataError, align_votes, load_dataset, load_ferplus_votes, soft_labels

    ds = load_dataset(config.data)
    if config.relabel:  # on the whole set: a row the file names must exist whatever the split
        ds = apply_relabel(ds, config.relabel)
    if config.val_split and config.val_split in ds.split_names:
        train = ds.split("train") if "train" in ds.split_names else ds
        val = ds.split(config.val_split)
    else:
        order = np.random.default_rng(config.seed).permutation(len(ds))
        n_val = max(1, int(len(ds) * config.val_fraction))
        val, train = ds.subset(np.sort(order[:n_val])), ds.subset(np.sort(order[n_val:]))
    if len(train) < 2:
        raise DataError(f"{config.data}: too few training images ({len(train)})")
    if config.subset:
        train = stratified_subset(train, limit=config.subset, seed=config.seed)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[train.labels]
    if config.ferplus and config.ferplus_weight > 0:
        rows, votes = load_ferplus_votes(config.ferplus)
        soft = soft_labels(align_votes(train, rows, votes))
        has = soft.sum(axis=1, keepdims=True) > 0
        mixed = (1 - config.ferplus_weight) * targets + config.ferplus_weight * soft
        targets = np.where(has, mixed, targets).astype(np.float32)
    if config.teacher and config.teacher_weight > 0:
        from fercore.train.teacher import teacher_targets

        taught = teacher_targets(config.teacher, train, config.teacher_temperature)
        has = taught.sum(axis=1, keepdims=True) > 0
        mixed = (1 - config.teacher_weight) * targets + config.teacher_weight * taught
        targets = np.where(has, mixed, targets).astype(np.float32)
    weights = np.ones(len(train), np.float32)
    if config.class_weights:
        weights = class_weight_vector(train.labels)[train.labels]
    return train.images, targets, weights, val.images, val.labels


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped; one short batch when n < batch_size)."""
    return max(1, n_images // batch_size)


def batch_indices(n_images: int, config: TrainConfig, start_step: int, end_step: int) -> np.ndarray:
    """(end_step - start_step, batch) image indices of global steps [start_step, end_step)."""
    batch = min(config.batch_size, n_images)
    spe = steps_per_epoch(n_images, config.batch_size)
    first, last = start_step // spe, max(start_step, end_step - 1) // spe
    epochs = [
        np.random.default_rng([config.seed, e]).permutation(n_images)[: spe * batch] for e in range(first, last + 1)
    ]
    steps = np.concatenate(epochs).reshape(-1, batch).astype(np.int32)
    return steps[start_step - first * spe : end_step - first * spe]


def crop_segments(config: TrainConfig, spe: int, start_step: int, end_step: int) -> list[tuple[int, int]]:
    """[start_step, end_step) cut where the crop side changes (``crop_epochs``): pieces whose
    batches all have one shape."""
    cut = config.crop_epochs * spe if config.augment.crop and config.crop_epochs else 0
    if start_step < cut < end_step:
        return [(start_step, cut), (cut, end_step)]
    return [(start_step, end_step)] if start_step < end_step else []


def make_train_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    config: TrainConfig,
    start_step: int = 0,
    end_step: int | None = None,
) -> Any:
    """Batched, augmented (x, y, sample_weight) of global steps [start_step, end_step) (default:
    to the end of the last epoch), in the order an uninterrupted run takes them. Each epoch is
    augmented as :meth:`TrainConfig.augment_of_epoch` says (crops for the first ``crop_epochs``)."""
    import tensorflow as tf

    spe = steps_per_epoch(len(images), config.batch_size)
    end = config.epochs * spe if end_step is None else end_step
    x_all, y_all, w_all = tf.constant(images), tf.constant(targets), tf.constant(weights)
    seed = config.seed

    def piece(first: int, last: int) -> Any:
        idx = batch_indices(len(images), config, first, last)
        steps = np.arange(first, first + len(idx), dtype=np.int64)
        aug = config.augment_of_epoch(first // spe)

        def load(step: Any, i: Any) -> tuple[Any, Any, Any]:
            key = tf.stack([tf.constant(seed, tf.int64), step])
            x = augment_batch(tf.cast(tf.gather(x_all, i), tf.float32)[..., None], aug, key)
            y, w = tf.gather(y_all, i), tf.gather(w_all, i)
            if aug.mixup > 0:
                x, y, w = mixup_batch(x, y, w, aug.mixup, key + 1)
            return x, y, w

        return tf.data.Dataset.from_tensor_slices((steps, idx)).map(load, num_parallel_calls=tf.data.AUTOTUNE)

    pieces = [piece(a, b) for a, b in crop_segments(config, spe, start_step, end)] or [piece(start_step, end)]
    ds = pieces[0]
    for more in pieces[1:]:  # a crop phase, then whole faces: the joined dataset's side is open
        ds = ds.concatenate(more)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> Any:
    """Batched (x, one-hot y) without augmentation."""
    import tensorflow as tf

    y = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    ds = tf.data.Dataset.from_tensor_slices((images[..., None].astype(np.float32), y))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
