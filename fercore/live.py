"""One live stream (a webcam session): its own pipeline, and the hand-over of results to a page.

streamlit-webrtc calls the frame callback in a worker thread; it must never touch the page. A
``LiveSession`` runs each frame through the session's ``FramePipeline`` (a stream detector and a
tracker of its own around the shared, thread-safe classifier), keeps the latest annotated frame,
and puts ``(time, latency_s, faces)`` on a bounded queue that the page drains on its own schedule.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from fercore.classify import EmotionClassifier
from fercore.detectors import make_stream_detector
from fercore.pipeline import FramePipeline
from fercore.track import FaceTracker


class LiveSession:
    """Per-session state of a live stream; ``process`` is called from the stream's worker thread."""

    def __init__(self, classifier: EmotionClassifier, detector: str = "blaze", maxsize: int = 600) -> None:
        self.classifier = classifier
        self.queue: queue.Queue[tuple[float, float, list[dict[str, Any]]]] = queue.Queue(maxsize=maxsize)
        self.frames = 0
        self.last_frame: np.ndarray | None = None
        self._lock = threading.Lock()
        self.detector_name = detector
        self.pipeline = self._build(detector)

    def _build(self, detector: str) -> FramePipeline:
        return FramePipeline(make_stream_detector(detector), self.classifier, tracker=FaceTracker(), draw=True)

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
        self.last_frame = annotated
        self._publish((time.time(), time.perf_counter() - t0, [f.to_dict() for f in result.faces]))
        return annotated

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
