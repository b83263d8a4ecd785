"""The moments worth a look in an analysed video: per face, the frame where each emotion peaked.

``pick_moments`` chooses rows of the per-face table that ``fercore.inference.video.process_video`` returns (the
highest probability of each emotion per ``face_id``); ``video_highlights`` then decodes the video
once, up to the last frame it needs, and keeps only crops of those faces. So the video loop needs no
hook and memory holds a handful of thumbnails, not frames. Frame numbers are decode order, as in
``process_video``'s table, so the input video and its annotated copy (same frames) both work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fercore.labels import EMOTIONS
from fercore.types import Box, VideoError


@dataclass
class Highlight:
    """The frame where ``emotion`` was most probable for face ``face_id``, and the face cropped from it."""

    face_id: int
    emotion: str
    probability: float
    frame: int
    time_s: float
    box: Box
    image: np.ndarray | None = field(default=None, repr=False)

    def caption(self) -> str:
        """``"happy 92 % · 0:03.4"``."""
        minutes, seconds = divmod(self.time_s, 60)
        return f"{self.emotion} {self.probability:.0%} · {int(minutes)}:{seconds:04.1f}"


def pick_moments(table: Any, min_probability: float = 0.0, max_faces: int | None = None) -> list[Highlight]:
    """Per face (the most seen first, at most ``max_faces``), per emotion in FER2013 order, the row
    with that emotion's highest probability, if it reaches ``min_probability``. Ties: the earliest."""
    if table is None or len(table) == 0:
        return []
    missing = {"frame", "time_s", "face_id", "x", "y", "w", "h", *EMOTIONS} - set(table.columns)
    if missing:
        raise ValueError(f"not a per-face video table: missing columns {sorted(missing)}")
    rows = table.dropna(subset=["face_id"])
    faces = rows["face_id"].value_counts(sort=False)
    order = sorted(faces.index, key=lambda f: (-faces[f], f))[:max_faces]
    out = []
    for face_id in order:
        one = rows[rows["face_id"] == face_id].sort_values("frame", kind="stable")
        for emotion in EMOTIONS:
            best = one.loc[one[emotion].idxmax()]
            if float(best[emotion]) >= min_probability:
                box = Box(*(int(best[k]) for k in "xywh"))
                out.append(
                    Highlight(
                        int(face_id), emotion, float(best[emotion]), int(best["frame"]), float(best["time_s"]), box
                    )
                )
    return out


def read_frames(video: str | Path, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB frame)`` for the decode-order indices in ``wanted``; stops after the last one."""
    import av

    if not wanted:
        return
    try:
        container = av.open(str(video), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"{video}: not a readable video ({exc})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{video}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = max(wanted)
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    yield index, frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
        except (av.FFmpegError, ValueError) as exc:  # a corrupt tail: the frames before it were given
            raise VideoError(f"{video}: decoding stopped before frame {last} ({exc})") from None


def thumbnail(rgb: np.ndarray, box: Box, pad: float = 0.25, size: int = 128) -> np.ndarray:
    """A colour picture of one face for people to look at (not the classifier's 48×48 input, which is
    :func:`fercore.inference.preprocess.crop_face`): the square around ``box`` (a ``Box`` in ``rgb``'s
    pixels) with ``pad`` of its size on each side, clipped to the frame, resized to ``size``×``size``;
    a black tile when the box lies outside."""
    import cv2

    h, w = rgb.shape[:2]
    side = max(box.w, box.h) * (1 + 2 * pad)
    cx, cy = box.center
    square = Box(int(cx - side / 2), int(cy - side / 2), int(side), int(side)).clipped(w, h)
    if square.w < 1 or square.h < 1:
        return np.zeros((size, size, 3), np.uint8)
    part = rgb[square.y : square.y + square.h, square.x : square.x + square.w]
    return cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA if part.shape[0] > size else cv2.INTER_LINEAR)


def video_highlights(
    table: Any,
    video: str | Path,
    min_probability: float = 0.0,
    max_faces: int | None = 8,
    size: int = 128,
    progress: Callable[[float], None] | None = None,
) -> list[Highlight]:
    """``pick_moments`` with each face cropped from its frame of ``video`` (the analysed input, or the
    annotated output to show the drawn box). ``progress(fraction)`` may raise to cancel."""
    moments = pick_moments(table, min_probability, max_faces)
    by_frame: dict[int, list[Highlight]] = {}
    for m in moments:
        by_frame.setdefault(m.frame, []).append(m)
    last = max(by_frame, default=0) + 1
    for index, rgb in read_frames(video, set(by_frame)):
        for m in by_frame[index]:
            m.image = thumbnail(rgb, m.box, size=size)
        if progress is not None:
            progress((index + 1) / last)
    return moments
