"""fercore.inference.explain: Grad-CAM lands where the evidence is; overlays."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fercore.inference.explain import find_target_layer, gradcam, overlay  # noqa: E402


def evidence_model():
    """A model whose 'happy' score grows with the brightness of the pixels: its Grad-CAM for happy
    must light up exactly the bright pixels (feature map = the image; positive weight for happy)."""
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    weights = np.zeros((1, 7), np.float32)
    weights[0, 3] = 0.05  # happy
    dense = keras.layers.Dense(7, activation="softmax", name="emotion")
    out = dense(x)
    model = keras.Model(inputs, out)
    dense.set_weights([weights, np.zeros(7, np.float32)])
    return model


def test_gradcam_highlights_the_pixels_that_drive_the_score():
    model = evidence_model()
    face = np.zeros((48, 48), np.uint8)
    face[4:16, 30:44] = 220  # a bright patch top right
    assert find_target_layer(model).name == "relu"
    heat = gradcam(model, face)
    assert heat.shape == (48, 48) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    assert heat[6:14, 32:42].mean() > 0.9
    assert heat[24:, :24].max() < 0.05
    assert np.unravel_index(heat.argmax(), heat.shape)[1] >= 28
    # accepts H×W×1 and RGB faces too
    assert np.allclose(gradcam(model, face[:, :, None]), heat)
    assert np.allclose(gradcam(model, np.dstack([face] * 3)), heat, atol=1e-3)


def test_gradcam_on_our_architecture():
    from fercore.models.architectures import build_model

    model = build_model("fernet", widths=(8, 8, 8, 8), depths=(1, 1, 1, 1), stem_width=8)
    layer = find_target_layer(model)
    assert tuple(layer.output.shape[1:3]) == (3, 3)  # the last stage's feature maps
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    heat = gradcam(model, face)
    assert heat.shape == (48, 48) and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    heat_fear = gradcam(model, face, class_index=2)
    assert heat_fear.shape == (48, 48)
    finer = gradcam(model, face, layer="stem_relu")  # 48×48 feature maps
    assert finer.shape == (48, 48) and not np.allclose(finer, heat)
    with pytest.raises(ValueError, match="48×48"):
        gradcam(model, np.zeros((40, 40), np.uint8))


def test_overlay_blends_jet_colours():
    face = np.full((48, 48), 128, np.uint8)
    heat = np.zeros((48, 48), np.float32)
    heat[:, 24:] = 1.0
    out = overlay(face, heat)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    hot, cold = out[:, 30:].reshape(-1, 3).mean(0), out[:, :18].reshape(-1, 3).mean(0)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where hot, blue where cold
    frame = np.zeros((90, 120, 3), np.uint8)
    assert overlay(frame, heat, alpha=0.3).shape == (90, 120, 3)
    assert np.array_equal(overlay(frame, heat, alpha=0.0), frame)
    with pytest.raises(ValueError, match="alpha"):
        overlay(frame, heat, alpha=2)
