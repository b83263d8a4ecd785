"""FER2013 CSV files (``emotion,pixels[,Usage]``, plain or gzip-compressed), parsed as a stream.

The text is read line by line under two budgets, so a hostile or broken file costs bounded memory
and time: at most ``MAX_CSV_BYTES`` of text in all (a gzip file is first decompressed once without
keeping anything, just to count, so a small file that inflates to gigabytes is refused before
parsing) and at most ``MAX_LINE_BYTES`` per line. Error messages name the file, the line and the
problem, never the file's content.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from fercore.data.dataset import SPLIT_ALIASES, Dataset, LoadReport, normalize_split
from fercore.labels import NUM_CLASSES
from fercore.inference.preprocess import FACE_SIZE
from fercore.types import DataError

MAX_CSV_BYTES = 512 * 1024**2  # the full FER2013 CSV holds about 290 MB of text
MAX_LINE_BYTES = 64 * 1024  # one 48×48 row is under 10 KB
_PIXELS = FACE_SIZE * FACE_SIZE
_CHUNK = 1 << 20


class _ByteReader(Protocol):
    """What the parser needs of a binary stream (a file, BytesIO or GzipFile)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


def is_csv_name(name: str) -> bool:
    """True for ``.csv`` and ``.csv.gz`` file names."""
    lower = name.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def load_csv(path: str | os.PathLike[str], max_bytes: int = MAX_CSV_BYTES) -> Dataset:
    """Parse a FER2013 CSV (``.csv`` or ``.csv.gz``) with row-level validation."""
    path = Path(path)
    return read_csv_stream(
        lambda: open(path, "rb"), str(path), gzipped=path.name.lower().endswith(".gz"), max_bytes=max_bytes
    )


def read_csv_stream(
    open_stream: Callable[[], BinaryIO], source: str, *, gzipped: bool, max_bytes: int = MAX_CSV_BYTES
) -> Dataset:
    """Parse the CSV that ``open_stream()`` yields as bytes (called twice for gzip: count, then parse).

    ``source`` names the file in messages and in the load report.
    """
    with _read_errors(source):
        if gzipped:
            with open_stream() as raw, gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                _check_size(fh, source, max_bytes)
        with open_stream() as raw:
            if gzipped:
                with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                    return _parse(fh, source, max_bytes)
            return _parse(raw, source, max_bytes)


def read_csv_bytes(data: bytes, source: str, *, gzipped: bool, max_bytes: int = MAX_CSV_BYTES) -> Dataset:
    """Parse a CSV held in memory (an upload) without copying it."""
    return read_csv_stream(lambda: io.BytesIO(data), source, gzipped=gzipped, max_bytes=max_bytes)


@contextmanager
def _read_errors(source: str) -> Iterator[None]:
    """Turn decompression and I/O failures into one DataError naming the problem, not the bytes."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise DataError(f"{source}: not a valid gzip file (damaged or cut short)") from None
    except OSError as exc:
        raise DataError(f"{source}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _budget_message(source: str, max_bytes: int) -> str:
    return f"{source}: more than {max_bytes / 1024**2:.0f} MB of text; too large for a FER2013 CSV"


def _check_size(fh: _ByteReader, source: str, max_bytes: int) -> None:
    """Decompress and count without keeping anything: refuse before parsing when over budget."""
    total = 0
    while chunk := fh.read(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise DataError(_budget_message(source, max_bytes))


def _lines(fh: _ByteReader, source: str, max_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, text) under the total and per-line budgets."""
    total = 0
    lineno = 0
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        total += len(raw)
        if total > max_bytes:
            raise DataError(_budget_message(source, max_bytes))
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise DataError(f"{source}: line {lineno} is longer than {MAX_LINE_BYTES // 1024} KB; not a FER2013 CSV")
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{source}: line {lineno} is not UTF-8 text") from None


def _parse(fh: _ByteReader, source: str, max_bytes: int) -> Dataset:
    lines = _lines(fh, source, max_bytes)
    header_line = 0
    header: list[str] = []
    for lineno, text in lines:
        if text.strip():
            header_line = lineno
            header = [h.strip().strip('"').lower() for h in text.lstrip("\ufeff").split(",")]
            break
    if not header_line:
        raise DataError(f"{source}: file is empty")
    missing = [c for c in ("emotion", "pixels") if c not in header]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} {names} in the header line; "
            "expected emotion,pixels[,Usage]"
        )
    i_emo, i_pix = header.index("emotion"), header.index("pixels")
    i_use = header.index("usage") if "usage" in header else None
    pixels = bytearray()  # grows in place: no list of arrays to stack (twice the memory) at the end
    labels: list[int] = []
    splits: list[str] = []
    ids: list[str] = []
    for lineno, line in lines:
        if not line.strip():
            continue
        cells = [c.strip().strip('"') for c in line.split(",")]
        if len(cells) < len(header):
            raise DataError(f"{source}: line {lineno}: {len(cells)} fields, expected {len(header)}")
        labels.append(_parse_label(cells[i_emo], source, lineno))
        pixels += _parse_pixels(cells[i_pix], source, lineno).tobytes()
        splits.append(_parse_usage(cells[i_use], source, lineno) if i_use is not None else "all")
        ids.append(str(lineno - header_line - 1))
    if not labels:
        raise DataError(f"{source}: header only, no data rows")
    report = LoadReport(source=source, kind="csv", loaded=len(labels))
    images = np.frombuffer(pixels, np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)
    return Dataset(images, np.array(labels, np.int64), np.array(splits), np.array(ids), report)


def _parse_label(cell: str, source: str, lineno: int) -> int:
    if not (cell.isascii() and cell.isdigit()) or int(cell) >= NUM_CLASSES:
        raise DataError(f"{source}: line {lineno}: emotion is not an integer 0–6")
    return int(cell)


def _parse_usage(cell: str, source: str, lineno: int) -> str:
    """Known split names only: a split name is shown back to users, so it must not be free text."""
    key = normalize_split(cell)
    if cell.strip().lower() not in SPLIT_ALIASES:
        raise DataError(f"{source}: line {lineno}: unknown Usage (expected Training, PublicTest or PrivateTest)")
    return key


def _parse_pixels(cell: str, source: str, lineno: int) -> np.ndarray:
    tokens = cell.split()
    if len(tokens) != _PIXELS:
        raise DataError(f"{source}: line {lineno}: {len(tokens)} pixels, expected {_PIXELS} (48×48)")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next((i for i, t in enumerate(tokens) if not (t.isascii() and t.lstrip("-").isdigit())), None)
        which = f"pixel {bad + 1}" if bad is not None else "a pixel value"
        raise DataError(f"{source}: line {lineno}: {which} is not a number 0–255") from None
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{source}: line {lineno}: pixel values must be 0–255")
    return values.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)
