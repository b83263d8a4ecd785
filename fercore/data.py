"""Load FER2013 and FER2013-like data sets into uint8 arrays, with an on-disk cache.

Sources understood by :func:`load_dataset`:

* the original ``fer2013.csv`` (``emotion,pixels,Usage``; also ``.csv.gz``), splits from ``Usage``;
* the Kaggle folder layout: ``<root>/<split>/<class>/*.png`` (``train/``, ``test/``, ...);
* any folder of class folders (``<root>/<class>/*``) with images of any size, mode and format,
  converted to 48×48 grayscale; class names are matched case-insensitively with aliases.

FER+ vote files are read by :func:`load_ferplus_votes` and aligned to a data set by row.
Every problem with the input raises :class:`DataError` with one message naming the file and the problem.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fercore.labels import EMOTIONS, NUM_CLASSES, canonical_emotion
from fercore.preprocess import FACE_SIZE

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
_CACHE_VERSION = 2
_PIXELS = FACE_SIZE * FACE_SIZE

# Split names as users and files spell them → the names we use.
_SPLIT_ALIASES = {
    "training": "train",
    "train": "train",
    "publictest": "test",
    "public_test": "test",
    "test": "test",
    "val": "test",
    "valid": "test",
    "validation": "test",
    "privatetest": "private",
    "private_test": "private",
    "private": "private",
    "all": "all",
}


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and the problem."""


@dataclass
class LoadReport:
    """What a load did: where from, how many images, what was skipped and why."""

    source: str
    kind: str
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)
    from_cache: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One human-readable line."""
        parts = [f"{self.loaded} images from {self.kind} {self.source}"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} unreadable skipped")
        if self.unknown_folders:
            parts.append("ignored folders: " + ", ".join(self.unknown_folders))
        if self.from_cache:
            parts.append("from cache")
        return "; ".join(parts)


@dataclass
class Dataset:
    """Faces as ``images`` (n, 48, 48) uint8, ``labels`` (n,) int64 in FER2013 order, ``splits`` (n,) str.

    ``ids`` identify each image in its source: the CSV row, or the path relative to the root.
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    ids: np.ndarray
    report: LoadReport

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def split_names(self) -> list[str]:
        """Split names present, in a stable order (train, test, private, then others)."""
        order = {"train": 0, "test": 1, "private": 2}
        return sorted(set(self.splits.tolist()), key=lambda s: (order.get(s, 9), s))

    def split(self, name: str) -> "Dataset":
        """The subset of one split (``train``, ``test``/``PublicTest``, ``private``/``PrivateTest``, ``all``)."""
        key = normalize_split(name)
        if key == "all":
            return self
        mask = self.splits == key
        if not mask.any():
            raise DataError(
                f"{self.report.source}: no split {name!r}; available: {', '.join(self.split_names)}"
            )
        return self.subset(mask)

    def subset(self, index: np.ndarray) -> "Dataset":
        """Rows selected by a boolean mask or an index array."""
        return Dataset(
            self.images[index], self.labels[index], self.splits[index], self.ids[index], self.report
        )

    def rows(self) -> np.ndarray:
        """FER2013 CSV row of each image (from CSV rows or NNNNN file names), -1 where unknown."""
        out = np.full(len(self), -1, dtype=np.int64)
        for i, ident in enumerate(self.ids.tolist()):
            stem = Path(str(ident)).stem
            if stem.isdigit():
                out[i] = int(stem)
        return out


def normalize_split(name: str) -> str:
    """Canonical split name: Training→train, PublicTest→test, PrivateTest→private."""
    key = name.strip().lower()
    return _SPLIT_ALIASES.get(key, key)


# ----------------------------------------------------------------------------------------------
# Entry point with cache


def default_cache_dir() -> Path:
    """Where loaded data sets are cached: ``$FER_CACHE`` or ``~/.cache/fercore``."""
    return Path(os.environ.get("FER_CACHE", Path.home() / ".cache" / "fercore"))


def load_dataset(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 use_cache: bool = True) -> Dataset:
    """Load a CSV, a Kaggle folder layout or a class-folder image set; cached on disk.

    The cache entry is keyed by the absolute path and invalidated when any source file's
    name, size or modification time changes.
    """
    import time

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
    if kind == "csv":
        ds = load_csv(src)
    else:
        ds = _load_folders(src, layout)
    if cache_file is not None:
        _write_cache(cache_file, fingerprint, ds)
    ds.report.seconds = time.perf_counter() - start
    return ds


def _inspect(src: Path) -> tuple[str, str, "_FolderLayout | None"]:
    """Classify the source and fingerprint it. Returns (kind, fingerprint, folder layout or None)."""
    if src.is_file():
        name = src.name.lower()
        if not (name.endswith(".csv") or name.endswith(".csv.gz")):
            raise DataError(f"{src}: not a data set (expected a .csv/.csv.gz file or a folder)")
        st = src.stat()
        return "csv", f"{st.st_size}:{st.st_mtime_ns}:{_CACHE_VERSION}", None
    layout = _list_folder_images(src)
    digest = hashlib.sha1(str(_CACHE_VERSION).encode())
    for split, cls, p in layout.files:
        st = os.stat(p)
        digest.update(f"{split}|{cls}|{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return layout.kind, digest.hexdigest(), layout


def _class_dirs(folder: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Sub-folders of ``folder`` that name an emotion (several may map to one), and the others."""
    known: dict[str, list[Path]] = {}
    unknown: list[str] = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        emotion = canonical_emotion(child.name)
        if emotion is None:
            unknown.append(child.name)
        else:
            known.setdefault(emotion, []).append(child)
    return known, unknown


@dataclass
class _FolderLayout:
    """A folder data set as found on disk: ``folder`` or ``kaggle`` kind, its images as
    (split, emotion, path), and the sub-folders that were not used."""

    kind: str
    files: list[tuple[str, str, str]]
    unknown: list[str]


def _list_folder_images(root: Path) -> _FolderLayout:
    """All images under a class-folder set or a Kaggle split/class layout."""
    classes, unknown = _class_dirs(root)
    layout: dict[str, dict[str, list[Path]]] = {}
    if classes:
        layout["all"] = classes
        kind, unused = "folder", unknown
    else:
        unused = []
        for name in unknown:
            sub_classes, _ = _class_dirs(root / name)
            if sub_classes:
                layout[normalize_split(name)] = sub_classes
            else:
                unused.append(name)
        kind = "kaggle"
    if not layout:
        raise DataError(
            f"{root}: no class folders found (expected <class>/ image folders such as happy/, sad/ "
            f"or <split>/<class>/ as in the Kaggle layout; found: {', '.join(unknown) or 'nothing'})"
        )
    files: list[tuple[str, str, str]] = []
    for split, class_map in layout.items():
        for emotion, dirs in class_map.items():
            for d in dirs:
                with os.scandir(d) as it:
                    names = sorted(e.name for e in it if e.is_file())
                for n in names:
                    if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS:
                        files.append((split, emotion, os.path.join(d, n)))
    if not files:
        raise DataError(f"{root}: class folders found but they contain no images")
    return _FolderLayout(kind, files, unused)


# ----------------------------------------------------------------------------------------------
# Folders of images


def read_face_file(path: str) -> np.ndarray | None:
    """Read one image file as a 48×48 uint8 face (centre-cropped to square), or None if unreadable."""
    import cv2

    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if buf.size == 0:
        return None
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if img is None:
        img = _decode_with_pillow(buf.tobytes())
        if img is None:
            return None
    return _square_resize(img)


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            return np.asarray(im.convert("L"))
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return None


def _square_resize(img: np.ndarray) -> np.ndarray:
    from fercore.preprocess import resize_face

    h, w = img.shape[:2]
    if h != w:
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        img = img[y0 : y0 + side, x0 : x0 + side]
    return resize_face(img)


def _load_folders(root: Path, layout: _FolderLayout) -> Dataset:
    files = layout.files
    paths = [p for _, _, p in files]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        faces = list(pool.map(read_face_file, paths, chunksize=256))
    report = LoadReport(source=str(root), kind=layout.kind, unknown_folders=list(layout.unknown))
    keep = [i for i, f in enumerate(faces) if f is not None]
    report.skipped = [(paths[i], "unreadable image") for i, f in enumerate(faces) if f is None]
    report.loaded = len(keep)
    if not keep:
        raise DataError(f"{root}: none of the {len(paths)} image files could be read")
    images = np.stack([faces[i] for i in keep])
    labels = np.array([EMOTIONS.index(files[i][1]) for i in keep], dtype=np.int64)
    splits = np.array([files[i][0] for i in keep])
    ids = np.array([os.path.relpath(files[i][2], root) for i in keep])
    return Dataset(images, labels, splits, ids, report)


# ----------------------------------------------------------------------------------------------
# CSV


def _read_text(path: Path) -> str:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return fh.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def load_csv(path: str | os.PathLike) -> Dataset:
    """Parse a FER2013 CSV (``emotion,pixels[,Usage]``; ``.csv.gz`` too) with row-level validation."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or not text.strip():
        raise DataError(f"{path}: file is empty")
    header = [h.strip().strip('"').lower() for h in lines[0].split(",")]
    if "emotion" not in header or "pixels" not in header:
        raise DataError(
            f"{path}: wrong header {lines[0][:80]!r}; expected columns emotion,pixels[,Usage]"
        )
    i_emo, i_pix = header.index("emotion"), header.index("pixels")
    i_use = header.index("usage") if "usage" in header else None
    body = lines[1:]
    n = sum(1 for ln in body if ln.strip())
    if n == 0:
        raise DataError(f"{path}: header only, no data rows")
    images = np.empty((n, FACE_SIZE, FACE_SIZE), np.uint8)
    labels = np.empty(n, np.int64)
    splits = []
    ids = []
    k = 0
    for lineno, line in enumerate(body, start=2):
        if not line.strip():
            continue
        cells = [c.strip().strip('"') for c in line.split(",")]
        if len(cells) < len(header):
            raise DataError(f"{path}: line {lineno}: {len(cells)} fields, expected {len(header)}")
        labels[k] = _parse_label(cells[i_emo], path, lineno)
        images[k] = _parse_pixels(cells[i_pix], path, lineno)
        splits.append(normalize_split(cells[i_use]) if i_use is not None else "all")
        ids.append(str(lineno - 2))
        k += 1
    report = LoadReport(source=str(path), kind="csv", loaded=n)
    return Dataset(images, labels, np.array(splits), np.array(ids), report)


def _parse_label(cell: str, path: Path, lineno: int) -> int:
    if not cell.isdigit() or int(cell) >= NUM_CLASSES:
        raise DataError(f"{path}: line {lineno}: emotion {cell!r} is not an integer 0–6")
    return int(cell)


def _parse_pixels(cell: str, path: Path, lineno: int) -> np.ndarray:
    tokens = cell.split()
    if len(tokens) != _PIXELS:
        raise DataError(
            f"{path}: line {lineno}: {len(tokens)} pixels, expected {_PIXELS} (48×48)"
        )
    try:
        values = np.array(tokens, dtype=np.int32)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise DataError(f"{path}: line {lineno}: pixel value {bad!r} is not a number") from None
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}: line {lineno}: pixel values must be 0–255")
    return values.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)


# ----------------------------------------------------------------------------------------------
# FER+ votes

# FER+ column → FER2013 emotion ("contempt" has no FER2013 class and is dropped).
_FERPLUS_COLUMNS = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}


def load_ferplus_votes(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a FER+ vote file. Returns (rows, votes) with votes (n, 7) in FER2013 class order."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read FER+ votes ({exc})") from None
    cols = {c.lower(): c for c in df.columns}
    missing = [c for c in ["row", *_FERPLUS_COLUMNS] if c not in cols]
    if missing:
        raise DataError(f"{path}: FER+ vote file lacks columns {', '.join(missing)}")
    votes = np.zeros((len(df), NUM_CLASSES), np.float32)
    for src, emotion in _FERPLUS_COLUMNS.items():
        votes[:, EMOTIONS.index(emotion)] = pd.to_numeric(df[cols[src]], errors="coerce").fillna(0)
    rows = pd.to_numeric(df[cols["row"]], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
    return rows, votes


def align_votes(dataset: Dataset, rows: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """FER+ votes for each image of ``dataset`` (by CSV row); zeros where no vote exists."""
    lookup = {int(r): i for i, r in enumerate(rows.tolist())}
    out = np.zeros((len(dataset), NUM_CLASSES), np.float32)
    for i, r in enumerate(dataset.rows().tolist()):
        j = lookup.get(r)
        if j is not None:
            out[i] = votes[j]
    return out


def soft_labels(votes: np.ndarray) -> np.ndarray:
    """Vote shares per image (rows with no votes become all-zero)."""
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Most-voted class per image, -1 where no vote was cast."""
    out = votes.argmax(axis=1).astype(np.int64)
    out[votes.sum(axis=1) == 0] = -1
    return out


# ----------------------------------------------------------------------------------------------
# Cache


def _read_cache(cache_file: Path, fingerprint: str) -> Dataset | None:
    meta_file = cache_file.with_suffix(".json")
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("fingerprint") != fingerprint:
            return None
        with np.load(cache_file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "labels", "splits", "ids")}
    except (OSError, ValueError, KeyError):
        return None
    report = LoadReport(**{**meta["report"], "skipped": [tuple(s) for s in meta["report"]["skipped"]]})
    report.from_cache = True
    return Dataset(report=report, **arrays)


def _write_cache(cache_file: Path, fingerprint: str, ds: Dataset) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits.astype(str),
                 ids=ds.ids.astype(str))
        os.replace(tmp, cache_file)
        report = {k: v for k, v in ds.report.__dict__.items() if k not in ("from_cache", "seconds")}
        meta_tmp = cache_file.with_suffix(f".tmp{os.getpid()}.json")
        meta_tmp.write_text(json.dumps({"fingerprint": fingerprint, "report": report}))
        os.replace(meta_tmp, cache_file.with_suffix(".json"))
    except OSError:
        pass  # a cache we cannot write only costs time


# ----------------------------------------------------------------------------------------------
# Uploads

MAX_ZIP_BYTES = 2 * 1024**3  # uncompressed size limit of an uploaded zip


def load_uploaded(filename: str, data: bytes, workdir: str | os.PathLike) -> Dataset:
    """Load an uploaded CSV, .csv.gz or zip of a folder layout, written under ``workdir``.

    A zip is extracted safely (no absolute paths or ``..``, size-capped) and its data set root is
    the shallowest folder that holds class folders or split/class folders.
    """
    import zipfile

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = Path(filename).name
    lower = name.lower()
    if not data:
        raise DataError(f"{name}: the upload is empty")
    target = work / name
    target.write_bytes(data)
    if lower.endswith(".csv") or lower.endswith(".csv.gz"):
        return load_dataset(target, use_cache=False)
    if not lower.endswith(".zip"):
        raise DataError(f"{name}: upload a .csv, .csv.gz or a .zip of class folders")
    try:
        with zipfile.ZipFile(target) as zf:
            members = zf.infolist()
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise DataError(f"{name}: unpacks to more than {MAX_ZIP_BYTES // 1024**3} GB")
            root = work / (name + ".d")
            for m in members:
                dest = (root / m.filename).resolve()
                if not str(dest).startswith(str(root.resolve())):
                    raise DataError(f"{name}: unsafe path in zip: {m.filename}")
            zf.extractall(root)
    except zipfile.BadZipFile:
        raise DataError(f"{name}: not a valid zip file") from None
    return load_dataset(_find_dataset_root(root, name), use_cache=False)


def _find_dataset_root(root: Path, name: str) -> Path:
    """The shallowest folder under ``root`` that loads as a class-folder or Kaggle layout."""
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and "__MACOSX" not in p.parts)
    for folder in sorted(candidates, key=lambda p: len(p.parts)):
        try:
            _list_folder_images(folder)
            return folder
        except DataError:
            continue
    raise DataError(
        f"{name}: no class folders with images inside (expected e.g. train/happy/*.png or happy/*.png)"
    )
