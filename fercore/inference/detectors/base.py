"""What every detector shares: the ``FaceDetector`` protocol, the input check and box mapping.

Detectors take an RGB uint8 image (H×W×3; gray H×W is accepted too) and return ``Box`` es in that
image's pixels, sorted left to right. None squares or pads its boxes: the crop that the classifier
sees is framed by :func:`fercore.inference.preprocess.crop_faces`, the one preprocessing shared with
training. Every detector is safe to share between threads (a lock inside it guards what is not).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from fercore.types import Box, DetectorError


@runtime_checkable
class FaceDetector(Protocol):
    """What finds faces: ``detect`` maps an RGB uint8 image to ``Box`` es in its pixels."""

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes in ``rgb``'s pixels (``rgb``: uint8 H×W×3)."""
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """Raise ``DetectorError`` unless ``image`` is a non-empty uint8 gray or RGB(A) array."""
    if not isinstance(image, np.ndarray):
        raise DetectorError(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DetectorError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DetectorError(f"expected an H×W or H×W×3 image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DetectorError(f"empty image, shape {image.shape}")
    return image


def to_boxes(rects: Any, factor: float, width: int, height: int) -> list[Box]:
    """Detector rectangles (x, y, w, h) in a resized copy → clipped boxes in original pixels, left to right."""
    boxes = [Box(*(int(v) for v in r[:4])).scaled(factor).clipped(width, height) for r in rects]
    return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: (b.x, b.y))
