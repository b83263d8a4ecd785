"""Face detectors and their registry: ``make_detector(name)`` for photos, ``make_stream_detector``
for one live stream.

* ``blaze`` — MediaPipe's BlazeFace run by LiteRT (:mod:`fercore.inference.detectors.blaze`): fast, finds
  small and turned faces; the default.
* ``haar`` — OpenCV's cascade (:mod:`fercore.inference.detectors.haar`): classic, frontal faces.
* ``mtcnn`` — the ``mtcnn`` package (:mod:`fercore.inference.detectors.mtcnn`): accurate on hard faces, slow.

Importing this package is cheap: each detector's heavy imports happen when one is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from fercore.inference.detectors.base import FaceDetector, check_image
from fercore.types import DetectorError

DETECTORS: tuple[str, ...] = ("blaze", "haar", "mtcnn")
DEFAULT_DETECTOR = "blaze"
_CLASSES = {"blaze": "blaze:BlazeFaceDetector", "haar": "haar:HaarDetector", "mtcnn": "mtcnn:MTCNNDetector"}

__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "FaceDetector", "check_image", "make_detector", "make_stream_detector"]


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> FaceDetector:
    """Build a detector by name (one of ``DETECTORS``) with its keyword parameters."""
    key = str(name).strip().lower()
    if key not in _CLASSES:
        raise DetectorError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
    module, cls_name = _CLASSES[key].split(":")
    cls = getattr(importlib.import_module(f"fercore.inference.detectors.{module}"), cls_name)
    try:
        detector: FaceDetector = cls(**params)
    except TypeError as exc:  # an unknown keyword
        raise DetectorError(f"bad parameter for the {key} detector: {exc}") from None
    return detector


def make_stream_detector(name: str = DEFAULT_DETECTOR, scan_every: int = 5, **params: Any) -> FaceDetector:
    """A detector for one live stream (webcam or video): Haar follows known faces between full scans
    every ``scan_every`` frames (stateful: one per stream); the other detectors are used as they are."""
    from fercore.inference.detectors.haar import HaarDetector
    from fercore.inference.detectors.tracking import TrackingDetector

    detector = make_detector(name, **params)
    if isinstance(detector, HaarDetector) and scan_every > 1:
        return TrackingDetector(detector, full_every=scan_every)
    return detector
