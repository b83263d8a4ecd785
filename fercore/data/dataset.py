"""The in-memory data set every loader returns: faces, labels, splits and where they came from.

Kept apart from the loaders (CSV, folders, uploads) so each of them can build one without importing
the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fercore.types import DataError

# Split names as users and files spell them → the names we use.
SPLIT_ALIASES: dict[str, str] = {
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


def normalize_split(name: str) -> str:
    """Canonical split name: Training→train, PublicTest→test, PrivateTest→private."""
    key = name.strip().lower()
    return SPLIT_ALIASES.get(key, key)


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

    def summary(self, shown_as: str | None = None) -> str:
        """One human-readable line; ``shown_as`` names the source as its user wrote it (e.g. a relative
        path) instead of the resolved ``source``."""
        parts = [f"{self.loaded} images from {self.kind} {shown_as or self.source}"]
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

    def split(self, name: str) -> Dataset:
        """The subset of one split (``train``, ``test``/``PublicTest``, ``private``/``PrivateTest``, ``all``)."""
        key = normalize_split(name)
        if key == "all":
            return self
        mask = self.splits == key
        if not mask.any():
            raise DataError(f"{self.report.source}: no split {name!r}; available: {', '.join(self.split_names)}")
        return self.subset(mask)

    def subset(self, index: np.ndarray) -> Dataset:
        """Rows selected by a boolean mask or an index array."""
        return Dataset(self.images[index], self.labels[index], self.splits[index], self.ids[index], self.report)

    def rows(self) -> np.ndarray:
        """FER2013 CSV row of each image (from CSV rows or NNNNN file names), -1 where unknown."""
        out = np.full(len(self), -1, dtype=np.int64)
        for i, ident in enumerate(self.ids.tolist()):
            stem = Path(str(ident)).stem
            if stem.isdigit():
                out[i] = int(stem)
        return out


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``n`` of ``labels``, every class in its proportion (at least one face each).

    ``labels``: (m,) class per face; ``n``: how many to keep (``n <= 0`` or ``n >= m``: all);
    ``seed``: the random choice within each class. Training's ``--subset`` picks its faces with this, so
    a run resumed on the same seed trains on the same faces: keep the draw as it is.
    """
    rng = np.random.default_rng(seed)
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(n * len(idx) / len(labels))))
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def stratified_subset(
    dataset: Dataset, limit: int | None = None, fold: tuple[int, int] | None = None, seed: int = 0
) -> Dataset:
    """A reproducible class-balanced part of ``dataset``: the one way the project takes a sample of faces.

    ``fold=(k, n)`` keeps fold ``k`` of ``n`` (1-based; the folds partition each class, so one can fit
    a temperature on one half of a split and report on the other); ``limit`` then keeps about that many
    faces in class proportions (:func:`stratified_indices`); ``seed`` fixes both draws.
    """
    labels = np.asarray(dataset.labels)
    if fold is not None:
        k, n = fold
        if not 1 <= k <= n:
            raise ValueError(f"fold must be k/n with 1 ≤ k ≤ n, got {k}/{n}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be ≥ 1, got {limit}")
    if fold is not None:
        rng = np.random.default_rng(seed)
        chosen = [rng.permutation(np.flatnonzero(labels == c))[fold[0] - 1 :: fold[1]] for c in np.unique(labels)]
        dataset = dataset.subset(np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64))
    if limit is not None:
        dataset = dataset.subset(stratified_indices(np.asarray(dataset.labels), limit, seed))
    return dataset
