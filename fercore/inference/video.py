"""Video file → annotated MP4 (H.264, yuv420p: plays in browsers) + one table row per face per frame.

Every input frame is written to the output, so it keeps the input's frame count and duration.
With ``stride`` N, faces are detected and classified on every N-th frame only; the frames in
between show the latest annotations and get no table rows. Frames go through a
``FramePipeline`` with a tracker: each row carries a stable ``face_id`` and smoothed probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from fercore.inference.draw import annotate
from fercore.inference.pipeline import FramePipeline
from fercore.labels import EMOTIONS
from fercore.types import ROW_COLUMNS, FacePrediction, VideoError, one_line

TABLE_COLUMNS: list[str] = ["frame", "time_s", *ROW_COLUMNS]
# Browser-playable encoders first; mpeg4 (part 2) is a last resort that browsers do not play.
ENCODERS: tuple[str, ...] = ("libx264", "h264", "libopenh264", "mpeg4")
DEFAULT_FPS = Fraction(25)
_MS = Fraction(1, 1000)  # time base of timed frames


@dataclass
class VideoResult:
    """What ``process_video`` produced: frames written, their rate, the per-face table and files."""

    frames: int
    fps: float
    table: pd.DataFrame
    out_path: Path
    csv_path: Path | None
    analysed: int = 0
    codec: str = ""
    warning: str | None = None  # e.g. decoding stopped early at a corrupt frame


def pick_encoder() -> str:
    """The first available encoder of ``ENCODERS`` (libx264 in the PyAV wheels we use)."""
    import av

    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # not compiled into this FFmpeg build
            continue
    raise VideoError("no H.264 or MPEG-4 encoder available in this PyAV build")


class VideoWriter:
    """Encodes RGB frames to a browser-playable MP4 file; the size is fixed (rounded down to even).

    ``write(rgb)`` gives frames a constant rate ``fps``; ``write(rgb, time_s)`` stamps each frame with
    its own time instead (a webcam delivers frames at a varying rate; the video then lasts as long as
    the recording did).
    """

    def __init__(self, path: Path, fps: Fraction, width: int, height: int, timed: bool = False):
        import av

        self.codec = pick_encoder()
        self._last_pts = -1
        self.width, self.height = width - width % 2, height - height % 2
        if self.width < 2 or self.height < 2:
            raise VideoError(f"frames of {width}×{height} are too small to encode")
        self.container = av.open(str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"})
        try:
            self.stream: Any = cast(Any, self.container.add_stream(self.codec, rate=fps))  # a VideoStream
            self.stream.width, self.stream.height = self.width, self.height
            self.stream.pix_fmt = "yuv420p"
            if self.codec in ("libx264", "h264"):
                self.stream.options = {"crf": "23", "preset": "veryfast", "profile": "high"}
            if timed:
                self.stream.codec_context.time_base = _MS
        except Exception:
            self.container.close()
            path.unlink(missing_ok=True)
            raise

    def write(self, rgb: np.ndarray, time_s: float | None = None) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        if time_s is not None:
            pts = int(round(time_s * 1000))
            self._last_pts = pts = max(pts, self._last_pts + 1)  # strictly increasing
            frame.pts, frame.time_base = pts, _MS
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()


def open_input(path: Path):
    """(container, first video stream) or ``VideoError``."""
    import av

    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"{path}: not a readable video ({one_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def frame_rate(stream) -> Fraction:
    """The stream's average frame rate, its guessed rate, or 25 fps."""
    for rate in (stream.average_rate, getattr(stream, "guessed_rate", None), stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return Fraction(rate).limit_denominator(1001)
    return DEFAULT_FPS


def expected_frames(stream, fps: Fraction, max_frames: int | None) -> int:
    """Expected number of frames (for progress); 0 when unknown."""
    n = int(stream.frames or 0)
    if not n and stream.duration and stream.time_base:
        n = int(round(float(stream.duration * stream.time_base) * float(fps)))
    return min(n, max_frames) if max_frames and n else (max_frames or n)


def face_rows(index: int, time_s: float, preds: list[FacePrediction]) -> list[dict[str, Any]]:
    return [{"frame": index, "time_s": round(time_s, 4), **p.to_row()} for p in preds]


class _Reader:
    """Decoded frames of a video as (time in s from the first frame, RGB array); remembers why it stopped."""

    def __init__(self, path: Path, max_frames: int | None):
        self.path, self.max_frames = path, max_frames
        self.container, self.stream = open_input(path)
        self.fps = frame_rate(self.stream)
        self.expected = expected_frames(self.stream, self.fps, max_frames)
        self.count = 0
        self.warning: str | None = None

    def __iter__(self):
        import av

        frames = self.container.decode(self.stream)
        t0 = None
        while self.max_frames is None or self.count < self.max_frames:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (av.FFmpegError, ValueError) as exc:
                if self.count == 0:
                    raise VideoError(f"{self.path}: cannot decode video ({one_line(exc)})") from None
                self.warning = f"decoding stopped at frame {self.count}: {one_line(exc)}"
                break
            t = frame.time
            t0 = t if t0 is None else t0
            time_s = t - t0 if t is not None and t0 is not None else self.count / float(self.fps)
            yield time_s, frame.to_ndarray(format="rgb24")
            self.count += 1
        self._check_complete()

    def _check_complete(self) -> None:
        declared = int(self.stream.frames or 0)
        if self.warning is None and declared and self.count < min(declared, self.max_frames or declared):
            self.warning = f"only {self.count} of {declared} frames could be decoded (truncated file?)"

    def close(self) -> None:
        self.container.close()


def process_video(
    in_path: str | Path,
    out_path: str | Path,
    csv_path: str | Path | None = None,
    pipeline: FramePipeline | None = None,
    stride: int = 1,
    progress: Callable[[float], None] | None = None,
    max_frames: int | None = None,
) -> VideoResult:
    """Annotate every frame of ``in_path`` into ``out_path`` (MP4) and tabulate the faces.

    ``pipeline`` defaults to BlazeFace + the shipped model with a tracker; it is reset first (one
    pipeline per stream). ``progress`` is called with the fraction done (0–1) and may raise to
    cancel. Raises ``VideoError`` for input that is not a readable video; a corrupt tail after good
    frames ends the video early with a warning.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if in_path.resolve() == out_path.resolve():
        raise VideoError(f"{out_path}: output would overwrite the input")
    pipeline = pipeline or FramePipeline(stream=True, tracker=True, draw=True)
    pipeline.reset()  # tracks and followed faces start afresh on every video
    reader = _Reader(in_path, max_frames)
    writer: VideoWriter | None = None
    rows: list[dict[str, Any]] = []
    preds: list[FacePrediction] = []
    try:
        for index, (time_s, rgb) in enumerate(reader):
            if writer is None:
                out_path.parent.mkdir(parents=True, exist_ok=True)
                writer = VideoWriter(out_path, reader.fps, rgb.shape[1], rgb.shape[0])
            if index % stride == 0:
                result = pipeline(rgb)
                preds = result.faces
                rows.extend(face_rows(index, time_s, preds))
                writer.write(result.image if result.image is not None else annotate(rgb, preds))
            else:  # in between: the latest annotations, nothing new to analyse
                writer.write((pipeline.drawer or annotate)(rgb, preds))
            if progress and reader.expected:
                progress(min((index + 1) / reader.expected, 0.999))
        if writer is None:
            raise VideoError(f"{in_path}: no frames could be decoded")
        writer.close()
    except BaseException:
        if writer is not None:
            _close_quietly(writer)
            out_path.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    table = _table(rows, csv_path)
    if progress:
        progress(1.0)
    return VideoResult(
        frames=reader.count,
        fps=float(reader.fps),
        table=table,
        out_path=out_path,
        csv_path=Path(csv_path) if csv_path is not None else None,
        analysed=(reader.count + stride - 1) // stride,
        codec=writer.codec,
        warning=reader.warning,
    )


def emotion_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per face, the share of its rows (frames) labelled with each emotion: columns ``face_id`` and the 7."""
    if table.empty:
        return pd.DataFrame(columns=["face_id", *EMOTIONS])
    share = pd.crosstab(table["face_id"], table["label"], normalize="index")
    return share.reindex(columns=list(EMOTIONS), fill_value=0.0).reset_index()


def _table(rows: list[dict[str, Any]], csv_path: str | Path | None) -> pd.DataFrame:
    """The per-face table (written to ``csv_path`` when given)."""
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["face_id"] = table["face_id"].astype("Int64")
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv_path, index=False)
    return table


def _close_quietly(writer: VideoWriter) -> None:
    try:
        writer.container.close()
    except Exception:
        pass
