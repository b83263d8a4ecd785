"""fercore.inference.detectors.mtcnn: the mtcnn package's detector (imports tensorflow when built)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fercore.inference.detectors import make_detector
from fercore.inference.detectors.mtcnn import MTCNNDetector
from fercore.inference.image import load_image
from fercore.types import DetectorError


def test_bad_parameters_are_refused_before_tensorflow_is_imported():
    with pytest.raises(DetectorError, match="min_confidence"):
        MTCNNDetector(min_confidence=1.5)
    with pytest.raises(DetectorError, match="max_side"):
        MTCNNDetector(max_side=20)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mtcnn") is None, reason="the mtcnn package is not installed")
def test_mtcnn_finds_all_six_faces_in_t1(photos_dir):
    det = make_detector("mtcnn")
    boxes = det.detect(load_image(photos_dir / "t1.jpg"))
    assert len(boxes) == 6
    # six distinct faces, left to right, each of plausible size for this 1280×886 photo
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)
    assert all(b1.iou(b2) == 0 for i, b1 in enumerate(boxes) for b2 in boxes[i + 1 :])
    assert all(70 <= b.w <= 200 for b in boxes)
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []
