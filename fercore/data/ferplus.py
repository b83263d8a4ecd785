"""FER+ votes (Barsoum et al., 2016): ten annotators re-labelled every FER2013 image.

A vote file has one row per FER2013 CSV row (column ``row``) and one count per FER+ emotion; the
votes are aligned to any data set by that row (CSV row ids or ``NNNNN.png`` file names).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fercore.data.dataset import Dataset
from fercore.labels import EMOTIONS, NUM_CLASSES
from fercore.types import DataError

VOTES_FILE = "ferplus_votes.csv"


def find_votes(data: str | os.PathLike[str], accept: Callable[[Path], bool] = lambda _: True) -> Path | None:
    """The FER+ vote file of a data set, or None: ``ferplus_votes.csv`` inside a data folder or beside a
    data file or folder. ``accept`` may refuse a candidate (the dashboard passes
    ``fercore.data.locations.within_data_roots`` so an upload never reads outside the data roots)."""
    path = Path(data)
    candidates = ([path / VOTES_FILE] if path.is_dir() else []) + [path.parent / VOTES_FILE]
    return next((c for c in candidates if c.is_file() and accept(c)), None)


def require_votes(data: str | os.PathLike[str], hint: str = "give its path with --ferplus") -> Path:
    """:func:`find_votes` for callers that cannot go on without the file: FileNotFoundError (ending with
    ``hint``) when there is none."""
    found = find_votes(data)
    if found is None:
        raise FileNotFoundError(f"no {VOTES_FILE} in or beside {data}; {hint}")
    return found


# FER+ column → FER2013 emotion ("contempt" has no FER2013 class and is dropped).
FERPLUS_COLUMNS = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}


def load_ferplus_votes(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a FER+ vote file. Returns (rows, votes) with votes (n, 7) in FER2013 class order."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read FER+ votes ({exc.strerror or type(exc).__name__})") from None
    except ValueError:  # pandas' parser messages may quote the file: name the problem
        raise DataError(f"{path}: FER+ votes are not a readable CSV file") from None
    cols = {str(c).lower(): c for c in df.columns}
    missing = [c for c in ["row", *FERPLUS_COLUMNS] if c not in cols]
    if missing:
        raise DataError(f"{path}: FER+ vote file lacks columns {', '.join(missing)}")
    votes = np.zeros((len(df), NUM_CLASSES), np.float32)
    for src, emotion in FERPLUS_COLUMNS.items():
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
