"""Training-mode batch normalisation in TensorFlow's fused kernel.

Keras 3 computes a BatchNormalization layer in training mode from separate operations (the
moments, then the normalisation, and automatic differentiation through each of them). On a CPU
these memory-bound passes cost a large share of a small convolutional net's training step.
:func:`fuse_batch_norm` switches a model's BatchNormalization layers, for training-mode calls only,
to TensorFlow's fused kernel (``FusedBatchNormV3`` and its gradient: one pass forward, one back).
The mathematics stay Keras': float32 arithmetic, the batch mean and biased variance for
normalising, the layer's momentum for the moving statistics. The layers stay Keras
BatchNormalization objects, so a saved model is unchanged; inference uses Keras' own call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras

_MIN_EPSILON = 1.001e-5  # the fused kernel's lower bound on epsilon


def batch_norm_layers(model: Any) -> Iterator[Any]:
    """Every BatchNormalization layer of ``model``, nested models included."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer
        else:
            yield from batch_norm_layers(layer)


def fusable(layer: Any) -> bool:
    """Whether ``layer``'s training-mode call can run in the fused kernel (TensorFlow backend, a
    plain layer normalising the last axis of image tensors; checked again per call for the rank)."""
    return (
        keras.backend.backend() == "tensorflow"
        and isinstance(layer, keras.layers.BatchNormalization)
        and not layer.renorm
        and not layer.synchronized
        and layer.epsilon >= _MIN_EPSILON
        and layer.axis in (-1, 3)
    )


def fuse_batch_norm(model: Any) -> int:
    """Make the training-mode calls of ``model``'s fusable BatchNormalization layers use the fused
    kernel (in place; a layer done before is left as it is). Returns how many layers use it."""
    count = 0
    for layer in batch_norm_layers(model):
        if getattr(layer, "_fercore_fused", False):
            count += 1
        elif fusable(layer):
            layer.call = _fused_call(layer, layer.call)  # this object's call; the class keeps Keras'
            layer._fercore_fused = True
            count += 1
    return count


def _fused_call(layer: Any, keras_call: Callable[..., Any]) -> Callable[..., Any]:
    """``layer``'s call with its training-mode branch in the fused kernel (``keras_call`` otherwise)."""
    import tensorflow as tf

    def call(inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and layer.trainable and mask is None and len(inputs.shape) == 4):
            return keras_call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # as Keras does: statistics in float32 whatever the policy
        channels = x.shape[-1]
        gamma = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels])
        beta = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=layer.epsilon, is_training=True)
        # the kernel hands back the unbiased variance (Bessel-corrected): Keras keeps the biased one
        n = tf.cast(tf.size(x) // channels, tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        m = layer.momentum
        layer.moving_mean.assign(tf.cast(layer.moving_mean, tf.float32) * m + mean * (1.0 - m))
        layer.moving_variance.assign(tf.cast(layer.moving_variance, tf.float32) * m + variance * (1.0 - m))
        return tf.cast(y, layer.compute_dtype)

    return call
