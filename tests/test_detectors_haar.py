"""fercore.inference.detectors.haar: OpenCV's Haar cascade, scanned on a copy sized to the smallest face."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from conftest import ASTRONAUT_FACE, GRACE_FACE, MESSI_FACE, contains, load_photo

from fercore.inference.detectors import FaceDetector
from fercore.inference.detectors.haar import HaarDetector, drop_nested
from fercore.inference.image import load_image, to_gray
from fercore.types import Box, DetectorError


def test_bad_parameters_raise_detector_error():
    with pytest.raises(DetectorError, match="scale_factor"):
        HaarDetector(scale_factor=1.0)
    with pytest.raises(DetectorError, match="min_neighbors"):
        HaarDetector(min_neighbors=-1)
    with pytest.raises(DetectorError, match="min_size"):
        HaarDetector(min_size=0)
    with pytest.raises(DetectorError, match="max_side"):
        HaarDetector(max_side=10)
    with pytest.raises(DetectorError, match="min_face"):
        HaarDetector(min_face=1.5)
    with pytest.raises(DetectorError, match="min_face"):
        HaarDetector(min_face=-0.1)
    with pytest.raises(DetectorError, match="could not load"):
        HaarDetector(cascade="/nonexistent/cascade.xml")


def test_haar_scans_a_copy_where_the_smallest_face_fills_the_cascade_window():
    det = HaarDetector()  # smallest face: 0.14 of the shorter side, scanned at 24 px
    assert det.min_face == pytest.approx(0.14)
    assert det.scan_size(640, 480) == (229, 171)
    assert det.scan_size(1280, 720) == (305, 171)
    assert det.scan_size(4000, 3000) == (229, 171)  # cost independent of the photo's size
    assert det.scan_size(150, 120) == (150, 120)  # never upscaled
    assert HaarDetector(min_face=0.1).scan_size(640, 480) == (320, 240)
    assert HaarDetector(min_face=0.05).scan_size(640, 480) == (640, 480)  # half the face size: 4x the pixels
    assert HaarDetector(min_face=0.1, max_side=200).scan_size(640, 480) == (200, 150)
    assert HaarDetector(min_face=0, max_side=320).scan_size(1280, 720) == (320, 180)


def test_haar_is_a_face_detector_and_ignores_blank_and_tiny_images():
    det = HaarDetector(min_neighbors=4)
    assert isinstance(det, FaceDetector) and "min_neighbors=4" in repr(det)
    assert det.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert det.detect(np.zeros((30, 5), np.uint8)) == []
    with pytest.raises(DetectorError, match="uint8"):
        det.detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(DetectorError, match="shape"):
        det.detect(np.zeros((50, 50, 2), np.uint8))


# --------------------------------------------------------------------------------- real photos


@pytest.mark.data
def test_haar_finds_the_face_in_single_face_photos(photos_dir):
    det = HaarDetector()
    for name, centre in (("astronaut.png", ASTRONAUT_FACE), ("grace_hopper.jpg", GRACE_FACE)):
        boxes = det.detect(load_image(photos_dir / name))
        assert len(boxes) == 1, name
        assert contains(boxes[0], centre), (name, boxes)
        assert 60 <= boxes[0].w <= 260, (name, boxes)


@pytest.mark.data
def test_detect_and_detect_gray_agree(astronaut):
    det = HaarDetector()
    assert det.detect(astronaut) == det.detect_gray(to_gray(astronaut)) == det.detect(to_gray(astronaut))


@pytest.mark.data
def test_haar_boxes_are_in_original_pixels_for_large_images(astronaut):
    """A 3× upscaled photo is scanned at the same size; its box is 3× the original's."""
    det = HaarDetector()
    (small,) = det.detect(astronaut)
    big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    (large,) = det.detect(big)
    assert large.iou(small.scaled(3)) > 0.75
    assert contains(large, (ASTRONAUT_FACE[0] * 3, ASTRONAUT_FACE[1] * 3))


@pytest.mark.data
def test_haar_with_smaller_min_face_finds_more_faces_in_the_group_photo(photos_dir):
    """t1's six faces are 1/8–1/10 of its shorter side: at a tenth Haar finds some, at a
    twentieth (4× the cost) more; a fixed 640-px scan (``min_face=0``) also finds more."""
    rgb = load_image(photos_dir / "t1.jpg")
    fast = HaarDetector(min_face=0.1).detect(rgb)
    fine = HaarDetector(min_face=0.05).detect(rgb)
    fixed = HaarDetector(min_face=0, max_side=640).detect(rgb)
    assert len(fine) > len(fast) >= 1
    assert len(fixed) > len(fast)
    assert all(70 <= b.w <= 200 for b in fine)


@pytest.mark.data
def test_haar_finds_small_faces_down_to_min_face(photos_dir):
    """Messi's face (a 40-px box in a 548×342 photo) is just above a tenth of the shorter side;
    OpenCV's ``frontalface_default`` cascade finds it (``alt2``, the default, is less sensitive)."""
    rgb = load_image(photos_dir / "messi5.jpg")
    cascade = "haarcascade_frontalface_default.xml"
    assert HaarDetector().detect(rgb) == []  # below the default 0.14 of the shorter side (48 px)
    (box,) = HaarDetector(min_face=0.1, cascade=cascade).detect(rgb)
    assert contains(box, MESSI_FACE)
    # framed in a wide border, the face is ~6% of the shorter side: below a tenth,
    # found with a smaller ``min_face``
    pad = 150
    wide = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    assert HaarDetector(min_face=0.1, cascade=cascade).detect(wide) == []
    boxes = HaarDetector(min_face=0.05, cascade=cascade).detect(wide)
    assert any(contains(b, (MESSI_FACE[0] + pad, MESSI_FACE[1] + pad)) for b in boxes), boxes


@pytest.mark.data
def test_detect_near_refinds_a_known_face_and_nothing_elsewhere(astronaut):
    det = HaarDetector(scale_factor=1.2)
    gray = to_gray(astronaut)
    (face,) = det.detect_gray(gray)
    near = det.detect_near(gray, face)
    assert near and max(b.iou(face) for b in near) > 0.6
    assert det.detect_near(gray, Box(400, 350, face.w, face.h)) == []  # no face down there
    assert det.detect_near(gray, Box(0, 0, 4, 4)) == []  # region smaller than the cascade window


@pytest.mark.data
def test_one_detector_shared_by_threads(photos_dir):
    det = HaarDetector()
    images = [load_photo(n) for n in ("astronaut.png", "grace_hopper.jpg", "t1.jpg")]
    expected = [det.detect(im) for im in images]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(9):
                k = (i + offset) % len(images)
                assert det.detect(images[k]) == expected[k]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


def test_drop_nested_keeps_one_box_per_face():
    big, nested, apart = Box(96, 77, 68, 68), Box(101, 85, 50, 50), Box(300, 80, 60, 60)
    assert drop_nested([nested, apart, big]) == [big, apart]
    touching = Box(150, 77, 68, 68)  # overlaps ``big`` a little: another face
    assert drop_nested([big, touching]) == [big, touching]
    assert drop_nested([]) == []


@pytest.mark.data
def test_one_face_gives_one_box_even_where_the_cascade_fires_at_two_scales(photos_dir):
    """On this frame the cascade reports the face at two neighbouring scales, a 50-px box inside a
    68-px one; a tracker would give the face a second id."""
    from conftest import face_tile

    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[45:195, 53:203] = face_tile(150)
    rgb = cv2.imdecode(cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    boxes = HaarDetector().detect(rgb[:, :, ::-1].copy())
    assert len(boxes) == 1, boxes
    assert contains(boxes[0], (53 + 74, 45 + 75))
