"""fercore.detect: the Box value type, the Haar and MTCNN detectors, make_detector."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from fercore.detect import (
    DETECTORS,
    Box,
    DetectorError,
    FaceDetector,
    HaarDetector,
    TrackingDetector,
    fit_within,
    make_detector,
)
from fercore.predictor import load_image

from photo_faces import ASTRONAUT_FACE, GRACE_FACE, MESSI_FACE
from photo_faces import contains as _contains


# ------------------------------------------------------------------------------------------- Box


def test_box_iou_area_and_list():
    a = Box(0, 0, 10, 10)
    assert a.area == 100
    assert a.iou(a) == 1.0
    assert a.iou(Box(20, 20, 5, 5)) == 0.0
    # half-overlapping boxes: intersection 50, union 150
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.as_list() == [0, 0, 10, 10]
    assert all(type(v) is int for v in Box(np.int64(1), 2, 3, 4).as_list())
    assert tuple(Box(1, 2, 3, 4)) == (1, 2, 3, 4)


def test_box_scaled_and_clipped():
    assert Box(10, 20, 30, 40).scaled(2.5) == Box(25, 50, 75, 100)
    assert Box(-5, -5, 20, 20).clipped(10, 12) == Box(0, 0, 10, 12)
    assert Box(50, 50, 5, 5).clipped(10, 10).area == 0
    with pytest.raises(Exception):
        Box(1, 2, 3, 4).x = 5  # frozen value type


def test_fit_within_never_upscales():
    img = np.zeros((100, 200), np.uint8)
    same, f = fit_within(img, 400)
    assert same is img and f == 1.0
    small, f = fit_within(img, 50)
    assert small.shape == (25, 50) and f == pytest.approx(4.0)


# ---------------------------------------------------------------------------------- make_detector


def test_make_detector_rejects_unknown_names_and_params():
    assert DETECTORS == ("blaze", "haar", "mtcnn")
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*blaze, haar, mtcnn"):
        make_detector("yolo")
    with pytest.raises(DetectorError, match="bad parameter"):
        make_detector("haar", bogus=1)
    with pytest.raises(ValueError, match="scale_factor"):
        HaarDetector(scale_factor=1.0)
    with pytest.raises(ValueError, match="max_side"):
        HaarDetector(max_side=10)
    with pytest.raises(ValueError, match="min_face"):
        HaarDetector(min_face=1.5)
    with pytest.raises(ValueError, match="min_face"):
        HaarDetector(min_face=-0.1)


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
    det = make_detector("HAAR", min_neighbors=4)
    assert isinstance(det, HaarDetector) and isinstance(det, FaceDetector)
    assert det.min_neighbors == 4
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
        assert _contains(boxes[0], centre), (name, boxes)
        assert 60 <= boxes[0].w <= 260, (name, boxes)


@pytest.mark.data
def test_haar_boxes_are_in_original_pixels_for_large_images(photos_dir):
    """A 3× upscaled photo is scanned at the same 240 px; its box is 3× the original's."""
    rgb = load_image(photos_dir / "astronaut.png")
    det = HaarDetector()
    (small,) = det.detect(rgb)
    big = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    (large,) = det.detect(big)
    assert large.iou(small.scaled(3)) > 0.75
    assert _contains(large, (ASTRONAUT_FACE[0] * 3, ASTRONAUT_FACE[1] * 3))


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
    assert _contains(box, MESSI_FACE)
    # framed in a wide border, the face is ~6% of the shorter side: below a tenth,
    # found with a smaller ``min_face``
    pad = 150
    wide = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    assert HaarDetector(min_face=0.1, cascade=cascade).detect(wide) == []
    boxes = HaarDetector(min_face=0.05, cascade=cascade).detect(wide)
    assert any(_contains(b, (MESSI_FACE[0] + pad, MESSI_FACE[1] + pad)) for b in boxes), boxes


@pytest.mark.data
@pytest.mark.slow
def test_mtcnn_finds_all_six_faces_in_t1(photos_dir):
    det = make_detector("mtcnn")
    boxes = det.detect(load_image(photos_dir / "t1.jpg"))
    assert len(boxes) == 6
    # six distinct faces, left to right, each of plausible size for this 1280×886 photo
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)
    assert all(b1.iou(b2) == 0 for i, b1 in enumerate(boxes) for b2 in boxes[i + 1 :])
    assert all(70 <= b.w <= 200 for b in boxes)
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []


def test_inference_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import fercore.detect, fercore.predictor, fercore.track, fercore.video, fercore.draw\n"
        "import numpy as np\n"
        "fercore.detect.make_detector('haar').detect(np.zeros((60, 80, 3), np.uint8))\n"
        "fercore.detect.make_detector('blaze').detect(np.zeros((60, 80, 3), np.uint8))\n"
        "bad = [m for m in ('tensorflow', 'keras', 'streamlit', 'mtcnn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- TrackingDetector


def _fine_haar() -> HaarDetector:
    """Haar with finer size steps than the default (1.25): it finds the astronaut's 56-px face in
    these frames on every frame, which the default's size steps happen to skip, so the tests below
    measure the following, not the full scan's luck at one face size."""
    return HaarDetector(scale_factor=1.2)


def _moving_faces(photos_dir, n: int, second_from: int | None = None) -> list[np.ndarray]:
    """320×240 frames: the astronaut's head sliding right; optionally Grace Hopper's from frame N."""
    ast = cv2.resize(load_image(photos_dir / "astronaut.png")[0:256, 96:352], (150, 150), interpolation=cv2.INTER_AREA)
    grace = cv2.resize(load_image(photos_dir / "grace_hopper.jpg")[60:360, 110:410], (110, 110),
                       interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = i
        frame[10:160, x : x + 150] = ast
        if second_from is not None and i >= second_from:
            frame[125:235, 205:315] = grace
        frames.append(frame)
    return frames


@pytest.mark.data
def test_tracking_detector_follows_faces_with_few_full_scans(photos_dir):
    frames = _moving_faces(photos_dir, 40)
    full = _fine_haar()
    tracked = TrackingDetector(_fine_haar(), full_every=5)
    hits_full = hits_tracked = 0
    for i, f in enumerate(frames):
        a, b = full.detect(f), tracked.detect(f)
        hits_full += len(a) == 1
        hits_tracked += len(b) == 1
        if a and b:
            assert a[0].iou(b[0]) > 0.6
        if b:  # the box sits on the moving face
            centre_x = b[0].x + b[0].w / 2
            assert abs(centre_x - (i + 74)) < 20
    assert hits_tracked >= hits_full and hits_tracked >= 36
    assert tracked.full_scans <= 40 // 5 + 3


@pytest.mark.data
def test_tracking_detector_finds_a_new_face_within_full_every_frames(photos_dir):
    frames = _moving_faces(photos_dir, 30, second_from=12)
    det = TrackingDetector(_fine_haar(), full_every=5)
    counts = [len(det.detect(f)) for f in frames]
    assert counts[:12].count(1) >= 10
    assert 2 in counts[12:12 + 5 + 1]  # picked up at the next full scan
    assert counts[-5:].count(2) >= 4
    scans = det.full_scans
    det.reset()
    det.detect(frames[0])
    assert det.full_scans == scans + 1
    # the face leaves: the follow fails, a full scan confirms nothing is there
    assert det.detect(np.full((240, 320, 3), 90, np.uint8)) == []
    with pytest.raises(ValueError, match="full_every"):
        TrackingDetector(full_every=0)


def test_tracking_detector_scans_faceless_streams_only_every_full_every_frames():
    det = TrackingDetector(full_every=4)
    blank = np.full((240, 320, 3), 90, np.uint8)
    assert all(det.detect(blank) == [] for _ in range(12))
    assert det.full_scans == 3


def test_make_stream_detector_tracks_haar_only():
    from fercore.detect import HaarDetector, TrackingDetector, make_stream_detector

    a, b = make_stream_detector("haar"), make_stream_detector("haar")
    assert isinstance(a, TrackingDetector) and isinstance(a.detector, HaarDetector)
    assert a is not b  # one per stream: it keeps state
