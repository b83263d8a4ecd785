"""Grad-CAM for one face: which pixels drove the model's decision (imports tensorflow).

``gradcam(model, face)`` weights the feature maps of the model's last convolutional stage by the
mean gradient of the chosen class score and keeps the positive part (Selvaraju et al., 2017),
resized to 48×48 and scaled to 0–1. ``overlay`` blends it over the face or a frame.
"""

from __future__ import annotations

import numpy as np

from fercore.inference.draw import heat_overlay
from fercore.inference.preprocess import FACE_SIZE, to_gray, to_model_input

_SKIP = ("Pooling", "Dropout", "InputLayer", "Rescaling", "Normalization", "RandomFlip", "Random")


def find_target_layer(model):
    """The last layer with a 4-D (batch, h, w, channels) output that is a convolution stage's output.

    Pooling, dropout, input and rescaling layers are skipped, so for a conv → BN → ReLU block the
    ReLU (or a residual Add) is chosen: the rectified feature maps Grad-CAM is defined on.
    """
    for layer in reversed(model.layers):
        if any(s in type(layer).__name__ for s in _SKIP):
            continue
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4:
            return layer
    raise ValueError(f"model {model.name!r} has no convolutional layer for Grad-CAM")


def _face_input(face: np.ndarray) -> np.ndarray:
    """A 48×48 uint8 face (gray, H×W×1 or RGB) → (1, 48, 48, 1) float32."""
    face = np.asarray(face)
    if face.ndim == 3 and face.shape[2] in (3, 4):
        face = to_gray(face.astype(np.uint8))
    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.shape != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"face must be {FACE_SIZE}×{FACE_SIZE}, got shape {face.shape}")
    return to_model_input(face[None].astype(np.uint8))


def gradcam(model, face: np.ndarray, class_index: int | None = None, layer: str | None = None) -> np.ndarray:
    """48×48 float heat map in 0–1 for ``class_index`` (default: the predicted class).

    ``layer`` names the feature maps to explain (default: the last convolutional stage, see
    ``find_target_layer``; an earlier layer gives a finer but less class-specific map).
    """
    import cv2
    import keras
    import tensorflow as tf

    target = model.get_layer(layer) if layer else find_target_layer(model)
    grad_model = keras.Model(model.inputs, [target.output, model.outputs[0]])
    x = tf.convert_to_tensor(_face_input(face))
    with tf.GradientTape() as tape:
        maps, probs = grad_model(x, training=False)
        index = int(tf.argmax(probs[0])) if class_index is None else int(class_index)
        score = probs[:, index]
    grads = tape.gradient(score, maps)
    if grads is None:
        raise ValueError(f"no gradient from class {index} to layer {target.name!r}")
    weights = tf.reduce_mean(grads, axis=(0, 1, 2))
    cam = tf.nn.relu(tf.reduce_sum(maps[0] * weights, axis=-1)).numpy().astype(np.float32)
    cam = cv2.resize(cam, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
    top = float(cam.max())
    return cam / top if top > 0 else np.zeros_like(cam)


def overlay(face_or_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8: the heat map in jet colours blended over a face crop or frame."""
    return heat_overlay(face_or_rgb, heat, alpha)
