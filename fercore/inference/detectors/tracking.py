"""Face detection for live streams: follow known faces cheaply between whole-frame scans."""

from __future__ import annotations

import numpy as np

from fercore.inference.detectors.base import check_image
from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.image import to_gray
from fercore.types import Box, DetectorError


class TrackingDetector:
    """Haar detection for live video: follow known faces cheaply, scan the whole frame now and then.

    Each frame, every face found in the previous frame is looked for near where it was
    (``HaarDetector.detect_near``); the whole frame is scanned on the first frame, every
    ``full_every`` frames (so new faces appear within that many frames), and whenever a followed
    face is lost. Steady frames thus cost a small fraction of a full scan. Holds per-stream
    state: use one per video or webcam session, and ``reset()`` between streams.
    """

    def __init__(self, detector: HaarDetector | None = None, full_every: int = 5, margin: float = 0.5):
        if full_every < 1:
            raise DetectorError(f"full_every must be >= 1, got {full_every}")
        self.detector = detector or HaarDetector()
        self.full_every = int(full_every)
        self.margin = float(margin)
        self.full_scans = 0
        self.reset()

    def __repr__(self) -> str:
        return f"TrackingDetector({self.detector!r}, full_every={self.full_every})"

    def reset(self) -> None:
        """Forget the faces followed so far: the next frame is scanned in full."""
        self._boxes: list[Box] = []
        self._since_full = 0
        self._since_seen = 1 << 30  # frames since a face was last found

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes in ``rgb``'s pixels."""
        return self.detect_gray(to_gray(check_image(rgb)))

    def detect_gray(self, gray: np.ndarray) -> list[Box]:
        """Face boxes in a 2-D uint8 grayscale frame of the stream."""
        boxes = self._follow(gray) if self._may_follow() else None
        if boxes is None:  # first frame, time for a full scan, or a followed face was lost
            boxes = self.detector.detect_gray(gray)
            self.full_scans += 1
            self._since_full = 0
        self._since_full += 1
        self._since_seen = 0 if boxes else self._since_seen + 1
        self._boxes = boxes
        return boxes

    def _may_follow(self) -> bool:
        """True unless a full scan is due: every ``full_every`` frames, and on every frame while
        no face is followed although one was seen within the last ``full_every`` frames."""
        if self._since_full == 0 or self._since_full >= self.full_every:
            return False
        return bool(self._boxes) or self._since_seen >= self.full_every

    def _follow(self, gray: np.ndarray) -> list[Box] | None:
        """Each known face re-found near its last box, or None as soon as one is lost."""
        found: list[Box] = []
        for prev in self._boxes:
            near = self.detector.detect_near(gray, prev, margin=self.margin)
            if not near:
                return None
            best = max(near, key=prev.iou)
            if all(best.iou(b) < 0.5 for b in found):
                found.append(best)
        return sorted(found, key=lambda b: (b.x, b.y))
