"""fercore.train.augment and .dataset: augmentation, subsets, and a data order that a resumed run repeats."""

from __future__ import annotations

import dataclasses

import numpy as np

from fercore.data.dataset import stratified_indices
from fercore.train import Augment, TrainConfig, class_weight_vector
from fercore.train.dataset import batch_indices, make_train_dataset, steps_per_epoch

OFF = dataclasses.asdict(Augment.off())


def test_augment_off_is_identity_and_flip_only_mirrors():
    import tensorflow as tf

    from fercore.train import augment_batch

    x = np.random.default_rng(0).integers(0, 255, (16, 48, 48, 1)).astype(np.float32)
    same = augment_batch(tf.constant(x), Augment(**OFF)).numpy()
    np.testing.assert_array_equal(same, x)
    flipped = augment_batch(tf.constant(x), Augment(**{**OFF, "flip": True})).numpy()
    mirrored = [np.array_equal(f, o[:, ::-1]) for f, o in zip(flipped, x, strict=True)]
    unchanged = [np.array_equal(f, o) for f, o in zip(flipped, x, strict=True)]
    assert all(m or u for m, u in zip(mirrored, unchanged, strict=True)) and any(mirrored) and any(unchanged)
    full = augment_batch(tf.constant(x), Augment()).numpy()
    assert full.shape == x.shape and full.min() >= 0 and full.max() <= 255
    assert not np.array_equal(full, x)


def test_augment_is_a_function_of_its_seed():
    import tensorflow as tf

    from fercore.train import augment_batch

    x = tf.constant(np.random.default_rng(1).integers(0, 255, (8, 48, 48, 1)).astype(np.float32))
    a = augment_batch(x, Augment(), tf.constant([3, 7])).numpy()
    b = augment_batch(x, Augment(), tf.constant([3, 7])).numpy()
    c = augment_batch(x, Augment(), tf.constant([3, 8])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_crop_is_the_centre_of_the_same_augmentation():
    import tensorflow as tf

    from fercore.train import augment_batch

    x = tf.constant(np.random.default_rng(2).integers(0, 255, (8, 48, 48, 1)).astype(np.float32))
    shifted = {**OFF, "flip": True, "shift": 0.1, "rotation": 10.0}
    whole = augment_batch(x, Augment(**shifted), tf.constant([5, 9])).numpy()
    crop = augment_batch(x, Augment(**{**shifted, "crop": 40}), tf.constant([5, 9])).numpy()
    assert crop.shape == (8, 40, 40, 1)
    np.testing.assert_array_equal(crop, whole[:, 4:44, 4:44])
    # off (0) or the whole side leaves the size alone
    assert augment_batch(x, Augment(**{**OFF, "crop": 48})).shape == (8, 48, 48, 1)


PINNED_TAIL = [92, 94, 97, 98, 99]  # stratified_indices(labels, 50, seed=0)[-5:] since training first used it


def test_class_weights_and_subset_keep_proportions():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    w = class_weight_vector(labels)
    assert w[2] > w[1] > w[0]
    idx = stratified_indices(labels, 50, seed=0)
    assert np.bincount(labels[idx]).tolist() == [35, 10, 5]
    # --subset's faces for a seed are part of a run (a resumed run trains on the same ones): pinned
    assert idx[-5:].tolist() == PINNED_TAIL


def test_each_epoch_visits_every_image_once_in_a_seeded_order():
    cfg = TrainConfig(batch_size=32, epochs=3, seed=5)
    spe = steps_per_epoch(140, 32)
    idx = batch_indices(140, cfg, 0, 3 * spe)
    assert idx.shape == (12, 32) and spe == 4
    for e in range(3):
        assert len(np.unique(idx[e * spe : (e + 1) * spe])) == 128  # the remainder of 12 is dropped
    assert not np.array_equal(idx[:spe], idx[spe : 2 * spe])
    np.testing.assert_array_equal(batch_indices(140, cfg, 5, 10), idx[5:10])
    assert batch_indices(10, TrainConfig(batch_size=32, epochs=2), 0, 2).shape == (2, 10)  # one short batch


def test_a_pipeline_started_mid_run_yields_the_same_batches():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (70, 48, 48)).astype(np.uint8)
    targets = np.eye(7, dtype=np.float32)[np.arange(70) % 7]
    weights = np.ones(70, np.float32)
    cfg = TrainConfig(batch_size=16, epochs=2, augment=Augment(mixup=0.3))
    full = [tuple(t.numpy() for t in b) for b in make_train_dataset(images, targets, weights, cfg)]
    tail = [tuple(t.numpy() for t in b) for b in make_train_dataset(images, targets, weights, cfg, start_step=3)]
    assert len(full) == 8 and len(tail) == 5
    for a, b in zip(full[3:], tail, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_crop_epochs_train_crops_first_then_whole_faces_of_the_same_draws():
    """crop_epochs=2 of 3: the first two epochs' batches are the centre 40×40 of what whole-face
    training would draw at those steps, the third epoch is whole faces; a pipeline started in either
    phase yields the same batches."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (64, 48, 48)).astype(np.uint8)
    targets = np.eye(7, dtype=np.float32)[np.arange(64) % 7]
    weights = np.ones(64, np.float32)
    aug = Augment(**{**OFF, "flip": True, "shift": 0.1, "crop": 40})
    cfg = TrainConfig(batch_size=16, epochs=3, augment=aug, crop_epochs=2)
    whole = TrainConfig(batch_size=16, epochs=3, augment=dataclasses.replace(aug, crop=0))
    got = [b[0].numpy() for b in make_train_dataset(images, targets, weights, cfg)]
    ref = [b[0].numpy() for b in make_train_dataset(images, targets, weights, whole)]
    assert [g.shape[1] for g in got] == [40] * 8 + [48] * 4
    for step, (g, r) in enumerate(zip(got, ref, strict=True)):
        np.testing.assert_array_equal(g, r[:, 4:44, 4:44] if step < 8 else r)
    for start in (5, 8, 10):
        tail = [b[0].numpy() for b in make_train_dataset(images, targets, weights, cfg, start_step=start)]
        assert len(tail) == 12 - start
        for g, t in zip(got[start:], tail, strict=True):
            np.testing.assert_array_equal(g, t)


def test_crop_segments_cut_where_the_side_changes():
    from fercore.train.dataset import crop_segments
    from fercore.train.fit import fit_segments

    cfg = TrainConfig(epochs=5, augment=Augment(crop=40), crop_epochs=3)
    assert crop_segments(cfg, 10, 0, 50) == [(0, 30), (30, 50)]
    assert crop_segments(cfg, 10, 30, 50) == [(30, 50)]
    assert crop_segments(cfg, 10, 12, 25) == [(12, 25)]
    assert crop_segments(cfg, 10, 50, 50) == []
    every = TrainConfig(epochs=5, augment=Augment(crop=40))
    assert crop_segments(every, 10, 0, 50) == [(0, 50)]
    # fit: the rest of a stopped epoch alone (its own steps_per_epoch), then whole epochs per side
    assert fit_segments(cfg, 10, 0, 50) == [(0, 30), (30, 50)]
    assert fit_segments(cfg, 10, 26, 50) == [(26, 30), (30, 50)]
    assert fit_segments(cfg, 10, 14, 50) == [(14, 20), (20, 30), (30, 50)]
    assert fit_segments(every, 10, 14, 50) == [(14, 20), (20, 50)]
    assert fit_segments(cfg, 10, 50, 50) == []
