"""OpenCV's Haar cascade: the classic CPU face detector, tuned for speed (see ``HaarDetector``).

Importing this module is cheap: OpenCV is imported when a detector is built.
"""

from __future__ import annotations

import threading

import numpy as np

from fercore.inference.detectors.base import check_image, to_boxes
from fercore.inference.image import to_gray
from fercore.types import Box, DetectorError

HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"  # as accurate as _default here, ~25 % cheaper
HAAR_WINDOW = 24  # native window side of the bundled frontal-face cascade
HAAR_MIN_FACE = 0.14  # default smallest face, as a fraction of the image's shorter side (67 px at 480p)
_NEAR_SIDE = 56.0  # detect_near scans a copy on which the known face is about this wide
_NEAR_SCALE_FACTOR = 1.2  # detect_near's size steps: finer than a full scan's, the region is small


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade, tuned for speed.

    Faces are looked for from ``min_face`` of the image's shorter side upward (default 0.14: 67 px
    in a 640×480 frame, a face within ~1 m of a laptop webcam; 101 px in a 1280×720 one). The
    image is converted to gray and downscaled so that this smallest face spans ``min_size`` pixels
    (the cascade's 24-px window) in the scanned copy (never upscaled); the copy is
    histogram-equalised and scanned, and boxes are mapped back to the original pixels. A 640×480
    frame is thus scanned at 229×171, a 1280×720 one at 305×171, a 12-megapixel photo at 229×171:
    the cost hardly depends on the input size. ``max_side`` bounds the copy's longer side
    (panoramas, tiny ``min_face``). The cascade is OpenCV's ``frontalface_alt2``: on the sample
    photos and test videos it finds faces ``frontalface_default`` misses at these coarse scans, at
    ~25 % less cost; ``min_neighbors=2`` keeps faces that fall between two size steps.

    The scan costs about ``1 / min_face²``: lower ``min_face`` for small faces in group photos or
    wide shots (0.07 finds faces half as large at ~4× the cost), or use BlazeFace, which finds
    them at a fraction of the cost. ``min_face=0`` turns the relative limit off: the copy is then
    ``max_side`` on its longer side whatever the image (e.g. ``HaarDetector(min_face=0,
    max_side=320)``). Lower ``scale_factor`` (finer size steps) or
    ``min_neighbors`` for recall, raise ``min_neighbors`` for fewer false detections.
    """

    def __init__(
        self,
        scale_factor: float = 1.25,
        min_neighbors: int = 2,
        min_size: int = HAAR_WINDOW,
        max_side: int = 1024,
        equalize: bool = True,
        cascade: str = HAAR_CASCADE,
        min_face: float = HAAR_MIN_FACE,
    ):
        import cv2

        if not scale_factor > 1.0:
            raise DetectorError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise DetectorError(f"min_neighbors must be >= 0, got {min_neighbors}")
        if min_size < 1:
            raise DetectorError(f"min_size must be >= 1 pixel, got {min_size}")
        if max_side < HAAR_WINDOW:
            raise DetectorError(f"max_side must be >= {HAAR_WINDOW}, got {max_side}")
        if not 0.0 <= min_face < 1.0:
            raise DetectorError(f"min_face must be a fraction of the shorter side in [0, 1), got {min_face}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_side = int(max_side)
        self.equalize = bool(equalize)
        self.min_face = float(min_face)
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorError(f"{path}: could not load the Haar cascade")
        self._lock = threading.Lock()  # a CascadeClassifier is not safe to share between threads

    def __repr__(self) -> str:
        return (
            f"HaarDetector(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
            f"min_size={self.min_size}, max_side={self.max_side}, equalize={self.equalize}, "
            f"min_face={self.min_face})"
        )

    def scan_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the copy that is scanned for a ``width``×``height`` image."""
        s = min(1.0, self.max_side / max(width, height, 1))
        if self.min_face > 0:
            window = max(self.min_size, HAAR_WINDOW)  # OpenCV never scans below the cascade's window
            s = min(s, window / (self.min_face * max(min(width, height), 1)))
        if s >= 1.0:
            return width, height
        return max(1, round(width * s)), max(1, round(height * s))

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes in ``rgb``'s pixels."""
        return self.detect_gray(to_gray(check_image(rgb)))

    def detect_gray(self, gray: np.ndarray) -> list[Box]:
        """Face boxes in a 2-D uint8 grayscale image (saves a colour conversion when the caller has one)."""
        import cv2

        height, width = gray.shape[:2]
        sw, sh = self.scan_size(width, height)
        if min(sw, sh) < max(self.min_size, HAAR_WINDOW):
            return []
        small = gray if (sw, sh) == (width, height) else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
        if self.equalize:
            small = cv2.equalizeHist(small)
        size = (self.min_size, self.min_size)
        with self._lock:
            rects = self._cascade.detectMultiScale(
                small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=size
            )
        return drop_nested(to_boxes(rects, width / sw, width, height))

    def detect_near(self, gray: np.ndarray, box: Box, margin: float = 0.5, size_range: float = 1.5) -> list[Box]:
        """Faces in a 2-D gray image found only around ``box`` and at sizes near its own.

        The search region is ``box`` widened by ``margin`` of its side on every side; sizes from
        ``side / size_range`` to ``side * size_range`` are scanned, on a copy scaled so the box is
        about 56 px. Costs a small fraction of a full scan.
        """
        import cv2

        side = max(box.w, box.h)
        pad = int(round(side * margin))
        region = Box(box.x - pad, box.y - pad, box.w + 2 * pad, box.h + 2 * pad).clipped(gray.shape[1], gray.shape[0])
        if region.w < HAAR_WINDOW or region.h < HAAR_WINDOW:
            return []
        crop = gray[region.y : region.y + region.h, region.x : region.x + region.w]
        s = min(1.0, _NEAR_SIDE / max(side, 1))
        if s < 1.0:
            crop = cv2.resize(
                crop, (max(1, round(region.w * s)), max(1, round(region.h * s))), interpolation=cv2.INTER_AREA
            )
        if min(crop.shape[:2]) < HAAR_WINDOW:
            return []
        if self.equalize:
            crop = cv2.equalizeHist(crop)
        lo = max(HAAR_WINDOW, int(side * s / size_range))
        hi = max(lo + 1, int(round(side * s * size_range)))
        with self._lock:
            rects = self._cascade.detectMultiScale(
                crop,
                scaleFactor=min(self.scale_factor, _NEAR_SCALE_FACTOR),
                minNeighbors=self.min_neighbors,
                minSize=(lo, lo),
                maxSize=(hi, hi),
            )
        height, width = gray.shape[:2]
        return [
            Box(region.x + round(x / s), region.y + round(y / s), round(w / s), round(h / s)).clipped(width, height)
            for (x, y, w, h) in (tuple(int(v) for v in r[:4]) for r in rects)
        ]


def drop_nested(boxes: list[Box], overlap: float = 0.6) -> list[Box]:
    """``boxes`` without those lying mostly (``overlap`` of their area) inside a larger one, left to
    right. The cascade's grouping only merges boxes of similar size and position, so it can report one face
    twice at neighbouring scales, a smaller box nested in a larger one; a tracker would then give
    that face two ids."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.area):
        if all(_inter(box, k) < overlap * box.area for k in kept):
            kept.append(box)
    return sorted(kept, key=lambda b: (b.x, b.y))


def _inter(a: Box, b: Box) -> int:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy
