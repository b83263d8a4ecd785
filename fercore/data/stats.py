"""Dataset statistics: split × class counts, mean faces, intensity histograms, duplicates, blanks,
FER+ agreement."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fercore.data.dataset import Dataset
from fercore.data.ferplus import align_votes, load_ferplus_votes, majority_labels
from fercore.labels import EMOTIONS


def split_class_counts(ds: Dataset) -> pd.DataFrame:
    """Images per split (rows) and class (columns, FER2013 order), with totals."""
    df = pd.crosstab(pd.Series(ds.splits, name="split"), pd.Series([EMOTIONS[i] for i in ds.labels], name="emotion"))
    df = df.reindex(index=ds.split_names, columns=list(EMOTIONS), fill_value=0)
    return df.astype(int)


def class_mean_faces(ds: Dataset, split: str | None = None) -> dict[str, np.ndarray]:
    """Mean 48×48 face per class (float32 0–255); classes without images are left out."""
    sub = ds.split(split) if split else ds
    out = {}
    for i, name in enumerate(EMOTIONS):
        mask = sub.labels == i
        if mask.any():
            out[name] = sub.images[mask].mean(axis=0, dtype=np.float64).astype(np.float32)
    return out


def intensity_histogram(ds: Dataset, bins: int = 64) -> pd.DataFrame:
    """Pixel-intensity histogram per split as a share of pixels: columns split, intensity, share."""
    edges = np.linspace(0, 256, bins + 1)
    rows = []
    for split in ds.split_names:
        pixels = ds.images[ds.splits == split].ravel()
        counts = (
            np.bincount(pixels, minlength=256).reshape(bins, -1).sum(axis=1)
            if 256 % bins == 0
            else np.histogram(pixels, bins=edges)[0]
        )
        share = counts / max(1, counts.sum())
        rows += [{"split": split, "intensity": float(edges[b]), "share": float(share[b])} for b in range(bins)]
    return pd.DataFrame(rows)


@dataclass
class DuplicateReport:
    """Groups of byte-identical images."""

    groups: list[np.ndarray] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    within_split: int = 0  # groups whose members all share one split
    across_splits: int = 0  # groups spanning several splits (train/test leakage)
    conflicting: int = 0  # groups whose members carry different labels


def find_duplicates(ds: Dataset) -> DuplicateReport:
    """Exact duplicate images, within and across splits, and those with conflicting labels."""
    digests = [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in ds.images]
    series = pd.Series(digests)
    dup_mask = series.duplicated(keep=False).to_numpy()
    report = DuplicateReport()
    if not dup_mask.any():
        report.table = pd.DataFrame(columns=["group", "index", "id", "split", "label"])
        return report
    idx = np.flatnonzero(dup_mask)
    frame = pd.DataFrame({"digest": series[idx].to_numpy(), "index": idx})
    rows = []
    for g, (_, members) in enumerate(frame.groupby("digest", sort=False)):
        members_idx = members["index"].to_numpy()
        report.groups.append(members_idx)
        splits = set(ds.splits[members_idx].tolist())
        labels = set(ds.labels[members_idx].tolist())
        report.across_splits += len(splits) > 1
        report.within_split += len(splits) == 1
        report.conflicting += len(labels) > 1
        rows += [
            {
                "group": g,
                "index": int(i),
                "id": str(ds.ids[i]),
                "split": str(ds.splits[i]),
                "label": EMOTIONS[int(ds.labels[i])],
            }
            for i in members_idx
        ]
    report.table = pd.DataFrame(rows)
    return report


def blank_images(ds: Dataset, max_std: float = 2.0) -> np.ndarray:
    """Indices of images with (almost) no content: pixel standard deviation ≤ ``max_std``."""
    std = ds.images.reshape(len(ds), -1).std(axis=1)
    return np.flatnonzero(std <= max_std)


def ferplus_agreement(ds: Dataset, votes_path: str | Path) -> pd.DataFrame:
    """Per FER2013 class: images with FER+ votes, and the share whose FER+ majority agrees."""
    rows, votes = load_ferplus_votes(votes_path)
    aligned = align_votes(ds, rows, votes)
    major = majority_labels(aligned)
    has = major >= 0
    out = []
    for i, name in enumerate(EMOTIONS):
        mask = has & (ds.labels == i)
        n = int(mask.sum())
        out.append(
            {
                "emotion": name,
                "n": n,
                "agree": float((major[mask] == i).mean()) if n else float("nan"),
                "mean_votes_for_label": float(aligned[mask, i].mean()) if n else float("nan"),
            }
        )
    return pd.DataFrame(out)
