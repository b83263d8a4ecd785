"""A personal neutral baseline: read a face relative to its own expression at rest.

Many faces look "sad" or "angry" to a FER model when they are at rest. Capturing a few seconds of
the user's neutral face gives a baseline ``b`` — the mean of the model's raw probabilities over
those frames. The rule (a per-class prior correction, as in label-shift adaptation):

    p'_c ∝ p_c · q_c / b_c

with ``q`` a clearly neutral reference (``NEUTRAL_TARGET`` of neutral, the rest shared equally) and
``b`` floored at ``FLOOR``; ``p'`` is renormalised to sum to 1. A frame that looks exactly like the
baseline then reads as ``q`` (mostly neutral), and an emotion shows up as much as it grew relative
to the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike

from fercore.labels import EMOTIONS
from fercore.types import FacePrediction

NEUTRAL_TARGET = 0.5
FLOOR = 0.01
NEUTRAL = EMOTIONS.index("neutral")


def reference(neutral: float = NEUTRAL_TARGET) -> np.ndarray:
    """``q``: ``neutral`` on the neutral class, the rest shared equally by the other six."""
    if not 0.0 < neutral < 1.0:
        raise ValueError(f"neutral target must be in (0, 1), got {neutral}")
    q = np.full(len(EMOTIONS), (1.0 - neutral) / (len(EMOTIONS) - 1))
    q[NEUTRAL] = neutral
    return q


def fit_baseline(probs: np.ndarray) -> np.ndarray:
    """``b``: the mean of (n, 7) raw probabilities captured while the face was at rest."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(EMOTIONS) or len(probs) == 0:
        raise ValueError(f"expected (n ≥ 1, {len(EMOTIONS)}) probabilities, got shape {probs.shape}")
    b = probs.mean(axis=0)
    return b / b.sum()


def apply_baseline(probs: ArrayLike, baseline: ArrayLike, neutral: float = NEUTRAL_TARGET) -> np.ndarray:
    """Calibrated probabilities ``p' ∝ p · q / max(b, FLOOR)`` for one (7,) or many (n, 7) rows."""
    p = np.asarray(probs, dtype=np.float64)
    weights = reference(neutral) / np.maximum(np.asarray(baseline, dtype=np.float64), FLOOR)
    out = p * weights
    return out / out.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class CaptureResult:
    """How the last capture ended: frames seen per tracked face, and the faces that got a baseline."""

    frames: dict[int, int] = field(default_factory=dict)
    fitted: tuple[int, ...] = ()
    min_frames: int = 5

    def message(self) -> str:
        """One sentence for the user: what was fitted and, for a face that got none, why."""
        if not self.frames:
            return "No baseline: no face was seen during the capture. Face the camera and try again."
        short = {i: n for i, n in self.frames.items() if i not in self.fitted}
        parts = [f"Baseline fitted for face {', '.join(map(str, self.fitted))}."] if self.fitted else []
        if short:
            seen = ", ".join(f"face {i} in {n}" for i, n in sorted(short.items()))
            parts.append(
                f"No baseline for {seen} frame{'s' if max(short.values()) != 1 else ''} "
                f"(needs {self.min_frames}; the stream was too slow or the face left the view): try again."
            )
        return " ".join(parts)


class PersonalBaseline:
    """A pipeline step (after the tracker) that captures and applies per-face neutral baselines.

    ``start(seconds)`` captures the raw probabilities of every tracked face for that long; each face
    seen often enough (``min_frames``) gets its baseline, and ``last_capture`` says how it went.
    While ``enabled``, faces with a baseline have their scores (the tracker's smoothed ones) replaced
    by the calibrated ones; ``raw_scores`` keeps the model's.
    """

    def __init__(self, min_frames: int = 5) -> None:
        self.enabled = True
        self.min_frames = int(min_frames)
        self.baselines: dict[int, np.ndarray] = {}
        self._capture: dict[int, list[np.ndarray]] = {}
        self._until = 0.0
        self._pending = False
        self.last_capture: CaptureResult | None = None

    def start(self, seconds: float = 3.0, now: float | None = None) -> None:
        """Begin a capture of ``seconds``: the user should hold a neutral face."""
        import time

        self._capture = {}
        self._until = (time.time() if now is None else now) + float(seconds)
        self._pending = True

    @property
    def capturing(self) -> bool:
        import time

        return time.time() < self._until

    def __call__(self, faces: list[FacePrediction], now: float | None = None) -> list[FacePrediction]:
        import time

        now = time.time() if now is None else now
        if self._pending:
            self._collect(faces, now)
        if not self.enabled:
            return faces
        out = []
        for face in faces:
            b = self.baselines.get(face.face_id) if face.face_id is not None else None
            if b is None:
                out.append(face)
                continue
            p = apply_baseline([face.scores[e] for e in EMOTIONS], b)
            scores = {e: float(v) for e, v in zip(EMOTIONS, p, strict=True)}
            out.append(
                replace(
                    face, scores=scores, label=EMOTIONS[int(np.argmax(p))], raw_scores=face.raw_scores or face.scores
                )
            )
        return out

    def _collect(self, faces: list[FacePrediction], now: float) -> None:
        if now < self._until:
            for face in faces:
                if face.face_id is not None:
                    raw = face.raw_scores or face.scores
                    self._capture.setdefault(face.face_id, []).append(np.array([raw[e] for e in EMOTIONS]))
            return
        fitted = []  # the capture just ended: fit what was seen enough, and say how it went
        for face_id, rows in self._capture.items():
            if len(rows) >= self.min_frames:
                self.baselines[face_id] = fit_baseline(np.stack(rows))
                fitted.append(face_id)
        frames = {i: len(rows) for i, rows in self._capture.items()}
        self.last_capture = CaptureResult(frames, tuple(sorted(fitted)), self.min_frames)
        self._capture = {}
        self._pending = False
