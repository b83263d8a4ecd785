"""The one frame pipeline: detect → crop → classify → track → draw, used by photos, videos, the
webcam and the CLI.

``FramePipeline.__init__`` builds each step; ``__call__`` only sequences them. A pipeline without a
tracker holds no per-stream state and may be shared between threads (its detector and classifier
are thread-safe on their own). A pipeline with a tracker (or a stream detector) belongs to one
stream: build one per video or webcam session around a shared classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fercore.inference.classify import EmotionClassifier
from fercore.inference.detectors import DEFAULT_DETECTOR, FaceDetector, check_image, make_detector, make_stream_detector
from fercore.inference.draw import annotate
from fercore.inference.image import ImageSource, fit_within, load_image, to_gray
from fercore.inference.preprocess import crop_faces
from fercore.inference.track import FaceTracker
from fercore.models.ensemble import load_classifier
from fercore.types import Box, FacePrediction

Drawer = Callable[[np.ndarray, list[FacePrediction]], np.ndarray]


@dataclass
class FrameResult:
    """What one frame gave: its faces (numbered left to right, or by track) and, when drawing, the annotated copy."""

    faces: list[FacePrediction]
    image: np.ndarray | None = field(default=None, repr=False)


class FramePipeline:
    """Faces and emotions of one frame.

    ``detector``: a ``FaceDetector`` or a detector name (``stream=True`` builds the name's stream
    variant: Haar then follows faces between full scans). ``classifier``: an ``EmotionClassifier``,
    a tier name ("fast", "accurate"), a model path, or None for the shipped model. ``tracker``: a ``FaceTracker`` (or True for a new
    one) gives stable ids and smoothed scores across frames. ``adjust`` post-processes the tracked
    faces (e.g. a personal calibration) before ``draw`` returns an annotated copy.
    Frames whose longer side exceeds ``max_side`` are downscaled for detection only: boxes come back
    in the original pixels and crops are cut from the full-resolution frame. With
    ``whole_image_fallback``, a frame without a detected face is classified as one face (marked
    ``whole_image``) — for photos that are already face crops.
    Without a tracker, the faces of a frame are numbered 1…n left to right (``number_faces``): the
    number on a photo's boxes, charts, table, CSV and JSON. A tracker's ids replace them in streams.
    """

    def __init__(
        self,
        detector: FaceDetector | str | None = None,
        classifier: EmotionClassifier | str | Path | None = None,
        tracker: FaceTracker | bool = False,
        draw: bool | Drawer = False,
        max_side: int = 1600,
        stream: bool = False,
        whole_image_fallback: bool = False,
        adjust: Callable[[list[FacePrediction]], list[FacePrediction]] | None = None,
    ):
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        if detector is None or isinstance(detector, str):
            build = make_stream_detector if stream else make_detector
            detector = build(detector or DEFAULT_DETECTOR)
        self.detector: FaceDetector = detector
        if not isinstance(classifier, EmotionClassifier):
            classifier = load_classifier(classifier)
        self.classifier = classifier
        self.tracker: FaceTracker | None = FaceTracker() if tracker is True else (tracker or None)
        self.drawer: Drawer | None = annotate if draw is True else (draw or None)
        self.max_side = int(max_side)
        self.whole_image_fallback = bool(whole_image_fallback)
        self.adjust = adjust

    def __call__(self, frame: np.ndarray) -> FrameResult:
        """Run every step on one RGB uint8 frame."""
        gray = to_gray(check_image(frame))
        boxes = self.detect(frame, gray)
        if boxes or not self.whole_image_fallback:
            faces = self.classify(gray, boxes)
        else:
            faces = self.classify_whole(gray)
        faces = self.tracker.update(faces) if self.tracker is not None else number_faces(faces)
        if self.adjust is not None:
            faces = self.adjust(faces)
        return FrameResult(faces, self.drawer(frame, faces) if self.drawer else None)

    def predict(self, image: ImageSource) -> list[FacePrediction]:
        """Faces in ``image`` (anything ``load_image`` accepts: array, path or bytes)."""
        return self(load_image(image)).faces

    def detect(self, rgb: np.ndarray, gray: np.ndarray | None = None) -> list[Box]:
        """Face boxes in ``rgb``'s pixels (detection runs on a copy no larger than ``max_side``)."""
        detect_gray = getattr(self.detector, "detect_gray", None)
        if detect_gray is not None:  # Haar works on gray: convert once, shared with the crops
            small, factor = fit_within(gray if gray is not None else to_gray(rgb), self.max_side)
            boxes = detect_gray(small)
        else:
            small, factor = fit_within(rgb, self.max_side)
            boxes = self.detector.detect(small)
        if factor == 1.0:
            return list(boxes)
        h, w = rgb.shape[:2]
        return [b.scaled(factor).clipped(w, h) for b in boxes]

    def classify(self, gray: np.ndarray, boxes: list[Box]) -> list[FacePrediction]:
        """Classify the faces at ``boxes`` (original pixels) of a gray frame in one classifier call."""
        if not boxes:
            return []
        faces = crop_faces(gray, [(b.x, b.y, b.w, b.h) for b in boxes])
        probs = self.classifier.predict_proba(faces)
        return [FacePrediction.from_probs(b, p, f) for b, p, f in zip(boxes, probs, faces, strict=True)]

    def classify_whole(self, gray: np.ndarray) -> list[FacePrediction]:
        """The whole frame as one face (squared with edge padding, no margin), marked ``whole_image``."""
        box = Box(0, 0, gray.shape[1], gray.shape[0])
        face = crop_faces(gray, [(box.x, box.y, box.w, box.h)], margin=0.0)
        pred = FacePrediction.from_probs(box, self.classifier.predict_proba(face)[0], face[0])
        pred.whole_image = True
        return [pred]

    def reset(self) -> None:
        """Start a new stream: forget tracks and followed faces."""
        if self.tracker is not None:
            self.tracker.reset()
        reset = getattr(self.detector, "reset", None)
        if callable(reset):
            reset()


def number_faces(faces: list[FacePrediction]) -> list[FacePrediction]:
    """The faces of one still image in reading order, left to right (by box x, then y), with
    ``face_id`` 1…n: the one numbering a photo's outputs share, stable for the same image."""
    ordered = sorted(faces, key=lambda f: (f.box.x, f.box.y))
    return [replace(face, face_id=i) for i, face in enumerate(ordered, 1)]
