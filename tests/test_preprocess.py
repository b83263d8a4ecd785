"""fercore.inference.preprocess: the one face preprocessing (square box → edge-padded crop → 48×48 gray)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fercore.inference.preprocess import (
    FACE_MARGIN,
    FACE_SIZE,
    crop_face,
    crop_faces,
    resize_face,
    square_box,
    to_model_input,
)


def _gradient(h: int = 120, w: int = 160) -> np.ndarray:
    """A gray image whose every pixel is distinct enough to tell where a crop came from."""
    ys, xs = np.mgrid[0:h, 0:w]
    return ((xs * 1.5 + ys * 0.5) % 256).astype(np.uint8)


# ------------------------------------------------------------------------------------ square_box


def test_square_box_squares_about_the_centre_and_adds_the_margin():
    assert FACE_SIZE == 48 and 0 < FACE_MARGIN < 0.5
    assert square_box(10, 20, 100, 100, margin=0.0) == (10, 20, 100, 100)
    assert square_box(10, 20, 100, 100, margin=0.1) == (0, 10, 120, 120)  # 10 % of the side each way
    # a tall box becomes a square of its height, same centre
    x, y, w, h = square_box(50, 40, 60, 100, margin=0.0)
    assert w == h == 100 and (x + w / 2, y + h / 2) == (80, 90)
    # a wide box: a square of its width, same centre
    x, y, w, h = square_box(0, 0, 80, 40, margin=0.0)
    assert w == h == 80 and (x + w / 2, y + h / 2) == (40, 20)
    # the default margin
    x, y, w, h = square_box(100, 100, 50, 50)
    assert w == h == round(50 * (1 + 2 * FACE_MARGIN))
    assert x + w / 2 == pytest.approx(125, abs=0.5) and y + h / 2 == pytest.approx(125, abs=0.5)
    assert all(type(v) is int for v in square_box(1.3, 2.7, 33.3, 20.1))


def test_square_box_may_leave_the_frame():
    x, y, w, h = square_box(0, 0, 20, 20, margin=0.5)
    assert (x, y, w, h) == (-10, -10, 40, 40)


# ------------------------------------------------------------------------------------- crop_face


def test_crop_face_inside_the_frame_is_the_resized_square_crop():
    gray = _gradient()
    face = crop_face(gray, (40, 30, 60, 60), margin=0.0)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    expected = cv2.resize(gray[30:90, 40:100], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(face, expected)


def test_crop_face_uses_the_margin_and_squares_non_square_boxes():
    gray = _gradient()
    wide = crop_face(gray, (40, 30, 60, 60), margin=0.1)  # 72-px square from (34, 24)
    np.testing.assert_array_equal(wide, cv2.resize(gray[24:96, 34:106], (48, 48), interpolation=cv2.INTER_AREA))
    tall = crop_face(gray, (50, 20, 40, 80), margin=0.0)  # squared to 80 about the centre (70, 60)
    np.testing.assert_array_equal(tall, cv2.resize(gray[20:100, 30:110], (48, 48), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("box", [(-20, -10, 60, 60), (130, 90, 60, 60), (-50, 50, 300, 40)])
def test_crop_face_pads_outside_the_frame_with_edge_pixels(box):
    gray = _gradient()
    face = crop_face(gray, box, margin=0.0)
    x, y, side, _ = square_box(*box, margin=0.0)
    pad = 400
    padded = np.pad(gray, pad, mode="edge")
    expected_crop = padded[y + pad : y + pad + side, x + pad : x + pad + side]
    interp = cv2.INTER_AREA if side > 48 else cv2.INTER_LINEAR
    np.testing.assert_array_equal(face, cv2.resize(expected_crop, (48, 48), interpolation=interp))


def test_crop_face_of_a_box_entirely_outside_repeats_the_nearest_edge():
    gray = np.zeros((50, 50), np.uint8)
    gray[:, -1] = 200  # the right-most column
    face = crop_face(gray, (80, 10, 20, 20), margin=0.0)
    assert (face == 200).all()


def test_crop_face_small_and_degenerate_boxes_still_give_48x48():
    gray = _gradient()
    assert crop_face(gray, (10, 10, 12, 12)).shape == (48, 48)  # upscaled
    assert crop_face(gray, (10, 10, 0, 0)).shape == (48, 48)  # at least one pixel
    assert crop_face(np.full((1, 1), 7, np.uint8), (0, 0, 1, 1)).tolist() == [[7] * 48] * 48


def test_resize_face():
    face = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(resize_face(face), face)
    assert resize_face(np.zeros((100, 80), np.uint8)).shape == (48, 48)
    assert resize_face(np.zeros((10, 10), np.uint8)).dtype == np.uint8


# ------------------------------------------------------------------------------------ crop_faces


def test_crop_faces_empty_and_many():
    gray = _gradient()
    none = crop_faces(gray, [])
    assert none.shape == (0, 48, 48) and none.dtype == np.uint8
    boxes = [(0, 0, 30, 30), (50, 40, 40, 40), (-10, 100, 50, 50), (140, -5, 30, 60)]
    many = crop_faces(gray, boxes)
    assert many.shape == (4, 48, 48) and many.dtype == np.uint8
    for face, box in zip(many, boxes, strict=True):
        np.testing.assert_array_equal(face, crop_face(gray, box))
    np.testing.assert_array_equal(crop_faces(gray, boxes, margin=0.0)[1], crop_face(gray, boxes[1], margin=0.0))


# -------------------------------------------------------------------------------- to_model_input


def test_to_model_input_shapes_and_values():
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    x = to_model_input(faces)
    assert x.shape == (5, 48, 48, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], faces.astype(np.float32))  # 0–255: the model rescales
    assert to_model_input(faces[0]).shape == (1, 48, 48, 1)  # one face, no batch axis
    assert to_model_input(np.zeros((0, 48, 48), np.uint8)).shape == (0, 48, 48, 1)


@pytest.mark.parametrize("shape", [(2, 32, 32), (2, 48, 47), (48, 64), (3, 48, 48, 1)])
def test_to_model_input_rejects_faces_of_the_wrong_size(shape):
    with pytest.raises(ValueError, match="48×48"):
        to_model_input(np.zeros(shape, np.uint8))
