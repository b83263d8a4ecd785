"""A collection of videos → one CSV of faces per video (+ the annotated MP4 on request) and one summary
table, spread over the workers of an engine (``fercore.inference.engines``: a local process pool or Ray).

Each video is cut into time segments of ``segment_s`` seconds, so one long video spreads over several
workers. A worker analyses one segment with a fresh tracker and writes it to
``OUT/.parts/<video>/seg-NNNNN.json`` atomically (a temporary file, then a rename): a segment file is
there complete or not at all. When all of a video's segments are there, they are merged in time order
into ``OUT/<video>.csv`` (also written atomically), with the track ids of segment k offset by the
largest id of the segments before it, so ids stay unique within the video. A face crossing a segment
edge therefore gets a new id (and its smoothed scores start afresh) at the edge.

Resuming: a video whose CSV and ``result.json`` are there (made with the same options) is skipped; an
interrupted one is redone from its complete segments on. Nothing is appended, so nothing is duplicated.

Frames are numbered by their time stamp (``round(time_s × fps)``), which a worker can compute after
seeking into the middle of a file: for the usual constant-rate video this is the decoded frame count
that ``process_video`` uses.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd

from fercore.inference.draw import annotate
from fercore.inference.engines import Engine, worker_pipeline
from fercore.inference.pipeline import PipelineSpec
from fercore.inference.video import (
    TABLE_COLUMNS,
    VideoWriter,
    expected_frames,
    face_rows,
    frame_rate,
    open_input,
)
from fercore.labels import EMOTIONS
from fercore.types import FacePrediction, FerError, VideoError, one_line

VIDEO_SUFFIXES: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}
)
SUMMARY_COLUMNS: list[str] = [
    "video",
    "duration_s",
    "frames",
    "frames_analysed",
    "faces",
    "tracks",
    *(f"share_{e}" for e in EMOTIONS),
    "error",
]
PARTS = ".parts"  # per-video segment files under the output folder


@dataclass(frozen=True)
class CollectionOptions:
    """How every video of a collection is analysed. Changing any of these redoes finished videos."""

    spec: PipelineSpec = field(default_factory=PipelineSpec)
    stride: int = 1
    segment_s: float = 60.0
    annotate: bool = False
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not self.segment_s > 0:
            raise ValueError(f"segment length must be > 0 s, got {self.segment_s}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")

    def record(self) -> dict[str, Any]:
        """The options as JSON values, stored with every segment and result to recognise them."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class Segment:
    """One task: frames ``start`` ≤ index < ``end`` (None: to the end) of one video."""

    video: str
    parts: str  # the video's folder of segment files
    index: int
    start: int
    end: int | None
    fps: Fraction
    t0: float | None  # time stamp of the video's first frame (None: frames carry no time stamps)
    options: CollectionOptions
    source: str = ""  # the video's identity (path and size): a replaced file is not resumed from old parts

    @property
    def path(self) -> Path:
        return Path(self.parts) / f"seg-{self.index:05d}.json"


@dataclass
class VideoPlan:
    """One video of the collection: where its outputs go and its segments (or why it cannot be read)."""

    source: str
    name: str
    out_dir: Path
    segments: list[Segment] = field(default_factory=list)
    expected: int = 0
    error: str | None = None

    @property
    def parts(self) -> Path:
        return self.out_dir / PARTS / self.name

    @property
    def csv_path(self) -> Path:
        return self.out_dir / f"{self.name}.csv"

    @property
    def mp4_path(self) -> Path:
        return self.out_dir / f"{self.name}.annotated.mp4"

    @property
    def result_path(self) -> Path:
        return self.parts / "result.json"


@dataclass
class CollectionRun:
    """What ``run_collection`` did: the summary rows (one per video) and how many were skipped as done."""

    summary: list[dict[str, Any]]
    skipped: int = 0
    analysed: int = 0
    segments_run: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.summary if row["error"] and not row["frames"]]


# ----------------------------------------------------------------------------------------------
# Finding and planning


def find_videos(paths: Iterable[str | Path]) -> list[str]:
    """Files as given (whatever their suffix or existence: a bad one is reported, not ignored), folders
    walked recursively for video suffixes, and globs (``*``, ``?``, ``[``; ``**`` recursive) expanded.
    Sorted within a folder or glob; each file once."""
    found: dict[str, str] = {}
    for path in map(str, paths):
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if Path(f).suffix.lower() in VIDEO_SUFFIXES:
                        found.setdefault(os.path.abspath(os.path.join(root, f)), os.path.join(root, f))
        elif glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(m for m in glob.glob(path, recursive=True) if os.path.isfile(m))
            for m in matches or [path]:  # a glob matching nothing is reported as a missing file
                found.setdefault(os.path.abspath(m), m)
        else:
            found.setdefault(os.path.abspath(path), path)
    return list(found.values())


def output_names(videos: list[str]) -> list[str]:
    """One output name per video: its file stem, made unique with a hash of its path when stems clash."""
    stems = [Path(v).stem or "video" for v in videos]
    clash = {s for s in stems if stems.count(s) > 1}
    digest = [hashlib.sha1(os.path.abspath(v).encode()).hexdigest()[:8] for v in videos]
    return [f"{s}-{d}" if s in clash else s for s, d in zip(stems, digest, strict=True)]


def plan_video(source: str, name: str, out_dir: Path, options: CollectionOptions) -> VideoPlan:
    """Open ``source``, read its rate and first time stamp, and cut it into segments; an unreadable
    video gets a plan with its ``error`` and no segments."""
    plan = VideoPlan(source, name, out_dir)
    try:
        fps, t0, plan.expected = _probe(Path(source), options.max_frames)
    except FerError as exc:
        plan.error = str(exc).splitlines()[0]
        return plan
    step = max(1, math.ceil(options.segment_s * float(fps) / options.stride)) * options.stride
    count = max(1, math.ceil(plan.expected / step)) if plan.expected and t0 is not None else 1
    for k in range(count):
        end = (k + 1) * step if k < count - 1 else options.max_frames  # the last one runs to the end
        segment = Segment(source, str(plan.parts), k, k * step, end, fps, t0, options, _identity(source))
        plan.segments.append(segment)
    return plan


def _probe(path: Path, max_frames: int | None) -> tuple[Fraction, float | None, int]:
    """(frame rate, time of the first frame, expected frame count) or ``VideoError``."""
    import av

    container, stream = open_input(path)
    try:
        fps = frame_rate(stream)
        try:
            first = next(container.decode(stream))
        except StopIteration:
            raise VideoError(f"{path}: no frames could be decoded") from None
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"{path}: cannot decode video ({one_line(exc)})") from None
        return fps, first.time, expected_frames(stream, fps, max_frames)
    finally:
        container.close()


# ----------------------------------------------------------------------------------------------
# One segment (runs on a worker)


def run_segment(task: Segment) -> dict[str, Any]:
    """Analyse one segment and write ``task.path`` (and its annotated part) atomically.

    Returns the segment record without its rows. A video that cannot be decoded is recorded with its
    ``error`` (a re-run will not try it again); any other failure is returned, not recorded, so a
    re-run tries the segment again.
    """
    try:
        record = _analyse(task)
    except FerError as exc:
        record = _record(task, error=str(exc).splitlines()[0])
    except Exception as exc:  # a bug or a resource problem: reported, not recorded
        return {**_record(task, error=f"{type(exc).__name__}: {one_line(exc)}"), "recorded": False}
    _write_json(task.path, record)
    return {k: v for k, v in record.items() if k != "rows"} | {"recorded": True}


def _record(task: Segment, **fields: Any) -> dict[str, Any]:
    return {
        "options": task.options.record(),
        "source": task.source,
        "segment": task.index,
        "start": task.start,
        "frames": 0,
        "analysed": 0,
        "max_id": 0,
        "warning": None,
        "error": None,
        "rows": [],
        **fields,
    }


def _analyse(task: Segment) -> dict[str, Any]:
    options = task.options
    pipeline = worker_pipeline(options.spec, stream=True)  # drawing, if any, is done here
    pipeline.reset()  # tracks start afresh in every segment
    frames = _SegmentFrames(task)
    task.path.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(task) if options.annotate else None
    tmp_part = part.with_name(f"{part.stem}.{os.getpid()}.tmp.mp4") if part else None
    writer: VideoWriter | None = None
    rows: list[dict[str, Any]] = []
    preds: list[FacePrediction] = []
    count = analysed = 0
    try:
        for index, time_s, rgb in frames:
            if tmp_part is not None and writer is None:
                writer = VideoWriter(tmp_part, task.fps, rgb.shape[1], rgb.shape[0])
            if index % options.stride == 0:
                preds = pipeline(rgb).faces
                rows.extend(face_rows(index, time_s, preds))
                analysed += 1
            if writer is not None:  # frames in between show the latest annotations
                writer.write(annotate(rgb, preds))
            count += 1
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp_part, part)  # type: ignore[arg-type]
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.container.close()
        if tmp_part is not None:
            tmp_part.unlink(missing_ok=True)
    ids = [r["face_id"] for r in rows if r["face_id"] is not None]
    return _record(
        task,
        frames=count,
        analysed=analysed,
        max_id=max(ids, default=0),
        warning=frames.warning,
        rows=[[r[c] for c in TABLE_COLUMNS] for r in rows],
    )


def _part_path(task: Segment) -> Path:
    return task.path.with_suffix(".mp4")


class _SegmentFrames:
    """``(frame index, time in s, RGB)`` of one segment: seeks to the key frame before its start and
    decodes from there (from the beginning if the container cannot seek there)."""

    def __init__(self, task: Segment):
        self.task = task
        self.warning: str | None = None

    def __iter__(self) -> Iterator[tuple[int, float, Any]]:
        task = self.task
        frames = self._decode(seek=task.start > 0)
        first = next(frames, None)
        if first is not None and first[0] > task.start and task.start > 0:  # the seek overshot
            frames = self._decode(seek=False)
            first = next(frames, None)
        if first is None:
            return
        for item in _chain_one(first, frames):
            if item[0] < task.start:
                continue
            if task.end is not None and item[0] >= task.end:
                break
            yield item

    def _decode(self, seek: bool) -> Iterator[tuple[int, float, Any]]:
        import av

        task = self.task
        container, stream = open_input(Path(task.video))
        try:
            if seek and task.t0 is not None and stream.time_base:
                target = task.t0 + (task.start - 0.5) / float(task.fps)
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            decoded = container.decode(stream)
            count = 0
            while True:
                try:
                    frame = next(decoded)
                except StopIteration:
                    return
                except (av.FFmpegError, ValueError) as exc:
                    if task.start == 0 and count == 0:
                        raise VideoError(f"{task.video}: cannot decode video ({one_line(exc)})") from None
                    self.warning = f"decoding stopped after frame {task.start + count}: {one_line(exc)}"
                    return
                if frame.time is not None and task.t0 is not None:
                    time_s = frame.time - task.t0
                    index = int(round(time_s * float(task.fps)))
                else:  # no time stamps: planned as one segment, frames counted
                    index = count
                    time_s = count / float(task.fps)
                count += 1
                yield index, round(time_s, 4), frame.to_ndarray(format="rgb24")
        finally:
            container.close()


def _chain_one(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# ----------------------------------------------------------------------------------------------
# Merging and summarising (on the driver)


def _write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(data), encoding="utf-8"))


def _atomic(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary file renamed over it: readers see all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _done_segment(task: Segment) -> dict[str, Any] | None:
    """The segment's record if a finished one made with the same options is on disk."""
    record = _read_json(task.path)
    if not record or record.get("options") != task.options.record() or record.get("source") != task.source:
        return None
    if task.options.annotate and not record.get("error") and record.get("frames") and not _part_path(task).exists():
        return None
    return record


def merge_video(plan: VideoPlan, options: CollectionOptions) -> dict[str, Any]:
    """Merge the segment files of ``plan`` in time order into its CSV (and MP4), write its
    ``result.json`` and return its summary row."""
    records = [_read_json(s.path) for s in plan.segments]
    rows: list[list[Any]] = []
    offset = 0
    errors = [r["error"] for r in records if r["error"]]
    for record in records:
        for row in record["rows"]:
            if row[2] is not None:  # face_id
                row[2] += offset
            rows.append(row)
        offset += record["max_id"]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["face_id"] = table["face_id"].astype("Int64")
    frames = sum(r["frames"] for r in records)
    warnings = [r["warning"] for r in records if r["warning"]]
    if not errors and plan.expected and frames < plan.expected:
        warnings.append(f"only {frames} of {plan.expected} frames could be decoded (truncated file?)")
    if options.annotate and frames:
        parts = [(_part_path(s), r["frames"]) for s, r in zip(plan.segments, records, strict=True) if r["frames"]]
        _atomic(plan.mp4_path, lambda tmp: concat_mp4(parts, tmp, plan.segments[0].fps))
    _atomic(plan.csv_path, lambda tmp: table.to_csv(tmp, index=False))
    row = summary_row(plan.source, table, frames, sum(r["analysed"] for r in records), plan.segments[0].fps)
    row["error"] = "; ".join(e.removeprefix(f"{plan.source}: ") for e in errors + warnings)
    _write_json(plan.result_path, {"options": options.record(), "source": _identity(plan.source), "summary": row})
    for leftover in plan.parts.iterdir():  # the segments are in the CSV (and MP4) now
        if leftover != plan.result_path:
            leftover.unlink(missing_ok=True)
    return row


def summary_row(source: str, table: pd.DataFrame, frames: int, analysed: int, fps: Fraction) -> dict[str, Any]:
    """One line of the summary: the video's length, frames, faces, tracks and emotion shares."""
    labels = table["label"].value_counts(normalize=True) if len(table) else pd.Series(dtype=float)
    return {
        "video": source,
        "duration_s": round(frames / float(fps), 3) if fps else 0.0,
        "frames": frames,
        "frames_analysed": analysed,
        "faces": len(table),
        "tracks": int(table["face_id"].nunique()),
        **{f"share_{e}": round(float(labels.get(e, 0.0)), 4) for e in EMOTIONS},
        "error": "",
    }


def _error_row(source: str, error: str) -> dict[str, Any]:
    error = error.removeprefix(f"{source}: ")  # the row names the video already
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS, 0)
    row.update({f"share_{e}": 0.0 for e in EMOTIONS}, video=source, duration_s=0.0, error=error)
    return row


def _identity(source: str) -> str:
    """``resolved path:size in bytes``."""
    path = Path(source)
    return f"{path.resolve()}:{path.stat().st_size if path.exists() else None}"


def _finished(plan: VideoPlan, options: CollectionOptions) -> dict[str, Any] | None:
    result = _read_json(plan.result_path)
    if not result or result.get("options") != options.record() or result.get("source") != _identity(plan.source):
        return None
    if not plan.csv_path.exists() or (options.annotate and not plan.mp4_path.exists() and result["summary"]["frames"]):
        return None
    row: dict[str, Any] = result["summary"]
    return row


def concat_mp4(parts: list[tuple[Path, int]], out: Path, fps: Fraction) -> None:
    """Join ``(MP4 part, its frame count)`` made by ``VideoWriter`` with the same settings into one MP4,
    without re-encoding: each part's time stamps are shifted by the duration of the parts before it."""
    import av

    with av.open(str(out), "w", format="mp4", container_options={"movflags": "+faststart"}) as dst:
        ostream = None
        done = 0  # frames written so far
        for part, frames in parts:
            with av.open(str(part)) as src:
                istream = src.streams.video[0]
                if ostream is None:
                    ostream = dst.add_stream_from_template(istream)
                shift = int(round(done / fps / (istream.time_base or Fraction(1, 90_000))))
                for packet in src.demux(istream):
                    if packet.dts is None:  # the flush packet
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts += shift
                    packet.stream = ostream
                    dst.mux(packet)
                done += frames


# ----------------------------------------------------------------------------------------------
# The driver


def run_collection(
    sources: list[str],
    out_dir: str | Path,
    options: CollectionOptions,
    engine: Engine,
    show_progress: bool = False,
    analyse: Callable[[Segment], dict[str, Any]] = run_segment,
) -> CollectionRun:
    """Analyse every video of ``sources`` into ``out_dir`` on ``engine`` (resumable) and write the
    summary table ``summary.csv`` and ``summary.json``. Bad videos are rows with an ``error``.
    ``analyse`` runs one segment on a worker (a module-level function or picklable callable)."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = output_names(sources)
    summary: dict[int, dict[str, Any]] = {}
    plans: dict[int, VideoPlan] = {}
    run = CollectionRun(summary=[])
    for i, (source, name) in enumerate(zip(sources, names, strict=True)):
        plan = VideoPlan(source, name, out)
        finished = _finished(plan, options)
        if finished is not None:
            summary[i], run.skipped = finished, run.skipped + 1
            continue
        plan = plan_video(source, name, out, options)
        if plan.error is not None:
            summary[i] = _error_row(source, plan.error)
        else:
            plans[i] = plan
    missing = {i: {s.index for s in p.segments if _done_segment(s) is None} for i, p in plans.items()}
    todo = [s for i, p in plans.items() for s in p.segments if s.index in missing[i]]
    total = sum(p.expected for p in plans.values())
    done = sum(_segment_frames(p, s) for i, p in plans.items() for s in p.segments if s.index not in missing[i])
    bar = tqdm(total=total or None, initial=done, unit="frame", disable=not show_progress, smoothing=0.1)
    owner = {(s.parts, s.index): i for i, p in plans.items() for s in p.segments}
    with bar:
        for i in [i for i, m in missing.items() if not m]:  # every segment done by an earlier run
            summary[i] = merge_video(plans[i], options)
            run.analysed += 1
        for task, record in engine.map(analyse, todo):
            i = owner[(task.parts, task.index)]
            run.segments_run += 1
            bar.update(record["frames"])
            if not record["recorded"]:
                raise RuntimeError(f"{task.video}, segment {task.index}: {record['error']}")
            missing[i].discard(task.index)
            if not missing[i]:
                summary[i] = merge_video(plans[i], options)
                run.analysed += 1
    run.summary = [summary[i] for i in range(len(sources))]
    write_summary(run.summary, out)
    return run


def _segment_frames(plan: VideoPlan, seg: Segment) -> int:
    end = seg.end if seg.end is not None else plan.expected
    return max(0, min(end, plan.expected) - seg.start)


def write_summary(rows: list[dict[str, Any]], out_dir: Path) -> None:
    """``summary.csv`` and ``summary.json`` (a list of rows) in ``out_dir``, each written atomically."""
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    _atomic(out_dir / "summary.csv", lambda tmp: table.to_csv(tmp, index=False))
    _write_json(out_dir / "summary.json", rows)
