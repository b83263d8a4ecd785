"""Faces followed across video frames: stable ids and smoothed emotion scores.

Each frame's faces are matched to the live tracks greedily by box overlap (IoU), falling back to
centre distance for faces that moved more than their overlap allows. A matched track's scores are
smoothed with an exponential moving average, and its label only changes when another emotion
beats the current one by ``switch_margin`` — so a steady face does not flicker between two close
emotions. Each track keeps a constant-velocity estimate of its motion, so a face that the detector
misses for a few frames while moving is matched where it should be now, not where it was last
seen. Tracks not seen for more than ``max_missed`` frames are retired; ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fercore.labels import EMOTIONS
from fercore.types import Box, FacePrediction


@dataclass
class Track:
    """A face being followed: its id, last box, smoothed scores, current label and frames missed."""

    face_id: int
    box: Box
    scores: np.ndarray
    label: int
    missed: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion in pixels per frame (smoothed)

    def predicted(self) -> Box:
        """Where the box should be on the next frame if the face keeps moving as it did."""
        steps = self.missed + 1
        dx, dy = self.velocity
        return Box(int(round(self.box.x + dx * steps)), int(round(self.box.y + dy * steps)), self.box.w, self.box.h)


class FaceTracker:
    """Assigns stable ids to faces across frames and smooths their scores.

    ``smoothing`` is the weight of the past in the moving average (0 = no smoothing; 0.6 means a
    new frame contributes 40 %). ``iou_threshold`` is the least overlap for a match;
    ``max_missed`` the frames a face may go undetected before its id is retired.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 8,
        smoothing: float = 0.6,
        switch_margin: float = 0.05,
        max_center_shift: float = 0.6,
    ):
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if switch_margin < 0.0:
            raise ValueError(f"switch_margin must be >= 0, got {switch_margin}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.smoothing = float(smoothing)
        self.switch_margin = float(switch_margin)
        self.max_center_shift = float(max_center_shift)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids start again from 1)."""
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, preds: list[FacePrediction]) -> list[FacePrediction]:
        """Match this frame's faces to the tracks; return them with ids and smoothed scores/labels."""
        pairs = self._match([p.box for p in preds])
        matched_tracks = {ti for _, ti in pairs}
        out: list[FacePrediction | None] = [None] * len(preds)
        for pi, ti in pairs:
            out[pi] = self._follow(self.tracks[ti], preds[pi])
        for pi, pred in enumerate(preds):
            if out[pi] is None:
                track = self._start(pred)
                matched_tracks.add(len(self.tracks) - 1)
                out[pi] = self._as_prediction(track, pred)
        self._age(matched_tracks)
        return [p for p in out if p is not None]

    # -------------------------------------------------------------------------------- helpers

    def _match(self, boxes: list[Box]) -> list[tuple[int, int]]:
        """Greedy one-to-one (prediction index, track index) pairs, best overlap first."""
        candidates = []
        for pi, box in enumerate(boxes):
            for ti, track in enumerate(self.tracks):
                expected = track.predicted()
                score = box.iou(expected)
                if score < self.iou_threshold:
                    shift = _center_shift(box, expected)
                    if shift > self.max_center_shift * (1 + track.missed):
                        continue
                    score = -shift  # centre-distance matches rank after every IoU match
                candidates.append((score, pi, ti))
        pairs, used_p, used_t = [], set(), set()
        for _, pi, ti in sorted(candidates, reverse=True):
            if pi not in used_p and ti not in used_t:
                pairs.append((pi, ti))
                used_p.add(pi)
                used_t.add(ti)
        return pairs

    def _follow(self, track: Track, pred: FacePrediction) -> FacePrediction:
        """Fold a new observation into a track."""
        new = _probs(pred)
        track.scores = self.smoothing * track.scores + (1.0 - self.smoothing) * new
        track.label = self._label(track.scores, track.label)
        (nx, ny), (ox, oy) = pred.box.center, track.box.center
        steps = track.missed + 1
        vx, vy = track.velocity
        track.velocity = (0.5 * vx + 0.5 * (nx - ox) / steps, 0.5 * vy + 0.5 * (ny - oy) / steps)
        track.box = pred.box
        track.missed = 0
        return self._as_prediction(track, pred)

    def _start(self, pred: FacePrediction) -> Track:
        scores = _probs(pred)
        track = Track(face_id=self._next_id, box=pred.box, scores=scores, label=int(np.argmax(scores)))
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _label(self, scores: np.ndarray, current: int) -> int:
        """Keep the current label unless another emotion leads it by ``switch_margin``."""
        best = int(np.argmax(scores))
        if best != current and scores[best] - scores[current] < self.switch_margin:
            return current
        return best

    def _age(self, seen: set[int]) -> None:
        """Count a missed frame for unseen tracks; retire those missed more than ``max_missed`` times."""
        for ti, track in enumerate(self.tracks):
            if ti not in seen:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]

    @staticmethod
    def _as_prediction(track: Track, pred: FacePrediction) -> FacePrediction:
        scores = {name: float(p) for name, p in zip(EMOTIONS, track.scores, strict=True)}
        return replace(
            pred, scores=scores, label=EMOTIONS[track.label], face_id=track.face_id, raw_scores=dict(pred.scores)
        )


def _probs(pred: FacePrediction) -> np.ndarray:
    return np.array([pred.scores[name] for name in EMOTIONS], dtype=np.float64)


def _center_shift(a: Box, b: Box) -> float:
    """Distance between box centres in units of the boxes' mean side."""
    (ax, ay), (bx, by) = a.center, b.center
    side = max((a.w + a.h + b.w + b.h) / 4.0, 1.0)
    return float(np.hypot(ax - bx, ay - by)) / side
