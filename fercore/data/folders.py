"""Image-folder data sets: ``<root>/<class>/*`` or the Kaggle layout ``<root>/<split>/<class>/*``.

Images of any mode and format become 48×48 grayscale faces (centre-cropped to a square). Every
file is decoded by :mod:`fercore.inference.image`, the one decoder, so its handling of alpha, palette, 16-bit
and CMYK files applies here too. Face crops are small, so a file over ``MAX_FACE_FILE_BYTES`` or
whose header claims more than ``MAX_FACE_PIXELS`` is skipped before decoding: a folder (or an
uploaded zip) of pixel bombs, decoded by several threads at once, must not exhaust memory.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fercore.data.dataset import Dataset, LoadReport, normalize_split
from fercore.inference.image import decode_image, to_gray
from fercore.labels import EMOTIONS, canonical_emotion
from fercore.inference.preprocess import resize_face
from fercore.types import DataError, ImageError, ImageTooLargeError

# The image files the project reads (folders, uploads, batch prediction, the dashboard's upload widgets).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
MAX_FACE_FILE_BYTES = 32 * 1024**2
MAX_FACE_PIXELS = 4096 * 4096  # an RGB decode of this is 50 MB; _WORKERS of them run at once
_WORKERS = min(4, (os.cpu_count() or 2) * 2)  # decoding is mostly GIL-bound: more threads gain nothing
UNREADABLE = "unreadable image"


@dataclass
class FolderLayout:
    """A folder data set as found on disk: ``folder`` or ``kaggle`` kind, its images as
    (split, emotion, path), and the sub-folders that were not used."""

    kind: str
    files: list[tuple[str, str, str]]
    unknown: list[str]


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


def list_folder_images(root: Path) -> FolderLayout:
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
                files += [
                    (split, emotion, os.path.join(d, n))
                    for n in names
                    if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                ]
    if not files:
        raise DataError(f"{root}: class folders found but they contain no images")
    return FolderLayout(kind, files, unused)


def read_face_file(path: str) -> np.ndarray | None:
    """Read one image file as a 48×48 uint8 face (centre-cropped to square), or None if unreadable.

    None rather than an error: one bad file among thousands is reported and skipped by the loader.
    """
    face = _read_face(path)
    return None if isinstance(face, str) else face


def _read_face(path: str) -> np.ndarray | str:
    """The face, or why the file was skipped (never its content)."""
    try:
        if os.path.getsize(path) > MAX_FACE_FILE_BYTES:
            return f"file larger than {MAX_FACE_FILE_BYTES // 1024**2} MB"
        with open(path, "rb") as fh:
            data = fh.read()
        return square_face(to_gray(decode_image(data, path, max_pixels=MAX_FACE_PIXELS)))
    except ImageTooLargeError:  # the header's size, checked before decoding
        return f"more than {MAX_FACE_PIXELS / 1e6:.0f} megapixels"
    except (ImageError, OSError):
        return UNREADABLE


def square_face(gray: np.ndarray) -> np.ndarray:
    """The centred square of a gray image, resized to 48×48 (faces in folders are already cropped)."""
    h, w = gray.shape[:2]
    if h != w:
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        gray = gray[y0 : y0 + side, x0 : x0 + side]
    return resize_face(gray)


def load_folders(root: Path, layout: FolderLayout, source: str | None = None) -> Dataset:
    """Decode every image of ``layout`` (in threads: decoding releases the GIL) into a Dataset.

    ``source`` names the data set in the report (default: ``root``); ids are paths relative to ``root``.
    """
    files = layout.files
    paths = [p for _, _, p in files]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        faces = list(pool.map(_read_face, paths, chunksize=256))
    report = LoadReport(source=source or str(root), kind=layout.kind, unknown_folders=list(layout.unknown))
    keep = [i for i, f in enumerate(faces) if not isinstance(f, str)]
    report.skipped = [
        (os.path.relpath(paths[i], root) if source else paths[i], f) for i, f in enumerate(faces) if isinstance(f, str)
    ]
    report.loaded = len(keep)
    if not keep:
        raise DataError(f"{report.source}: none of the {len(paths)} image files could be read")
    images = np.stack([f for f in faces if not isinstance(f, str)])
    labels = np.array([EMOTIONS.index(files[i][1]) for i in keep], dtype=np.int64)
    splits = np.array([files[i][0] for i in keep])
    ids = np.array([os.path.relpath(files[i][2], root) for i in keep])
    return Dataset(images, labels, splits, ids, report)


def find_dataset_root(root: Path, name: str) -> Path:
    """The shallowest folder under ``root`` that holds a class-folder or Kaggle layout."""
    candidates = [root] + [p for p in root.rglob("*") if p.is_dir() and "__MACOSX" not in p.parts]
    for folder in sorted(candidates, key=lambda p: (len(p.parts), str(p))):
        try:
            list_folder_images(folder)
            return folder
        except DataError:
            continue
    raise DataError(f"{name}: no class folders with images inside (expected e.g. train/happy/*.png or happy/*.png)")
