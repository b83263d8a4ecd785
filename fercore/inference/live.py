"""One live stream (a webcam session): its own pipeline, and the hand-over of results to a page.

streamlit-webrtc calls the frame callback in a worker thread; it must never touch the page. A
``LiveSession`` runs each frame through the session's ``FramePipeline`` (a stream detector and a
tracker of its own around the shared, thread-safe classifier), keeps the latest annotated frame,
and puts ``(time, latency_s, faces)`` on a bounded queue that the page drains on its own schedule.
When ``FER_LIVE_STATS`` names a folder, each session also appends its per-frame timings to a file
there (``FrameLog``): how ``bench/live_capacity.py`` reads a running server from outside.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fercore.inference.baseline import PersonalCalibration
from fercore.inference.classify import EmotionClassifier
from fercore.inference.detectors import make_stream_detector
from fercore.inference.pipeline import FramePipeline
from fercore.inference.track import FaceTracker
from fercore.inference.video import VideoWriter, emotion_shares
from fercore.labels import EMOTIONS
from fercore.types import ROW_COLUMNS, FacePrediction

RECORD_COLUMNS: list[str] = ["frame", "time_s", *ROW_COLUMNS, *(f"raw_{e}" for e in EMOTIONS)]
MAX_RECORD_SECONDS = 120.0
STATS_ENV = "FER_LIVE_STATS"


@dataclass
class RecordingResult:
    """A finished recording, held in memory (nothing stays on disk): the table and three downloads."""

    table: pd.DataFrame
    mp4: bytes
    seconds: float
    frames: int
    camera_started: bool = True  # had the session processed any frame when the recording ended?

    def empty_reason(self) -> str | None:
        """Why the recording holds no face rows (None when it holds some): the camera never started,
        no frame arrived while recording, or frames came but no face was seen in them."""
        if self.frames == 0 and not self.camera_started:
            return "the camera never started (press START above and allow the camera, then record)"
        if self.frames == 0:
            return "no frame arrived while recording (the camera was stopped or paused)"
        if self.table.empty:
            n = self.frames
            return f"no face was seen in the {n} recorded frame{'s' * (n != 1)}"
        return None

    def csv(self) -> bytes:
        return self.table.to_csv(index=False).encode()

    def json(self) -> bytes:
        return json.dumps(
            {"seconds": self.seconds, "frames": self.frames, "rows": self.table.to_dict("records")}, default=str
        ).encode()

    def summary(self) -> pd.DataFrame:
        """Per face: the share of recorded frames spent in each emotion (rows: faces, columns: emotions)."""
        return emotion_shares(self.table)


class Recording:
    """Rows and an H.264 MP4 of the annotated frames, written to a private temporary folder."""

    def __init__(self, max_seconds: float = 60.0) -> None:
        if not 0 < max_seconds <= MAX_RECORD_SECONDS:
            raise ValueError(f"a recording lasts 0–{MAX_RECORD_SECONDS:.0f} s, got {max_seconds}")
        self.max_seconds = float(max_seconds)
        self.folder = Path(tempfile.mkdtemp(prefix="fer-recording-"))
        # the folder goes when the recording is dropped, even if the session ends while recording
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.rows: list[dict[str, Any]] = []
        self.frames = 0
        self.t0: float | None = None
        self.elapsed = 0.0
        self._writer: VideoWriter | None = None

    @property
    def full(self) -> bool:
        return self.elapsed >= self.max_seconds

    def add(self, annotated: np.ndarray, faces: list[FacePrediction], now: float) -> None:
        """Keep one processed frame (ignored once the length limit is reached)."""
        self.t0 = now if self.t0 is None else self.t0
        t = now - self.t0
        if t > self.max_seconds:
            self.elapsed = self.max_seconds
            return
        if self._writer is None:
            h, w = annotated.shape[:2]
            self._writer = VideoWriter(self.folder / "recording.mp4", Fraction(30), w, h, timed=True)
        self._writer.write(annotated, t)
        for face in faces:
            raw = face.raw_scores or face.scores
            row = {"frame": self.frames, "time_s": round(t, 3), **face.to_row()}
            self.rows.append(row | {f"raw_{e}": round(float(raw[e]), 5) for e in EMOTIONS})
        self.frames += 1
        self.elapsed = t

    def finish(self) -> RecordingResult:
        """Close the video, read everything into memory and delete the folder."""
        try:
            if self._writer is not None:
                self._writer.close()
            mp4_file = self.folder / "recording.mp4"
            mp4 = mp4_file.read_bytes() if mp4_file.exists() else b""
        finally:
            self._cleanup()
        table = pd.DataFrame(self.rows, columns=RECORD_COLUMNS)
        return RecordingResult(table=table, mp4=mp4, seconds=round(self.elapsed, 3), frames=self.frames)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._cleanup()


class FrameLog:
    """Per-frame timings of one stream, appended to a file of its own: wall time, processing seconds, faces.

    Off unless ``FER_LIVE_STATS`` names a folder (``from_env``). A file per stream lets a reader tell
    streams apart without any id from the page; one short append per frame costs microseconds.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"stream-{os.getpid()}-{uuid.uuid4().hex[:12]}.tsv"

    @classmethod
    def from_env(cls) -> FrameLog | None:
        folder = os.environ.get(STATS_ENV, "").strip()
        return cls(Path(folder)) if folder else None

    def add(self, t: float, latency_s: float, faces: int) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{t:.6f}\t{latency_s:.6f}\t{faces}\n")

    @staticmethod
    def read(path: Path) -> np.ndarray:
        """The rows of one log as an (n, 3) float array (a half-written last line is skipped)."""
        rows = []
        for line in Path(path).read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                try:
                    rows.append([float(v) for v in parts])
                except ValueError:
                    continue
        return np.array(rows, dtype=float).reshape(-1, 3)


class LiveSession:
    """Per-session state of a live stream; ``process`` is called from the stream's worker thread."""

    def __init__(self, classifier: EmotionClassifier, detector: str = "blaze", maxsize: int = 600) -> None:
        self.classifier = classifier
        self.queue: queue.Queue[tuple[float, float, list[dict[str, Any]]]] = queue.Queue(maxsize=maxsize)
        self.frames = 0
        self.last_frame: np.ndarray | None = None
        self.last_frame_at: float | None = None  # time.time() when the last frame was processed
        self.calibration = PersonalCalibration()
        self.recording: Recording | None = None
        self._lock = threading.Lock()
        self.detector_name = detector
        self.pipeline = self._build(detector)
        self.frame_log = FrameLog.from_env()

    def _build(self, detector: str) -> FramePipeline:
        return FramePipeline(
            make_stream_detector(detector), self.classifier, tracker=FaceTracker(), adjust=self.calibration, draw=True
        )

    def use_detector(self, name: str) -> None:
        """Switch this stream's detector (a new pipeline: tracks start afresh)."""
        if name != self.detector_name:
            pipeline = self._build(name)
            with self._lock:
                self.pipeline, self.detector_name = pipeline, name

    def process(self, rgb: np.ndarray) -> np.ndarray:
        """Run one frame through the pipeline; returns the annotated frame and publishes the faces."""
        t0 = time.perf_counter()
        with self._lock:  # frames of one stream are sequential; the lock only guards a detector switch
            result = self.pipeline(rgb)
            self.frames += 1
            annotated = result.image if result.image is not None else rgb
            if self.recording is not None:
                self.recording.add(annotated, result.faces, time.time())
        now, latency = time.time(), time.perf_counter() - t0
        self.last_frame, self.last_frame_at = annotated, now
        self._publish((now, latency, [f.to_dict() for f in result.faces]))
        if self.frame_log is not None:
            self.frame_log.add(now, latency, len(result.faces))
        return annotated

    def streaming(self, within: float = 3.0, now: float | None = None) -> bool:
        """Did a frame arrive in the last ``within`` seconds? (The camera is running, whatever the page heard.)"""
        now = time.time() if now is None else now
        return self.last_frame_at is not None and now - self.last_frame_at <= within

    def start_recording(self, max_seconds: float = 60.0) -> None:
        """Keep every processed frame's faces and the annotated video from now on (up to ``max_seconds``)."""
        recording = Recording(max_seconds)
        with self._lock:
            old, self.recording = self.recording, recording
        if old is not None:
            old.discard()

    def stop_recording(self) -> RecordingResult | None:
        """End the recording; its data in memory (None when none was running)."""
        with self._lock:
            recording, self.recording = self.recording, None
        if recording is None:
            return None
        result = recording.finish()
        result.camera_started = self.frames > 0
        return result

    def close(self) -> None:
        """Drop whatever is being recorded (the session ended)."""
        with self._lock:
            recording, self.recording = self.recording, None
        if recording is not None:
            recording.discard()

    def _publish(self, item: tuple[float, float, list[dict[str, Any]]]) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:  # nobody is reading (tab hidden): drop the oldest result
            try:
                self.queue.get_nowait()
                self.queue.put_nowait(item)
            except (queue.Empty, queue.Full):
                pass

    def drain(self) -> list[tuple[float, float, list[dict[str, Any]]]]:
        """Every result published since the last call (the page's side)."""
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def frame_callback(self) -> Any:
        """A streamlit-webrtc ``video_frame_callback`` that runs frames through this session."""
        import av

        def callback(frame: av.VideoFrame) -> av.VideoFrame:
            out = self.process(frame.to_ndarray(format="rgb24"))
            return av.VideoFrame.from_ndarray(out, format="rgb24")  # pts/time_base are copied by the library

        return callback


def parse_ice_servers(text: str) -> list[dict[str, Any]]:
    """ICE servers from JSON text (``[{"urls": …}, …]``); ValueError with a clear message otherwise."""
    try:
        servers = json.loads(text or "[]")
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError('expected a JSON list of {"urls": …} objects')
    return servers


class LiveHistory:
    """The page's rolling window of published results: rate, latency, last faces and a chart table."""

    def __init__(self, seconds: float = 20.0) -> None:
        self.seconds = float(seconds)
        self.items: list[tuple[float, float, list[dict[str, Any]]]] = []

    def extend(self, items: list[tuple[float, float, list[dict[str, Any]]]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.items = [i for i in self.items + items if now - i[0] <= self.seconds]

    def stats(self, now: float | None = None, window: float = 3.0) -> dict[str, Any]:
        """Frames per second and mean latency (ms) over the last ``window`` seconds, and the last faces."""
        now = time.time() if now is None else now
        recent = [i for i in self.items if now - i[0] <= window]
        span = recent[-1][0] - recent[0][0] if len(recent) > 1 else 0.0
        return {
            "fps": (len(recent) - 1) / span if span > 0 else 0.0,
            "latency_ms": 1000 * sum(i[1] for i in recent) / len(recent) if recent else 0.0,
            "faces": recent[-1][2] if recent else [],
        }

    def table(self, now: float | None = None) -> pd.DataFrame:
        """Long table (t seconds ago, face, emotion, p) for a per-face line chart."""
        now = time.time() if now is None else now
        rows = [
            {"t": t - now, "face": f"face {f['face_id']}", "emotion": e, "p": f["scores"].get(e, 0.0)}
            for t, _, faces in self.items
            for f in faces
            for e in EMOTIONS
        ]
        return pd.DataFrame(rows, columns=["t", "face", "emotion", "p"])
