"""Load FER2013 and FER2013-like data sets into uint8 arrays, with an on-disk cache.

Sources understood by :func:`load_dataset`:

* the original ``fer2013.csv`` (``emotion,pixels,Usage``; also ``.csv.gz``), splits from ``Usage``
  (:mod:`fercore.data.fercsv`);
* the Kaggle folder layout: ``<root>/<split>/<class>/*.png`` (``train/``, ``test/``, ...);
* any folder of class folders (``<root>/<class>/*``) with images of any size, mode and format,
  converted to 48×48 grayscale; class names are matched case-insensitively with aliases
  (:mod:`fercore.data.folders`).

FER+ votes live in :mod:`fercore.data.ferplus`, uploads in :mod:`fercore.data.uploads`; their public names are
re-exported here so ``from fercore.data.loader import …`` keeps working. Every problem with the input raises
:class:`DataError` with one message naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from fercore.data.dataset import Dataset, LoadReport, normalize_split
from fercore.data.fercsv import is_csv_name, load_csv
from fercore.data.ferplus import align_votes, load_ferplus_votes, majority_labels, soft_labels
from fercore.data.folders import IMAGE_EXTENSIONS, FolderLayout, list_folder_images, load_folders, read_face_file
from fercore.types import DataError
from fercore.data.uploads import load_uploaded

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "Dataset",
    "LoadReport",
    "align_votes",
    "default_cache_dir",
    "load_csv",
    "load_dataset",
    "load_ferplus_votes",
    "load_uploaded",
    "majority_labels",
    "normalize_split",
    "read_face_file",
    "soft_labels",
]

_CACHE_VERSION = 3  # 3: folder images decoded by fercore.inference.image (alpha over white)


def default_cache_dir() -> Path:
    """Where loaded data sets are cached: ``$FER_CACHE`` or ``~/.cache/fercore``."""
    return Path(os.environ.get("FER_CACHE", Path.home() / ".cache" / "fercore"))


def load_dataset(
    path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True
) -> Dataset:
    """Load a CSV, a Kaggle folder layout or a class-folder image set; cached on disk.

    The cache entry is keyed by the absolute path and invalidated when any source file's
    name, size or modification time changes.
    """
    start = time.perf_counter()
    src = Path(path).expanduser()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    src = src.resolve()
    kind, fingerprint, layout = _inspect(src)
    cache_file = None
    if use_cache:
        cache_file = Path(cache_dir or default_cache_dir()) / (
            hashlib.sha1(f"{src}|{kind}".encode()).hexdigest()[:20] + ".npz"
        )
        cached = _read_cache(cache_file, fingerprint)
        if cached is not None:
            cached.report.seconds = time.perf_counter() - start
            return cached
    ds = load_csv(src) if layout is None else load_folders(src, layout)
    if cache_file is not None:
        _write_cache(cache_file, fingerprint, ds)
    ds.report.seconds = time.perf_counter() - start
    return ds


def _inspect(src: Path) -> tuple[str, str, FolderLayout | None]:
    """Classify the source and fingerprint it. Returns (kind, fingerprint, folder layout or None)."""
    if src.is_file():
        if not is_csv_name(src.name):
            raise DataError(f"{src}: not a data set (expected a .csv/.csv.gz file or a folder)")
        st = src.stat()
        return "csv", f"{st.st_size}:{st.st_mtime_ns}:{_CACHE_VERSION}", None
    layout = list_folder_images(src)
    digest = hashlib.sha1(str(_CACHE_VERSION).encode())
    for split, cls, p in layout.files:
        st = os.stat(p)
        digest.update(f"{split}|{cls}|{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return layout.kind, digest.hexdigest(), layout


def _read_cache(cache_file: Path, fingerprint: str) -> Dataset | None:
    meta_file = cache_file.with_suffix(".json")
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("fingerprint") != fingerprint:
            return None
        with np.load(cache_file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "labels", "splits", "ids")}
        report = LoadReport(**{**meta["report"], "skipped": [tuple(s) for s in meta["report"]["skipped"]]})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a stale or damaged cache entry only costs a reload
    report.from_cache = True
    return Dataset(report=report, **arrays)


def _write_cache(cache_file: Path, fingerprint: str, ds: Dataset) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits.astype(str), ids=ds.ids.astype(str))
        os.replace(tmp, cache_file)
        report = {k: v for k, v in ds.report.__dict__.items() if k not in ("from_cache", "seconds")}
        meta_tmp = cache_file.with_suffix(f".tmp{os.getpid()}.json")
        meta_tmp.write_text(json.dumps({"fingerprint": fingerprint, "report": report}))
        os.replace(meta_tmp, cache_file.with_suffix(".json"))
    except OSError:
        pass  # a cache we cannot write only costs time
