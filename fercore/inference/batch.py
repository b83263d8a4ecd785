"""Many images at once: find them (folders, zips), run one shared pipeline over them on a few threads,
and report one table — the Photo page's batch mode and ``python -m fercore predict … --csv``.

Memory stays bounded whatever the number of images: ``predict_images`` keeps at most a few images in
flight and yields results in input order, and ``BatchCsv`` appends each image's rows as soon as they
come, so an interrupted run resumes where it stopped. Zips are read member by member into memory
under ``BatchLimits`` (never extracted); bad members are skipped and listed, not fatal.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fercore.data.folders import IMAGE_EXTENSIONS
from fercore.inference.image import ImageSource, load_image
from fercore.inference.pipeline import FramePipeline
from fercore.types import ROW_COLUMNS, DataError, FacePrediction, FerError

IMAGE_SUFFIXES: frozenset[str] = frozenset(IMAGE_EXTENSIONS)
# One row per face; an image without a face (or unreadable: ``error``) gets one row with empty face fields.
BATCH_COLUMNS: list[str] = ["file", *ROW_COLUMNS, "whole_image", "error"]
Skipped = tuple[str, str]  # (name, why it was not analysed)


@dataclass(frozen=True)
class BatchLimits:
    """What one upload batch may hold: a zip of many small photos is fine, a zip bomb is not."""

    max_files: int = 500
    max_total_bytes: int = 500 * 2**20
    max_file_bytes: int = 50 * 2**20
    max_ratio: float = 100.0  # uncompressed / compressed size of a zip member (images barely compress)
    max_members: int = 5_000  # zip entries, folders and non-images included

    def describe(self) -> str:
        mb, n = 2**20, self.max_files
        total, each = self.max_total_bytes // mb, self.max_file_bytes // mb
        return f"up to {n} images and {total} MB in all (a zip up to {total} MB), each image up to {each} MB"


@dataclass
class ImageResult:
    """One image's faces (or why it could not be read) and, on request, an annotated preview."""

    file: str
    faces: list[FacePrediction] = field(default_factory=list)
    error: str | None = None
    preview: np.ndarray | None = field(default=None, repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """Rows with the keys of ``BATCH_COLUMNS``: one per face, or one with empty face fields."""
        if not self.faces:
            return [{"file": self.file, **dict.fromkeys(ROW_COLUMNS), "whole_image": None, "error": self.error}]
        return [{"file": self.file, **f.to_row(), "whole_image": f.whole_image, "error": None} for f in self.faces]

    def summary(self) -> dict[str, Any]:
        """``{"file", "faces": count, "labels": "happy, sad"}`` (or the error): one line per image."""
        labels = ", ".join(f.label + " (whole image)" * f.whole_image for f in self.faces)
        return {"file": self.file, "faces": len(self.faces), "labels": self.error or labels}

    def to_dict(self) -> dict[str, Any]:
        """``{"image", "faces": [FacePrediction.to_dict()]}`` or ``{"image", "error"}`` (the CLI's JSON entry)."""
        if self.error is not None:
            return {"image": self.file, "error": self.error}
        return {"image": self.file, "faces": [f.to_dict() for f in self.faces]}


def is_image_name(name: str) -> bool:  # by extension: folders also hold CSVs, notes, videos
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def find_images(paths: Iterable[str | Path]) -> list[str]:
    """The files to analyse: folders walked recursively for image suffixes (sorted), named files as given.

    A named file is kept whatever its suffix or existence, so that a bad one is reported, not ignored.
    Paths are strings, not images: a million of them fit in memory.
    """
    found: list[str] = []
    for path in map(str, paths):
        if not os.path.isdir(path):
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs.sort()
            found.extend(os.path.join(root, f) for f in sorted(files) if is_image_name(f))
    return found


# ----------------------------------------------------------------------------------------------
# Uploads: images and zips of images, read under limits


def read_uploads(
    items: Iterable[tuple[str, bytes]], limits: BatchLimits | None = None
) -> tuple[list[tuple[str, bytes]], list[Skipped]]:
    """``(images, skipped)`` from uploaded ``(name, bytes)``: zips are opened and their image members
    read one by one (named ``archive.zip/dir/x.png``); anything over ``limits`` is skipped and listed,
    and so is a zip refused as a whole (not a zip, hostile: the ``DataError`` message)."""
    limits = limits or BatchLimits()
    images: list[tuple[str, bytes]] = []
    skipped: list[Skipped] = []
    total = 0
    for name, data in items:
        members = _zip_members(name, data, limits) if name.lower().endswith(".zip") else iter([(name, data)])
        for member, content in _guarded(name, members):
            if isinstance(content, str):
                skipped.append((member, content))
            elif len(images) >= limits.max_files:
                skipped.append((member, f"over the limit of {limits.max_files} images"))
            elif len(content) > limits.max_file_bytes:
                skipped.append((member, f"larger than {limits.max_file_bytes // 2**20} MB"))
            elif total + len(content) > limits.max_total_bytes:
                skipped.append((member, f"over the total of {limits.max_total_bytes // 2**20} MB"))
            else:
                total += len(content)
                images.append((member, content))
    return images, skipped


def _guarded(name: str, members: Iterator[tuple[str, bytes | str]]) -> Iterator[tuple[str, bytes | str]]:
    """``members``, ending with ``(name, reason)`` if the archive is refused: one bad zip spoils no batch."""
    try:
        yield from members
    except DataError as exc:
        yield name, str(exc).removeprefix(f"{name}: ")


def find_upload(items: Iterable[tuple[str, bytes]], name: str, limits: BatchLimits | None = None) -> bytes | None:
    """The bytes of the image that ``read_uploads`` named ``name`` (an upload, or one zip member read
    alone: opening one photo of a batch costs one photo), or None when there is no such image."""
    limits = limits or BatchLimits()
    for upload, data in items:
        if upload == name:
            return data
        if upload.lower().endswith(".zip") and name.startswith(f"{upload}/"):
            with contextlib.suppress(DataError):
                for _, content in _zip_members(upload, data, limits, only=name):
                    return content if isinstance(content, bytes) else None
    return None


def _zip_members(
    name: str, data: bytes, limits: BatchLimits, only: str | None = None
) -> Iterator[tuple[str, bytes | str]]:
    """``(name/member, bytes)`` per image member, or ``(name/member, reason)`` for one that is skipped
    (``only``: just that member).

    The archive as a whole is vetted by ``fercore.data.uploads.check_zip_members`` first (links, ``..``,
    encryption, member count, total size, ratio: one ``DataError``); then members are read one at a time.
    """
    from fercore.data.uploads import UploadLimits, check_zip_members

    budget = UploadLimits(
        max_zip_bytes=limits.max_total_bytes, max_members=limits.max_members, max_ratio=limits.max_ratio
    )
    if data.count(b"PK\x01\x02") > budget.max_members:  # before parsing a central directory of millions
        raise DataError(f"{name}: more than {budget.max_members:,} files in the zip")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DataError(f"{name}: not a valid zip file") from None
    with archive:
        for info, rel in check_zip_members(archive, name, budget):
            member = f"{name}/{rel.as_posix()}"
            if only is not None and member != only:
                continue
            if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
                continue  # hidden files and the metadata macOS adds to every zip
            if not is_image_name(rel.name):
                yield member, "not an image file (by its extension)"
            elif info.file_size > limits.max_file_bytes:
                yield member, f"larger than {limits.max_file_bytes // 2**20} MB"
            else:
                try:
                    with archive.open(info) as f:
                        yield member, f.read(limits.max_file_bytes + 1)
                except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError):
                    yield member, "damaged in the zip, cannot be unpacked"


# ----------------------------------------------------------------------------------------------
# Prediction


def predict_images(
    pipeline: FramePipeline,
    sources: Iterable[tuple[str, ImageSource]],
    workers: int = 1,
    preview: int | None = None,
) -> Iterator[ImageResult]:
    """One ``ImageResult`` per ``(name, path|bytes|array)``, in input order, decoding and predicting on
    ``workers`` threads that share ``pipeline`` (which must be stateless: no tracker). At most
    ``2 × workers`` images are in flight, so memory does not grow with the number of images.
    ``preview``: also return an annotated copy scaled to this longer side (thumbnails)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if pipeline.tracker is not None:
        raise ValueError("a batch needs a stateless pipeline (no tracker): images are not a stream")
    if workers == 1:
        yield from (_predict_one(pipeline, name, src, preview) for name, src in sources)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="fer-batch") as pool:
        pending: deque[Future[ImageResult]] = deque()
        for name, src in sources:
            pending.append(pool.submit(_predict_one, pipeline, name, src, preview))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _predict_one(pipeline: FramePipeline, name: str, src: ImageSource, preview: int | None) -> ImageResult:
    try:
        rgb = load_image(src, name)
        faces = pipeline(rgb).faces
    except FerError as exc:  # unreadable image (or one a detector refuses): reported, the batch goes on
        return ImageResult(name, error=str(exc).splitlines()[0])
    return ImageResult(name, faces, preview=annotated_preview(rgb, faces, preview) if preview else None)


def annotated_preview(rgb: np.ndarray, faces: list[FacePrediction], side: int) -> np.ndarray:
    """``rgb`` scaled (up or down) to a longer side of ``side`` px, with the faces drawn at that scale
    (each box tagged with its number and label): 48×48 crops get readable labels, large photos cheap
    thumbnails."""
    import cv2

    from fercore.inference.draw import annotate

    h, w = rgb.shape[:2]
    f = side / max(h, w)
    if abs(f - 1.0) > 1e-3:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    # bars beside a box only where they are readable and cover no other face (pages chart each face)
    bars = side >= 480 and len(faces) <= 2
    return annotate(rgb, [replace(face, box=face.box.scaled(f)) for face in faces], show_bars=bars)


# ----------------------------------------------------------------------------------------------
# Reports: a resumable CSV, a table, JSON


class BatchCsv:
    """A CSV of ``BATCH_COLUMNS`` that grows one image at a time and tells which files it has.

    Re-opening an existing file keeps its rows (a partial last line from a killed run is dropped) and
    appends; ``done`` holds its files, compared as absolute paths so ``./a.png`` and ``a.png`` match.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.done: set[str] = set()
        self.earlier_errors = 0
        if self.path.exists() and self.path.stat().st_size > 0:
            self._read_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if fresh:
            csv.DictWriter(self._file, BATCH_COLUMNS).writeheader()

    def _read_existing(self) -> None:
        with open(self.path, "rb+") as f:  # drop a line cut short by a killed run
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        if self.path.stat().st_size == 0:  # killed while writing the header
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != BATCH_COLUMNS:
                raise DataError(f"{self.path}: not a batch CSV of this tool (columns {reader.fieldnames})")
            errors = set()
            for row in reader:
                self.done.add(os.path.abspath(row["file"]))
                if row["error"]:
                    errors.add(row["file"])
            self.earlier_errors = len(errors)

    def has(self, file: str) -> bool:
        return os.path.abspath(file) in self.done

    def write(self, result: ImageResult) -> None:
        """Append the image's rows in one write and flush, so a killed run loses at most this image."""
        buf = io.StringIO()
        csv.DictWriter(buf, BATCH_COLUMNS).writerows(result.rows())
        self._file.write(buf.getvalue())
        self._file.flush()
        self.done.add(os.path.abspath(result.file))

    def close(self) -> None:
        self._file.close()


def to_table(results: Iterable[ImageResult]) -> Any:
    """A pandas DataFrame of ``BATCH_COLUMNS`` (one row per face; one per image without a face)."""
    import pandas as pd

    table = pd.DataFrame([row for r in results for row in r.rows()], columns=BATCH_COLUMNS)
    # integers stay integers (``53``, not ``53.0``) beside the empty cells of a row without a face
    return table.astype(dict.fromkeys(["face_id", "x", "y", "w", "h"], "Int64"))


@dataclass
class BatchReport:
    """One account of a batch: the images analysed, and every item that was not — skipped before
    decoding (not an image, over a limit, a refused zip) or unreadable — each with its reason.
    The Photo page's counts, its list of problems and its downloads all come from here."""

    analysed: list[ImageResult]
    problems: list[ImageResult]

    @classmethod
    def of(cls, results: Iterable[ImageResult], skipped: Iterable[Skipped] = ()) -> BatchReport:
        """From ``predict_images``' results and ``read_uploads``' skipped ``(name, reason)`` pairs."""
        results = list(results)
        problems = [ImageResult(name, error=why) for name, why in skipped]
        return cls([r for r in results if r.error is None], problems + [r for r in results if r.error is not None])

    @property
    def faces(self) -> int:
        return sum(len(r.faces) for r in self.analysed)

    @property
    def without_face(self) -> int:
        return sum(not r.faces for r in self.analysed)

    def problem_rows(self) -> list[dict[str, str]]:
        """``{"file", "reason"}`` per item skipped or unreadable (the reason without the file's name)."""
        return [{"file": r.file, "reason": (r.error or "").removeprefix(f"{r.file}: ")} for r in self.problems]

    def table(self) -> Any:
        """``to_table`` of every item: faces, images without one, and one row per problem (``error``)."""
        return to_table(self.analysed + self.problems)

    def to_json(self) -> list[dict[str, Any]]:
        """``ImageResult.to_dict`` of every item, analysed first."""
        return [r.to_dict() for r in self.analysed + self.problems]


@dataclass
class CsvRun:
    """What ``predict_to_csv`` did: images analysed now, files skipped as done before, faces, failures."""

    analysed: int = 0
    skipped: int = 0
    faces: int = 0
    failed: list[Skipped] = field(default_factory=list)
    earlier_errors: int = 0  # unreadable files recorded by an earlier run (skipped now)


def predict_to_csv(
    pipeline: FramePipeline,
    files: list[str],
    csv_path: str | Path,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> CsvRun:
    """Append the faces of ``files`` not yet in ``csv_path`` to it (resumable: a re-run skips them).

    ``progress(done, total)`` is called after each image (``total`` counts only the files to do).
    Unreadable files get a row with their ``error`` and are listed in ``CsvRun.failed``.
    """
    run = CsvRun()
    with contextlib.closing(BatchCsv(csv_path)) as out:
        todo = [f for f in dict.fromkeys(files) if not out.has(f)]  # a file named twice is done once
        run.skipped, run.earlier_errors = len(files) - len(todo), out.earlier_errors
        for done, result in enumerate(predict_images(pipeline, ((f, f) for f in todo), workers), 1):
            out.write(result)
            run.analysed += 1
            run.faces += len(result.faces)
            run.failed += [(result.file, result.error)] if result.error is not None else []
            if progress is not None:
                progress(done, len(todo))
    return run


# ----------------------------------------------------------------------------------------------
# Progress


class ProgressClock:
    """Fraction done → ``"42 % · 0:13 left"``: the ETA from the mean rate so far (none before 2 s)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()

    def eta(self, fraction: float) -> float | None:
        elapsed = self.clock() - self.start
        return None if fraction <= 0 or elapsed < 2.0 else max(0.0, elapsed * (1.0 - fraction) / fraction)

    def text(self, fraction: float) -> str:
        eta = self.eta(fraction)
        left = "" if eta is None or fraction >= 1 else f" · {int(eta) // 60}:{int(eta) % 60:02d} left"
        return f"{100 * min(max(fraction, 0.0), 1.0):.0f} %{left}"
