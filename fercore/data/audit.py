"""Find faces whose FER2013 label is probably wrong, and relabel them.

FER2013 was labelled by one person per face; ten FER+ annotators per face often disagree. Two
witnesses point at suspects:

* ``ferplus``: the FER+ annotators (Barsoum et al., 2016) gave a clear majority to another emotion.
  A clear majority is more than ``min_share`` (0.5) of the votes among the 7 FER2013 emotions; the FER+
  authors' "majority" mode uses the same 0.5 but also counts contempt, unknown and not-a-face votes.
  Faces without a clear majority accuse nobody and are counted as excluded.
* ``model``: confident learning (Northcutt et al., 2021): a model is confidently sure of another class.
  The thresholds are per class, so a class the model is shy about still counts. Out-of-fold
  probabilities are best: the shipped model saw the train split (it half-remembers those labels) and,
  in the default recipe, FER+ votes as soft targets (so it is not independent of the first rule).

A relabel file (``row,old_label,new_label``) records the decisions so training can apply them later.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fercore.data.dataset import Dataset
from fercore.labels import EMOTIONS, NUM_CLASSES, canonical_emotion
from fercore.types import DataError

RULES: tuple[str, ...] = ("ferplus", "model")
RELABEL_COLUMNS: tuple[str, ...] = ("row", "old_label", "new_label")


@dataclass(frozen=True)
class Suspect:
    """One face whose label a rule disputes.

    ``reason`` names the rules that dispute it (``ferplus``, ``model`` or ``ferplus+model``); ``suggested``
    is the FER+ majority when FER+ disputes the label (people before a model), else the model's class;
    ``ferplus``/``model`` are each rule's own suggestion (None when that rule is silent), so a
    disagreement between them stays visible. ``confidence`` is the strongest evidence for ``suggested``:
    the larger of the FER+ vote share and the model probability of the rules that suggest it.
    """

    index: int
    file: str
    row: int | None
    label: str
    suggested: str
    reason: str
    confidence: float
    ferplus: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's and the pages' one shape)."""
        return dataclasses.asdict(self)


@dataclass
class AuditResult:
    """Suspects (most evidence first) and what the rules saw."""

    n: int
    suspects: list[Suspect]
    rules: list[str]
    excluded_no_majority: int = 0
    ferplus_no_votes: int = 0
    thresholds: dict[str, float] | None = None

    def by_pair(self) -> dict[str, int]:
        """``"label->suggested"`` → count, most frequent first: which confusions the labellers made."""
        pairs = Counter(f"{s.label}->{s.suggested}" for s in self.suspects)
        return dict(pairs.most_common())

    def by_rule(self) -> dict[str, int]:
        """Suspects per rule (a face disputed by both counts for each) and, with two rules, by both."""
        out = {rule: sum(rule in s.reason.split("+") for s in self.suspects) for rule in self.rules}
        if len(self.rules) > 1:
            out["both"] = sum("+" in s.reason for s in self.suspects)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "rules": self.rules,
            "suspects": [s.to_dict() for s in self.suspects],
            "by_pair": self.by_pair(),
            "by_rule": self.by_rule(),
            "excluded_no_majority": self.excluded_no_majority,
            "ferplus_no_votes": self.ferplus_no_votes,
            "thresholds": self.thresholds,
        }


def confident_thresholds(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j = mean predicted probability of class j over the faces labelled j (inf when none is)."""
    t = np.full(proba.shape[1], np.inf)
    for j in range(proba.shape[1]):
        members = labels == j
        if members.any():
            t[j] = proba[members, j].mean()
    return t


def confident_classes(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The class each face confidently belongs to, -1 where none: the most likely class j with p_j ≥ t_j.

    Counting (label, confident class) pairs gives Northcutt et al.'s confident joint; its off-diagonal
    (confident class ≠ label) holds the label issues.
    """
    t = confident_thresholds(proba, labels)
    above = proba >= t[None, :] - 1e-6  # cleanlab's tolerance: a face at the mean is confident
    masked = np.where(above, proba, -1.0)
    out = masked.argmax(axis=1)
    out[~above.any(axis=1)] = -1
    return out


def confident_joint(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(k, k) counts: rows = given label, columns = confident class. Off-diagonal = suspected noise."""
    k = proba.shape[1]
    conf = confident_classes(proba, labels)
    keep = conf >= 0
    return np.bincount(labels[keep] * k + conf[keep], minlength=k * k).reshape(k, k)


def ferplus_majority(votes: np.ndarray, min_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(class, share) per face: the emotion with more than ``min_share`` of the 7-emotion votes; class -1
    (no clear majority) on a tie for the top or without votes."""
    total = votes.sum(axis=1)
    share = np.divide(votes, total[:, None], out=np.zeros(votes.shape, np.float64), where=total[:, None] > 0)
    top = share.max(axis=1)
    unique = (share == top[:, None]).sum(axis=1) == 1
    cls = np.where((total > 0) & unique & (top > min_share), share.argmax(axis=1), -1)
    return cls, top


def audit(
    dataset: Dataset,
    proba: np.ndarray | None = None,
    votes: np.ndarray | None = None,
    min_share: float = 0.5,
    min_confidence: float = 0.0,
) -> AuditResult:
    """Suspect labels of ``dataset`` by FER+ ``votes`` (aligned (n, 7), see ``fercore.data.ferplus.align_votes``)
    and/or model ``proba`` ((n, 7)); at least one is needed. A rule's accusation below
    ``min_confidence`` is dropped before the two are merged."""
    n = len(dataset)
    if proba is None and votes is None:
        raise ValueError("audit needs FER+ votes, model probabilities or both")
    for name, arr in (("proba", proba), ("votes", votes)):
        if arr is not None and np.shape(arr) != (n, NUM_CLASSES):
            raise ValueError(f"{name} must have shape ({n}, {NUM_CLASSES}) for {n} faces, got {np.shape(arr)}")
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    labels = np.asarray(dataset.labels, np.int64)
    accusations: list[dict[int, tuple[int, float]]] = []  # per rule: face → (class, score)
    result = AuditResult(n=n, suspects=[], rules=[])
    if votes is not None:
        cls, share = ferplus_majority(np.asarray(votes, np.float64), min_share)
        result.rules.append("ferplus")
        result.excluded_no_majority = int((cls < 0).sum())
        result.ferplus_no_votes = int((np.asarray(votes).sum(axis=1) == 0).sum())
        hit = np.flatnonzero((cls >= 0) & (cls != labels) & (share >= min_confidence))
        accusations.append({int(i): (int(cls[i]), float(share[i])) for i in hit})
    if proba is not None:
        p = np.asarray(proba, np.float64)
        conf = confident_classes(p, labels)
        result.rules.append("model")
        result.thresholds = {e: float(t) for e, t in zip(EMOTIONS, confident_thresholds(p, labels), strict=True)}
        hit = np.flatnonzero((conf >= 0) & (conf != labels))
        hit = hit[p[hit, conf[hit]] >= min_confidence]
        accusations.append({int(i): (int(conf[i]), float(p[i, conf[i]])) for i in hit})
    result.suspects = _merge(dataset, labels, dict(zip(result.rules, accusations, strict=True)))
    return result


def _merge(dataset: Dataset, labels: np.ndarray, accusations: dict[str, dict[int, tuple[int, float]]]) -> list[Suspect]:
    """One Suspect per accused face; FER+ decides ``suggested`` when both rules accuse."""
    rows = dataset.rows()
    fer, mod = accusations.get("ferplus", {}), accusations.get("model", {})
    out = []
    for i in sorted(set(fer) | set(mod)):
        suggested = (fer.get(i) or mod[i])[0]
        backing = [a[1] for a in (fer.get(i), mod.get(i)) if a is not None and a[0] == suggested]
        out.append(
            Suspect(
                index=i,
                file=str(dataset.ids[i]),
                row=int(rows[i]) if rows[i] >= 0 else None,
                label=EMOTIONS[labels[i]],
                suggested=EMOTIONS[suggested],
                reason="+".join(r for r in RULES if i in accusations.get(r, {})),
                confidence=round(max(backing), 4),
                ferplus=EMOTIONS[fer[i][0]] if i in fer else None,
                model=EMOTIONS[mod[i][0]] if i in mod else None,
            )
        )
    out.sort(key=lambda s: (-s.reason.count("+"), -s.confidence, s.index))
    return out


def load_proba(path: str | os.PathLike[str], dataset: Dataset) -> np.ndarray:
    """Model probabilities for ``dataset`` from a file: ``.npy`` of shape (n, 7) in dataset order, or a
    CSV with a ``row`` or ``file`` column and one column per emotion (e.g. out-of-fold predictions, or
    what :func:`save_proba` wrote, so a second audit needs no model run)."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise DataError(f"{path}: not a readable .npy array") from None
        if arr.shape != (len(dataset), NUM_CLASSES):
            raise DataError(f"{path}: expected shape ({len(dataset)}, {NUM_CLASSES}), got {arr.shape}")
        return arr.astype(np.float32)
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        raise DataError(f"{path}: probabilities are not a readable CSV file") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    rows = dataset.rows()
    key = "row" if "row" in cols and (rows >= 0).all() else "file" if "file" in cols else None
    if key is None or any(e not in cols for e in EMOTIONS):
        raise DataError(f"{path}: a probability CSV needs a row or file column and the columns {', '.join(EMOTIONS)}")
    values = df[[cols[e] for e in EMOTIONS]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: some probabilities are not numbers")
    if key == "row":
        theirs = pd.to_numeric(df[cols["row"]], errors="coerce").fillna(-1).astype(np.int64).tolist()
        mine = rows.tolist()
    else:
        theirs, mine = df[cols["file"]].astype(str).tolist(), [str(i) for i in dataset.ids.tolist()]
    where = {k: i for i, k in enumerate(theirs)}
    missing = sum(k not in where for k in mine)
    if missing:
        raise DataError(f"{path}: no probabilities for {missing} of the {len(mine)} faces (matched by {key})")
    return values[[where[k] for k in mine]]


def save_proba(path: str | os.PathLike[str], dataset: Dataset, proba: np.ndarray) -> None:
    """Write ``file,row,<7 emotions>`` (``row`` empty when unknown), readable by :func:`load_proba`.
    Written to a temporary file and renamed, so a killed writer never leaves half a file."""
    rows = dataset.rows()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "row", *EMOTIONS])
            for ident, row, p in zip(dataset.ids.tolist(), rows.tolist(), np.asarray(proba).tolist(), strict=True):
                writer.writerow([ident, row if row >= 0 else "", *(f"{v:.6g}" for v in p)])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def relabel_csv(suspects: list[Suspect]) -> str:
    """``row,old_label,new_label`` (emotion names) for the suspects, as CSV text.

    Rows, not file names, identify faces so the file applies to the CSV and the folder layouts alike."""
    rowless = sum(s.row is None for s in suspects)
    if rowless:
        raise DataError(f"{rowless} suspects have no FER2013 row (file names are not NNNNN.png): cannot relabel")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RELABEL_COLUMNS)
    for s in sorted(suspects, key=lambda s: s.row or 0):
        writer.writerow([s.row, s.label, s.suggested])
    return buf.getvalue()


def write_relabel(suspects: list[Suspect], path: str | os.PathLike[str]) -> int:
    """Write ``relabel_csv(suspects)`` to ``path``; returns the number of lines."""
    Path(path).write_text(relabel_csv(suspects), encoding="utf-8")
    return len(suspects)


def read_relabel(path: str | os.PathLike[str]) -> dict[int, tuple[int, int]]:
    """row → (old, new) class indices from a relabel file; DataError naming the line of any problem."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the relabel file ({type(exc).__name__})") from None
    header = [h.strip().lower() for h in lines[0]] if lines else []
    if header[:3] != list(RELABEL_COLUMNS):
        raise DataError(f"{path}: a relabel file starts with the header {','.join(RELABEL_COLUMNS)}")
    out: dict[int, tuple[int, int]] = {}
    for number, fields in enumerate(lines[1:], start=2):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) < 3:
            raise DataError(f"{path}: line {number}: expected 3 fields, got {len(fields)}")
        row = fields[0].strip()
        if not row.isdigit():
            raise DataError(f"{path}: line {number}: row must be a non-negative integer")
        old, new = (_class_index(f) for f in fields[1:3])
        if old is None or new is None:
            raise DataError(f"{path}: line {number}: labels must be emotion names or indices 0–{NUM_CLASSES - 1}")
        if int(row) in out:
            raise DataError(f"{path}: line {number}: row {int(row)} appears twice")
        out[int(row)] = (old, new)
    return out


def _class_index(text: str) -> int | None:
    name = canonical_emotion(text) if text.strip() else None
    return EMOTIONS.index(name) if name else None


def apply_relabel(dataset: Dataset, path: str | os.PathLike[str]) -> Dataset:
    """``dataset`` with the labels of the file's rows changed (the input is left untouched).

    Every row must be in the data set with its ``old_label``: a file made for other data or an older
    labelling fails loudly instead of relabelling the wrong faces."""
    changes = read_relabel(path)
    rows = dataset.rows()
    known = rows[rows >= 0]
    if len(np.unique(known)) != len(known):  # e.g. folders whose file numbers restart in every split
        raise DataError(f"{path}: the data set's row numbers are not unique, so rows cannot name faces")
    where = {int(r): i for i, r in enumerate(rows.tolist()) if r >= 0}
    unknown = [r for r in changes if r not in where]
    if unknown:
        raise DataError(f"{path}: rows not in the data set: {len(unknown)} (first: {unknown[0]})")
    labels = np.array(dataset.labels, dtype=np.int64, copy=True)
    for row, (old, new) in changes.items():
        if labels[where[row]] != old:
            raise DataError(
                f"{path}: row {row} is labelled {EMOTIONS[labels[where[row]]]} in the data set, "
                f"not {EMOTIONS[old]} as the file says"
            )
        labels[where[row]] = new
    return dataclasses.replace(dataset, labels=labels)
