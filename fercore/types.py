"""Value types shared by every stage, and the errors that mean "bad input".

``Box`` and ``FacePrediction`` are the only things that travel between detector, classifier,
tracker, drawer and reports. ``FacePrediction.to_dict`` / ``to_row`` are the one serialiser for
JSON, CSV and the dashboard pages, so every output names its fields the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fercore.labels import EMOTIONS


class FerError(ValueError):
    """Base of the errors that mean the user's input is bad (one-line message, no traceback)."""


class DataError(FerError):
    """A dataset that cannot be read: wrong layout, malformed file, hostile archive, path not allowed."""


class ImageError(FerError):
    """An image that cannot be read: missing, empty, not an image, truncated or too large."""


class ImageTooLargeError(ImageError):
    """An image whose header claims more pixels than the caller's limit (refused before decoding)."""


class DetectorError(FerError):
    """Bad detector name, parameter or input image."""


def one_line(exc: BaseException) -> str:
    """A short one-line reason for an exception: its ``strerror`` (OS errors), else the first line of
    its message (FFmpeg's and Pillow's can run to several), else its type's name."""
    reason = getattr(exc, "strerror", None)
    if isinstance(reason, str) and reason:
        return reason
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class VideoError(FerError):
    """A video that cannot be read or written (missing, not a video, corrupt, no frames)."""


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

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when they do not overlap)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, f: float) -> Box:
        """The box with every coordinate multiplied by ``f`` (e.g. to map back from a resized copy)."""
        return Box(int(round(self.x * f)), int(round(self.y * f)), int(round(self.w * f)), int(round(self.h * f)))

    def clipped(self, width: int, height: int) -> Box:
        """The part of the box inside a ``width``×``height`` image (may be empty: w or h = 0)."""
        x0, y0 = min(max(self.x, 0), width), min(max(self.y, 0), height)
        x1, y1 = min(max(self.x + self.w, 0), width), min(max(self.y + self.h, 0), height)
        return Box(x0, y0, x1 - x0, y1 - y0)


# Column order of a face as a flat table row (CSV files, dataframes, the pages' tables).
ROW_COLUMNS: list[str] = ["face_id", "x", "y", "w", "h", "label", *EMOTIONS]


@dataclass
class FacePrediction:
    """One face: its box (original pixels), 7 emotion probabilities, the top label and the 48×48 crop.

    ``face_id`` is the face's number: 1…n left to right in a still image (``FramePipeline``), a
    track id in streams; None only for a prediction made outside a pipeline. ``raw_scores`` keeps the unsmoothed probabilities
    when a tracker has smoothed ``scores``.
    """

    box: Box
    scores: dict[str, float]
    label: str
    face: np.ndarray = field(repr=False, compare=False)
    face_id: int | None = None
    raw_scores: dict[str, float] | None = field(default=None, repr=False, compare=False)
    whole_image: bool = False  # the box is the whole image: no face was detected

    @classmethod
    def from_probs(cls, box: Box, probs: np.ndarray, face: np.ndarray) -> FacePrediction:
        """A prediction from one row of class probabilities (FER2013 order)."""
        scores = {name: float(p) for name, p in zip(EMOTIONS, probs, strict=True)}
        return cls(box=box, scores=scores, label=EMOTIONS[int(np.argmax(probs))], face=face)

    @property
    def confidence(self) -> float:
        """Probability of the label."""
        return float(self.scores[self.label])

    def to_dict(self) -> dict[str, Any]:
        """``{"face_id", "box": [x, y, w, h], "label", "scores": {emotion: p}}`` (JSON-serialisable)."""
        out: dict[str, Any] = {
            "face_id": None if self.face_id is None else int(self.face_id),
            "box": self.box.as_list(),
            "label": self.label,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
        }
        if self.raw_scores is not None:
            out["raw_scores"] = {k: round(float(v), 6) for k, v in self.raw_scores.items()}
        if self.whole_image:
            out["whole_image"] = True
        return out

    def to_row(self) -> dict[str, Any]:
        """A flat row with the keys of ``ROW_COLUMNS`` (CSV and tables)."""
        return {
            "face_id": None if self.face_id is None else int(self.face_id),
            **dict(zip("xywh", self.box.as_list(), strict=True)),
            "label": self.label,
            **{e: round(float(self.scores[e]), 5) for e in EMOTIONS},
        }
