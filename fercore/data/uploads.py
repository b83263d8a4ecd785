"""Uploaded data sets — a FER2013 ``.csv``/``.csv.gz`` or a zip of image folders — read under budgets.

An upload comes from someone we cannot trust, so every way it could exhaust memory, disk or time,
or write outside its place, is refused with one :class:`DataError` before it costs anything:

* CSV text is parsed from memory as a stream; a ``.csv.gz`` is decompressed chunk by chunk under a
  byte budget (:mod:`fercore.data.fercsv`), never inflated whole.
* A zip is checked member by member from its central directory before one byte is extracted
  (:func:`check_zip_members`): member count, total uncompressed size, compression ratio, name
  length, path depth, absolute or ``..`` paths, links, special files, a name used both as file and
  folder, encryption and compression methods. Only image files are then extracted, each into a
  path whose resolved form must lie inside a private session folder (:class:`UploadSession`),
  decoded into arrays, and the folder is removed. Nothing of an upload stays on disk.
"""

from __future__ import annotations

import io
import lzma
import os
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from fercore.data.dataset import Dataset
from fercore.data.fercsv import MAX_CSV_BYTES, read_csv_bytes
from fercore.data.folders import IMAGE_EXTENSIONS, find_dataset_root, list_folder_images, load_folders
from fercore.types import DataError

SESSION_PREFIX = "fer-upload-"
STALE_HOURS = 6.0  # a session folder older than this was left behind by a crash: swept
_CHUNK = 1 << 20
_RATIO_MIN_BYTES = 1 << 20  # small members may compress well (blank images); only large ones count
_MAX_PATH_BYTES = 4096
_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


@dataclass(frozen=True)
class UploadLimits:
    """Budgets of one upload. The defaults fit FER2013 (35,887 images; 290 MB as CSV) with room."""

    max_csv_bytes: int = MAX_CSV_BYTES  # CSV text after decompression
    max_zip_bytes: int = 1024**3  # all zip members together, uncompressed
    max_members: int = 60_000  # zip entries, folders included
    max_ratio: float = 100.0  # uncompressed / compressed size (images hardly compress at all)
    max_name_bytes: int = 255  # one path component (the usual file system limit)
    max_depth: int = 12  # path components of a member


class UploadSession:
    """A private temporary folder (mode 0700) for one upload; removed by :meth:`cleanup` or ``with``."""

    def __init__(self, base: str | os.PathLike[str] | None = None) -> None:
        base_dir = Path(base) if base is not None else Path(tempfile.gettempdir())
        base_dir.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=base_dir))

    def cleanup(self) -> None:
        """Remove the folder and everything in it (links inside are removed, never followed)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> UploadSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def sweep_stale_uploads(base: str | os.PathLike[str] | None = None, max_age_hours: float = STALE_HOURS) -> int:
    """Remove session folders under ``base`` (default: the temp folder) older than ``max_age_hours``,
    left behind by a crashed process. Only our own real folders are touched. Returns how many."""
    base_dir = Path(base) if base is not None else Path(tempfile.gettempdir())
    cutoff = time.time() - max_age_hours * 3600
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed = 0
    try:
        entries = list(os.scandir(base_dir))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(SESSION_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mtime < cutoff and (uid is None or st.st_uid == uid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def load_uploaded(
    filename: str, data: bytes, workdir: str | os.PathLike[str] | None = None, *, limits: UploadLimits | None = None
) -> Dataset:
    """Load an uploaded CSV, ``.csv.gz`` or zip of a folder layout into memory.

    ``workdir`` is where the temporary session folder of a zip is made (default: the system temp
    folder); it is removed before this returns, as are session folders older than ``STALE_HOURS``.
    A zip's data set root is the shallowest folder holding class folders or split/class folders.
    """
    limits = limits or UploadLimits()
    name = display_name(filename)
    if not data:
        raise DataError(f"{name}: the upload is empty")
    lower = name.lower()
    if lower.endswith(".csv") or lower.endswith(".csv.gz"):
        if len(data) > limits.max_csv_bytes:
            raise DataError(f"{name}: more than {limits.max_csv_bytes / 1024**2:.0f} MB; too large for a FER2013 CSV")
        return read_csv_bytes(data, name, gzipped=lower.endswith(".gz"), max_bytes=limits.max_csv_bytes)
    if not lower.endswith(".zip"):
        raise DataError(f"{name}: upload a .csv, .csv.gz or a .zip of class folders")
    sweep_stale_uploads(workdir)
    with _open_zip(data, name, limits) as zf:
        members = check_zip_members(zf, name, limits)
        with UploadSession(workdir) as session:
            root = session.path / "zip"
            root.mkdir()
            _extract_images(zf, members, root, name, limits)
            ds_root = find_dataset_root(root, name)
            rel = ds_root.relative_to(root).as_posix()
            source = name if rel == "." else f"{name}/{rel}"
            return load_folders(ds_root, list_folder_images(ds_root), source=source)


def display_name(filename: str) -> str:
    """The upload's base name, printable and short, for messages (never used as a path)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c if c.isprintable() else "?" for c in base) or "upload"
    return clean if len(clean) <= 100 else clean[:99] + "…"


def _show(member: str) -> str:
    """A member name quoted for a message: escaped and cut short (names come from the archive)."""
    return repr(member if len(member) <= 80 else member[:79] + "…")


def _open_zip(data: bytes, name: str, limits: UploadLimits) -> zipfile.ZipFile:
    """The zip, after counting its central-directory entries without parsing them: every entry
    starts with this signature, so a zip with millions of tiny entries is refused in one scan."""
    if data.count(b"PK\x01\x02") > limits.max_members:
        raise DataError(f"{name}: more than {limits.max_members:,} files in the zip")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, OverflowError):
        raise DataError(f"{name}: not a valid zip file") from None


def _member_path(info: zipfile.ZipInfo, name: str, limits: UploadLimits) -> PurePosixPath:
    """The member's relative path, or a DataError if it could point anywhere unexpected."""
    raw = info.filename
    norm = raw.replace("\\", "/")
    shown = _show(raw)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise DataError(f"{name}: member {shown} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{name}: member {shown} points outside the archive ('..' in its path)")
    if not parts:
        raise DataError(f"{name}: a member has an empty name")
    if len(norm.encode("utf-8", "surrogateescape")) > _MAX_PATH_BYTES:
        raise DataError(f"{name}: member {shown} has a path longer than {_MAX_PATH_BYTES} bytes")
    if any(len(p.encode("utf-8", "surrogateescape")) > limits.max_name_bytes for p in parts):
        raise DataError(f"{name}: member {shown} has a name longer than {limits.max_name_bytes} bytes")
    if len(parts) > limits.max_depth:
        raise DataError(f"{name}: member {shown} is nested deeper than {limits.max_depth} folders")
    return PurePosixPath(*parts)


def _member_is_dir(info: zipfile.ZipInfo, name: str) -> bool:
    """Folder or regular file; links, devices, pipes and sockets are refused."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise DataError(f"{name}: member {_show(info.filename)} is a symbolic link; links are not allowed")
    if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        raise DataError(f"{name}: member {_show(info.filename)} is a special file (device, pipe or socket)")
    return info.filename.endswith("/") or kind == stat.S_IFDIR or bool(info.external_attr & 0x10)


def check_zip_members(
    zf: zipfile.ZipFile, name: str, limits: UploadLimits
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every member from the central directory (nothing is decompressed); returns the
    regular files with their safe relative paths, or raises one DataError naming the member."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise DataError(f"{name}: more than {limits.max_members:,} files in the zip")
    files: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    out: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    total = packed = 0
    for info in infos:
        rel = _member_path(info, name, limits)
        is_dir = _member_is_dir(info, name)
        shown = _show(info.filename)
        if info.flag_bits & 0x1:
            raise DataError(f"{name}: member {shown} is encrypted; upload a zip without a password")
        if info.compress_type not in _METHODS:
            raise DataError(
                f"{name}: member {shown} uses compression method {info.compress_type}, which is not "
                f"supported (use {', '.join(_METHODS.values())})"
            )
        total += info.file_size
        packed += info.compress_size
        if total > limits.max_zip_bytes:
            raise DataError(f"{name}: unpacks to more than {limits.max_zip_bytes / 1024**3:g} GB")
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(1, info.compress_size):
            raise DataError(f"{name}: member {shown} expands more than {limits.max_ratio:g}× (a zip bomb?)")
        for parent in rel.parents:
            if parent in files:
                raise DataError(f"{name}: {_show(str(parent))} is both a file and a folder in the zip")
            dirs.add(parent)
        if rel in files or (not is_dir and rel in dirs):
            what = "appears twice" if rel in files else "is both a file and a folder"
            raise DataError(f"{name}: member {shown} {what} in the zip")
        (dirs if is_dir else files).add(rel)
        if not is_dir:
            out.append((info, rel))
    if total > _RATIO_MIN_BYTES and total > limits.max_ratio * max(1, packed):
        raise DataError(f"{name}: expands more than {limits.max_ratio:g}× (a zip bomb?)")
    return out


def _wanted(rel: PurePosixPath) -> bool:
    """Image files outside macOS metadata and hidden folders: the only members worth extracting."""
    return rel.suffix.lower() in IMAGE_EXTENSIONS and not any(p.startswith(".") or p == "__MACOSX" for p in rel.parts)


def _extract_images(
    zf: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    root: Path,
    name: str,
    limits: UploadLimits,
) -> None:
    """Write the image members under ``root``; each resolved path must stay inside ``root``."""
    real_root = root.resolve()
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for info, rel in members:
        dest = root.joinpath(*rel.parts)
        if not dest.resolve().is_relative_to(real_root):
            raise DataError(f"{name}: member {_show(info.filename)} points outside the archive")
        if not _wanted(rel):
            continue
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > limits.max_zip_bytes:
                        raise DataError(f"{name}: unpacks to more than {limits.max_zip_bytes / 1024**3:g} GB")
                    out.write(chunk)
        except DataError:
            raise
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
        ):
            raise DataError(f"{name}: member {_show(info.filename)} is damaged and cannot be unpacked") from None
        except OSError as exc:
            raise DataError(
                f"{name}: cannot unpack member {_show(info.filename)} ({exc.strerror or 'error'})"
            ) from None
