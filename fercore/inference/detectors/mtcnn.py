"""MTCNN (the ``mtcnn`` package): a three-stage CNN detector, slow but good on hard faces.

Building one imports tensorflow; importing this module does not.
"""

from __future__ import annotations

import threading

import numpy as np

from fercore.inference.detectors.base import check_image, to_boxes
from fercore.inference.image import as_rgb, fit_within
from fercore.types import Box, DetectorError


class MTCNNDetector:
    """The ``mtcnn`` package's three-stage CNN detector: slower, finds smaller and turned faces.

    Building one imports tensorflow (~6 s the first time). Images larger than ``max_side`` are
    downscaled before detection; faces from about 20 px (in that copy) are found. Detections
    below ``min_confidence`` are dropped.
    """

    def __init__(self, min_confidence: float = 0.9, max_side: int = 1024):
        if not 0.0 <= min_confidence <= 1.0:
            raise DetectorError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if max_side < 48:
            raise DetectorError(f"max_side must be >= 48, got {max_side}")
        from mtcnn import MTCNN  # imports tensorflow

        self.min_confidence = float(min_confidence)
        self.max_side = int(max_side)
        self._mtcnn = MTCNN()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MTCNNDetector(min_confidence={self.min_confidence}, max_side={self.max_side})"

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes in ``rgb``'s pixels."""
        rgb = as_rgb(check_image(rgb))
        small, factor = fit_within(rgb, self.max_side)
        if min(small.shape[:2]) < 12:  # smaller than MTCNN's first-stage window
            return []
        with self._lock:
            found = self._mtcnn.detect_faces(small)
        rects = [f["box"] for f in found if float(f.get("confidence", 0.0)) >= self.min_confidence]
        return to_boxes(rects, factor, rgb.shape[1], rgb.shape[0])
