"""On-graph augmentation of float batches (b, 48, 48, 1) in 0–255.

Every random draw is stateless, keyed by a seed pair that the input pipeline derives from
(config.seed, global step): the same step always sees the same augmentation, so a resumed run
trains on exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import math
from typing import Any

from fercore.train.config import Augment

TF = Any  # tensors; tensorflow is imported lazily so that the config side of the package stays light


def _seeds(seed: TF | None, n: int) -> list[TF]:
    """``n`` independent stateless seeds from one (random when None)."""
    import tensorflow as tf

    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return list(tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n)))


def augment_batch(images: TF, aug: Augment, seed: TF | None = None) -> TF:
    """Randomly flip, rotate/shift/zoom, crop the centre (``crop`` px; with a shift that is a random
    crop), change contrast and brightness, and erase a rectangle."""
    import tensorflow as tf

    s = _seeds(seed, 12)

    def uniform(i: int, shape: Any, lo: float = 0.0, hi: float = 1.0) -> TF:
        return tf.random.stateless_uniform(shape, s[i], lo, hi)

    b = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    x = images
    if aug.flip:
        flip = uniform(0, [b, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if aug.rotation or aug.shift or aug.zoom:
        ang = uniform(1, [b], -1.0, 1.0) * (aug.rotation * math.pi / 180.0)
        scale = 1.0 + uniform(2, [b], -1.0, 1.0) * aug.zoom
        tx = uniform(3, [b], -1.0, 1.0) * aug.shift * size
        ty = uniform(4, [b], -1.0, 1.0) * aug.shift * size
        # output→input mapping: p_in = R(-ang)/scale · (p_out - c) + c + t
        cos, sin = tf.cos(ang) / scale, tf.sin(ang) / scale
        c = (size - 1.0) / 2.0
        a2 = c - cos * c + sin * c + tx
        b2 = c - sin * c - cos * c + ty
        zeros = tf.zeros_like(cos)
        transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=transforms,
            output_shape=tf.shape(x)[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
    if aug.crop and aug.crop < images.shape[1]:
        # the centre of an image shifted at random: a random crop (the model sees whole faces at test)
        o = (int(images.shape[1]) - aug.crop) // 2
        x = x[:, o : o + aug.crop, o : o + aug.crop, :]
    if aug.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * (1.0 + uniform(5, [b, 1, 1, 1], -aug.contrast, aug.contrast)) + mean
    if aug.brightness:
        x = x + uniform(6, [b, 1, 1, 1], -aug.brightness, aug.brightness) * 255.0
    if aug.erasing:
        x = _erase(x, aug.erasing, s[7:12])
    return tf.clip_by_value(x, 0.0, 255.0)


def _erase(x: TF, probability: float, s: list[TF]) -> TF:
    """Replace one rectangle (1/6–1/3 of the side) of each image by noise, with ``probability``."""
    import tensorflow as tf

    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    eh = tf.random.stateless_uniform([b], s[0], h // 6, h // 3 + 1, dtype=tf.int32)
    ew = tf.random.stateless_uniform([b], s[1], w // 6, w // 3 + 1, dtype=tf.int32)
    pos = tf.random.stateless_uniform([2, b], s[2])
    ey = tf.cast(pos[0] * tf.cast(h - eh, tf.float32), tf.int32)
    ex = tf.cast(pos[1] * tf.cast(w - ew, tf.float32), tf.int32)
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    inside = (
        (rows >= ey[:, None, None])
        & (rows < (ey + eh)[:, None, None])
        & (cols >= ex[:, None, None])
        & (cols < (ex + ew)[:, None, None])
    )
    apply = tf.random.stateless_uniform([b, 1, 1], s[3]) < probability
    mask = tf.cast(inside & apply, tf.float32)[..., None]
    noise = tf.random.stateless_uniform(tf.shape(x), s[4], 0.0, 255.0)
    return x * (1.0 - mask) + noise * mask


def mixup_batch(x: TF, y: TF, w: TF, alpha: float, seed: TF | None = None) -> tuple[TF, TF, TF]:
    """Mix each sample with a shuffled partner: λ ~ Beta(α, α) (as the ratio of two gammas)."""
    import tensorflow as tf

    s = _seeds(seed, 3)
    b = tf.shape(x)[0]
    g1 = tf.random.stateless_gamma([b], s[0], alpha)
    g2 = tf.random.stateless_gamma([b], s[1], alpha)
    lam = g1 / (g1 + g2)
    perm = tf.argsort(tf.random.stateless_uniform([b], s[2]))
    lx = lam[:, None, None, None]
    ly = lam[:, None]
    x = lx * x + (1.0 - lx) * tf.gather(x, perm)
    y = ly * y + (1.0 - ly) * tf.gather(y, perm)
    w = lam * w + (1.0 - lam) * tf.gather(w, perm)
    return x, y, w
