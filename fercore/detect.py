"""Face detection: a ``Box`` value type, the ``FaceDetector`` protocol, and three detectors:
BlazeFace (:mod:`fercore.blaze`; fast and accurate, the default), a Haar cascade (classic, CPU-only
OpenCV) and MTCNN (accurate on hard faces, slow).

Detectors take an RGB uint8 image (H×W×3; gray H×W is accepted too) and return boxes in that
image's pixels, sorted left to right. Neither detector squares or pads its boxes: the crop that
the classifier sees is framed by :func:`fercore.preprocess.crop_faces`, the one preprocessing
shared with training.

Importing this module is cheap: OpenCV is imported when a Haar detector is built, and the
``mtcnn`` package (which imports tensorflow) only when an MTCNN detector is built.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from fercore.preprocess import to_gray

DETECTORS: tuple[str, ...] = ("blaze", "haar", "mtcnn")
DEFAULT_DETECTOR = "blaze"

HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"  # as accurate as _default here, ~25 % cheaper
HAAR_WINDOW = 24  # native window side of the bundled frontal-face cascade
HAAR_MIN_FACE = 0.14  # default smallest face, as a fraction of the image's shorter side (67 px at 480p)
_NEAR_SIDE = 56.0  # detect_near scans a copy on which the known face is about this wide
_NEAR_SCALE_FACTOR = 1.2  # detect_near's size steps: finer than a full scan's, the region is small


class DetectorError(ValueError):
    """Bad detector name, parameter or input image."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in image pixels: top-left corner ``(x, y)``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    def __iter__(self) -> Iterator[int]:
        return iter((self.x, self.y, self.w, self.h))

    def as_list(self) -> list[int]:
        """``[x, y, w, h]`` as plain ints (JSON-serialisable)."""
        return [int(self.x), int(self.y), int(self.w), int(self.h)]

    @property
    def area(self) -> int:
        return max(self.w, 0) * max(self.h, 0)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def iou(self, other: "Box") -> float:
        """Intersection over union with another box (0 when they do not overlap)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, f: float) -> "Box":
        """The box with every coordinate multiplied by ``f`` (e.g. to map back from a resized copy)."""
        return Box(int(round(self.x * f)), int(round(self.y * f)), int(round(self.w * f)), int(round(self.h * f)))

    def clipped(self, width: int, height: int) -> "Box":
        """The part of the box inside a ``width``×``height`` image (may be empty: w or h = 0)."""
        x0, y0 = min(max(self.x, 0), width), min(max(self.y, 0), height)
        x1, y1 = min(max(self.x + self.w, 0), width), min(max(self.y + self.h, 0), height)
        return Box(x0, y0, x1 - x0, y1 - y0)


@runtime_checkable
class FaceDetector(Protocol):
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


def fit_within(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` so its longer side is at most ``max_side`` (never upscale).

    Returns the (possibly unchanged) image and the factor that maps its pixels back to the
    original's: ``original = small * factor``.
    """
    import cv2

    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image, 1.0
    s = max_side / longest
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), longest / max_side


def _to_boxes(rects: Any, factor: float, width: int, height: int) -> list[Box]:
    """Detector rectangles (x, y, w, h) in a resized copy → clipped boxes in original pixels, left to right."""
    boxes = [Box(*(int(v) for v in r[:4])).scaled(factor).clipped(width, height) for r in rects]
    return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: (b.x, b.y))


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
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
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
        return _to_boxes(rects, width / sw, width, height)

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
            crop = cv2.resize(crop, (max(1, round(region.w * s)), max(1, round(region.h * s))), interpolation=cv2.INTER_AREA)
        if min(crop.shape[:2]) < HAAR_WINDOW:
            return []
        if self.equalize:
            crop = cv2.equalizeHist(crop)
        lo = max(HAAR_WINDOW, int(side * s / size_range))
        hi = max(lo + 1, int(round(side * s * size_range)))
        with self._lock:
            rects = self._cascade.detectMultiScale(
                crop, scaleFactor=min(self.scale_factor, _NEAR_SCALE_FACTOR), minNeighbors=self.min_neighbors,
                minSize=(lo, lo), maxSize=(hi, hi),
            )
        height, width = gray.shape[:2]
        return [
            Box(region.x + round(x / s), region.y + round(y / s), round(w / s), round(h / s)).clipped(width, height)
            for (x, y, w, h) in (tuple(int(v) for v in r[:4]) for r in rects)
        ]


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
        return _to_boxes(rects, factor, rgb.shape[1], rgb.shape[0])


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A 3-channel view/copy of a gray (H×W or H×W×1), RGB or RGBA uint8 image."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[:, :, :3]


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> FaceDetector:
    """Build a detector by name: ``"blaze"`` (BlazeFace, fast and accurate: the default), ``"haar"``
    (OpenCV's cascade) or ``"mtcnn"`` (accurate on hard faces, ~10× slower)."""
    key = str(name).strip().lower()
    if key == "blaze":
        from fercore.blaze import BlazeFaceDetector

        cls: type = BlazeFaceDetector
    elif key == "haar":
        cls = HaarDetector
    elif key == "mtcnn":
        cls = MTCNNDetector
    else:
        raise DetectorError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
    try:
        return cls(**params)
    except TypeError as exc:  # an unknown keyword
        raise DetectorError(f"bad parameter for the {key} detector: {exc}") from None


def make_stream_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> FaceDetector:
    """A detector for one live stream (webcam or video): Haar wrapped in a :class:`TrackingDetector`
    (stateful: one per stream), or the named detector itself when it has no tracking mode."""
    detector = make_detector(name, **params)
    if isinstance(detector, HaarDetector):
        return TrackingDetector(detector)
    return detector
