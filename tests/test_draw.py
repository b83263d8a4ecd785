"""fercore.inference.draw: boxes in the label's colour, captions, probability bars, heat maps; never in place."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXED_PROBS

from fercore.inference.draw import annotate, caption, heat_overlay
from fercore.labels import EMOTIONS, color_rgb
from fercore.types import Box, FacePrediction


def _pred(box=Box(100, 80, 60, 60), probs=FIXED_PROBS, face_id=None) -> FacePrediction:
    p = FacePrediction.from_probs(box, np.asarray(probs), np.zeros((48, 48), np.uint8))
    p.face_id = face_id
    return p


def _near(pixels: np.ndarray, color, tol: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.asarray(color)).sum(axis=-1) < tol


def test_annotate_draws_boxes_in_the_label_colour_without_touching_the_input():
    rgb = np.full((240, 320, 3), 30, np.uint8)
    pred = _pred(face_id=7)
    out = annotate(rgb, [pred])
    assert out.shape == rgb.shape and out.dtype == np.uint8 and out is not rgb
    assert (rgb == 30).all()  # input untouched
    left_edge = out[100:130, 100]
    assert _near(left_edge, color_rgb("happy")).all()
    assert caption(pred) == "#7 happy 50%"
    plain = annotate(rgb, [pred], show_bars=False)
    assert (out != plain).any()  # bars were drawn beside the box
    assert annotate(rgb, []).tolist() == rgb.tolist()


@pytest.mark.parametrize("label", EMOTIONS)
def test_every_label_draws_its_own_colour_on_all_four_sides_of_the_box(label):
    probs = np.full(7, 0.05)
    probs[EMOTIONS.index(label)] = 0.7
    rgb = np.full((300, 400, 3), 30, np.uint8)
    out = annotate(rgb, [_pred(Box(150, 120, 80, 80), probs)], show_bars=False)
    color = color_rgb(label)
    x, y, w, h = 150, 120, 80, 80
    assert _near(out[y + 20 : y + h - 20, x], color).all()  # left side
    assert _near(out[y + 20 : y + h - 20, x + w - 1], color).all()  # right side
    assert _near(out[y + h - 1, x + 20 : x + w - 20], color).all()  # bottom
    assert (out[y + 10 : y + h - 10, x + 10 : x + w - 10] == 30).all()  # the face itself is not covered


def test_the_caption_tag_sits_above_the_box_or_below_it_at_the_top_edge():
    rgb = np.full((240, 320, 3), 30, np.uint8)
    above = annotate(rgb, [_pred(Box(100, 100, 60, 60))], show_bars=False)
    assert _near(above[80:99, 100:140], color_rgb("happy")).any()
    at_top = annotate(rgb, [_pred(Box(100, 0, 60, 60))], show_bars=False)
    assert _near(at_top[61:80, 100:140], color_rgb("happy")).any()


def test_caption_text_with_and_without_face_id():
    assert caption(_pred()) == "happy 50%"
    assert caption(_pred(face_id=3)) == "#3 happy 50%"
    assert caption(_pred(face_id=0)) == "#0 happy 50%"
    sad = np.array([0.0, 0.0, 0.0, 0.004, 0.996, 0.0, 0.0])
    assert caption(_pred(probs=sad)) == "sad 100%"


def test_annotate_accepts_gray_and_rgba_and_faces_at_the_border():
    gray = np.full((120, 160), 50, np.uint8)
    out = annotate(gray, [_pred(Box(0, 0, 40, 40))])
    assert out.shape == (120, 160, 3) and (gray == 50).all()
    rgba = np.full((120, 160, 4), 50, np.uint8)
    assert annotate(rgba, [_pred(Box(130, 100, 40, 40))]).shape == (120, 160, 3)
    tiny = np.zeros((20, 20, 3), np.uint8)
    assert annotate(tiny, [_pred(Box(0, 0, 20, 20), face_id=12)]).shape == (20, 20, 3)


def test_heat_overlay():
    base = np.zeros((40, 60, 3), np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[:, 5:] = 1.0
    out = heat_overlay(base, heat, alpha=0.5)
    assert out.shape == (40, 60, 3) and (base == 0).all()
    assert out[:, 50:, 0].mean() > out[:, :10, 0].mean()  # hot (red) on the right
    assert heat_overlay(np.zeros((8, 8), np.uint8), heat).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="alpha"):
        heat_overlay(base, heat, alpha=2)
    with pytest.raises(ValueError, match="2-D"):
        heat_overlay(base, np.zeros((2, 2, 2)))
