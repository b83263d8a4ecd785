"""The fused training-mode BatchNorm computes what Keras' own call computes."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fercore.train.batch_norm import batch_norm_layers, fuse_batch_norm  # noqa: E402


def _net(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    # no bias before a BatchNorm: its gradient is zero, and two zeros differ only by round-off
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, use_bias=False)(x)
    x = keras.layers.BatchNormalization(name="bn_flat")(x)  # rank 2: Keras' own call
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _twins():
    plain, fused = _net(), _net()
    fused.set_weights(plain.get_weights())
    assert fuse_batch_norm(fused) == 2  # the flat one is fused too, and falls back per call
    return plain, fused


def _step(model, x):
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_sum(tf.square(out - tf.range(1.0, 4.0)))
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def test_a_training_step_matches_keras_batch_norm():
    plain, fused = _twins()
    x = np.random.default_rng(1).normal(2.0, 3.0, (16, 8, 8, 3)).astype("float32")
    for _ in range(2):  # the second call starts from moving statistics the first one updated
        out_p, grads_p = _step(plain, x)
        out_f, grads_f = _step(fused, x)
        np.testing.assert_allclose(out_f, out_p, rtol=1e-4, atol=1e-5)
        for gf, gp in zip(grads_f, grads_p, strict=True):
            np.testing.assert_allclose(gf, gp, rtol=1e-3, atol=1e-4 * np.abs(gp).max())
        for name in ("bn", "bn_flat"):
            for attr in ("moving_mean", "moving_variance"):  # biased variance, the layer's momentum
                np.testing.assert_allclose(
                    getattr(fused.get_layer(name), attr).numpy(),
                    getattr(plain.get_layer(name), attr).numpy(),
                    rtol=1e-5,
                    atol=1e-6,
                )
        x = x * 0.5 + 1.0
    assert not np.allclose(plain.get_layer("bn").moving_variance.numpy(), 1.0)  # they did move
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_it_matches_under_bfloat16_and_inside_a_traced_step():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        plain, fused = _twins()
    finally:
        keras.config.set_dtype_policy(previous)
    x = np.random.default_rng(2).normal(0.0, 1.0, (16, 8, 8, 3)).astype("float32")
    traced = tf.function(lambda m, v: m(v, training=True))
    np.testing.assert_allclose(
        traced(fused, x).numpy(), traced(plain, x).numpy(), rtol=0.05, atol=0.05
    )  # bfloat16 activations: equal to its precision
    np.testing.assert_allclose(
        fused.get_layer("bn").moving_mean.numpy(), plain.get_layer("bn").moving_mean.numpy(), rtol=1e-2, atol=1e-3
    )
    assert fused.get_layer("bn").compute_dtype == "bfloat16"
    ops = {op.type for op in traced.get_concrete_function(fused, x).graph.get_operations()}
    assert "FusedBatchNormV3" in ops  # the kernel is really used
    assert "FusedBatchNormV3" not in {op.type for op in traced.get_concrete_function(plain, x).graph.get_operations()}


def test_a_fused_model_saves_as_plain_keras(tmp_path):
    _, fused = _twins()
    assert fuse_batch_norm(fused) == 2  # twice is once
    fused.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        config = json.loads(z.read("config.json"))
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert "BatchNormalization" in classes and not any("use" in c.lower() for c in classes)
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert not any(getattr(layer, "_fercore_fused", False) for layer in batch_norm_layers(loaded))


def test_layers_it_cannot_fuse_keep_their_call():
    inputs = keras.Input((4, 4, 2))
    renorm = keras.layers.BatchNormalization(renorm=True, name="renorm")
    channels_first = keras.layers.BatchNormalization(axis=1, name="axis1")
    model = keras.Model(inputs, channels_first(renorm(inputs)))
    assert fuse_batch_norm(model) == 0
    assert "call" not in vars(renorm) and "call" not in vars(channels_first)
