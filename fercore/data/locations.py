"""Where data sets live: the places searched for FER2013, and the data roots a path field may name.

A path typed into the dashboard is resolved (``..`` and symbolic links included) and must lie inside
one of the configured data roots; otherwise a page could be used to read any file the server can.
The roots, by the names users configure them with:

* ``FER_DATA`` — the configured data set (its folder when it names a file);
* the project's ``data/`` folder;
* the shared data folder beside the checkout, ``<project>/../shared/data`` (``FER_SHARED_DATA``
  overrides it), where development and CI keep FER2013;
* ``FER_DATA_ROOTS`` — further folders, separated by ``os.pathsep`` (``:`` on Linux and macOS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fercore.labels import canonical_emotion
from fercore.paths import PROJECT_ROOT
from fercore.types import DataError



@dataclass(frozen=True)
class DataRoot:
    """A folder path fields may point into, and the setting it comes from (shown to users)."""

    name: str
    path: Path


def shared_data_dir() -> Path:
    """The shared data folder: ``$FER_SHARED_DATA`` or ``<project>/../shared/data``."""
    env = os.environ.get("FER_SHARED_DATA")
    return Path(env).expanduser() if env else PROJECT_ROOT.parent / "shared" / "data"


def data_roots() -> list[DataRoot]:
    """The configured data roots, resolved (whether or not they exist: nothing is probed but FER_DATA)."""
    roots: list[DataRoot] = []
    env = os.environ.get("FER_DATA", "").strip()
    if env:
        p = Path(env).expanduser()
        is_file = p.is_file() or p.name.lower().endswith((".csv", ".csv.gz"))
        roots.append(DataRoot("FER_DATA", p.parent if is_file else p))
    roots.append(DataRoot("the project's data/ folder", PROJECT_ROOT / "data"))
    roots.append(DataRoot("the shared data folder (FER_SHARED_DATA)", shared_data_dir()))
    for part in os.environ.get("FER_DATA_ROOTS", "").split(os.pathsep):
        if part.strip():
            roots.append(DataRoot("FER_DATA_ROOTS", Path(part.strip()).expanduser()))
    out = []
    for root in roots:
        try:
            out.append(DataRoot(root.name, root.path.resolve()))
        except (OSError, RuntimeError, ValueError):
            continue  # an unresolvable setting (a link loop) allows nothing
    return out


def within_data_roots(path: str | os.PathLike[str]) -> bool:
    """True if ``path``, resolved, lies inside a data root (symbolic links are followed first)."""
    try:
        real = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return any(real.is_relative_to(root.path) for root in data_roots())


def _outside_message(shown: str) -> str:
    names = list(dict.fromkeys(root.name for root in data_roots()))
    return (
        f"{shown}: not inside a data folder this app may read ({', '.join(names)}); to allow a folder, "
        f"add it to FER_DATA_ROOTS ('{os.pathsep}'-separated) and restart"
    )


def check_dataset_path(path: str | os.PathLike[str]) -> Path:
    """The resolved path if it is inside a data root, exists and looks like a data set.

    Raises DataError otherwise. A path outside the roots gets the same message whether it exists or
    not, so the field cannot be used to probe the server's files.
    """
    text = str(path).strip()
    if not text:
        raise DataError("no dataset path given")
    shown = "".join(c if c.isprintable() else "?" for c in text)
    shown = shown if len(shown) <= 200 else shown[:199] + "…"
    if not within_data_roots(text):
        raise DataError(_outside_message(shown))
    real = Path(text).expanduser().resolve()
    if not real.exists():
        raise DataError(f"{shown}: no such file or folder")
    if not looks_like_dataset(real):
        raise DataError(
            f"{shown}: not a dataset (expected a FER2013 .csv/.csv.gz, or a folder of <class>/ image "
            "folders, or <split>/<class>/ as in the Kaggle layout)"
        )
    return real


def check_data_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """The resolved path of a file inside a data root (e.g. a relabel CSV); the same DataError for any
    path outside the roots, existing or not."""
    text = str(path).strip()
    shown = "".join(c if c.isprintable() else "?" for c in text)[:200]
    if not text:
        raise DataError(f"no {what} path given")
    if not within_data_roots(text):
        raise DataError(_outside_message(shown))
    real = Path(text).expanduser().resolve()
    if not real.is_file():
        raise DataError(f"{shown}: no such {what}")
    return real


def data_candidates() -> list[Path]:
    """Where the dataset is looked for, in order: $FER_DATA, data/ in the project, the shared fer2013/."""
    out: list[Path] = []
    env = os.environ.get("FER_DATA", "").strip()
    if env:
        out.append(Path(env).expanduser())
    data = PROJECT_ROOT / "data"
    out += [data / "fer2013.csv", data / "fer2013.csv.gz", data / "fer2013", data]
    out.append(shared_data_dir() / "fer2013")
    return out


def _has_class_folders(folder: Path) -> bool:
    try:
        return any(c.is_dir() and canonical_emotion(c.name) for c in folder.iterdir())
    except OSError:
        return False


def looks_like_dataset(path: str | os.PathLike[str]) -> bool:
    """Cheap check (no image is read): a FER2013 CSV, or a folder with class folders (one or two levels)."""
    path = Path(path)
    if path.is_file():
        return path.name.lower().endswith((".csv", ".csv.gz"))
    if not path.is_dir():
        return False
    if _has_class_folders(path):
        return True
    try:
        return any(c.is_dir() and _has_class_folders(c) for c in path.iterdir())
    except OSError:
        return False


def find_dataset() -> Path | None:
    """The configured dataset, or None when none of the candidate places holds one."""
    env = os.environ.get("FER_DATA", "").strip()
    if env:  # an explicit setting wins, even when wrong (the page then says why)
        return Path(env).expanduser()
    for cand in data_candidates():
        if cand.exists() and looks_like_dataset(cand):
            return cand
    return None


def photos_dir() -> Path | None:
    """The sample photos beside the shared data (``<shared data>/photos``), None if absent."""
    p = shared_data_dir() / "photos"
    return p if p.is_dir() else None
