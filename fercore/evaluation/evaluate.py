"""Evaluation: accuracy, confusion matrix, per-class precision/recall/F1 (scikit-learn), calibration
(ECE, temperature), test-time augmentation, and scoring against FER+ majority labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fercore.data.ferplus import VOTES_FILE, find_votes
from fercore.data.loader import Dataset, align_votes, load_ferplus_votes
from fercore.evaluation.calibration import (
    apply_temperature,
    ece,
    fit_temperature,
    load_calibration,
    nll,
    reliability,
    save_temperature,
)
from fercore.inference.classify import Backend
from fercore.inference.preprocess import to_model_input
from fercore.labels import EMOTIONS, NUM_CLASSES
from fercore.models.ensemble import EnsembleBackend, load_tier, resolve_tier, tta_views

ECE_BINS = 15

__all__ = [
    "EvalResult",
    "evaluate",
    "predict_proba",
    "tta_views",
    "ferplus_relabel",
    "find_ferplus_votes",
    "stratified_subset",
    "fit_and_save_temperature",
]

ModelArg = str | Path | Backend | None


def _backend(model: ModelArg) -> Backend:
    if model is None or isinstance(model, (str, Path)):
        return load_tier(model)
    return model


def predict_proba(
    model: ModelArg,
    faces: np.ndarray,
    tta: bool = False,
    batch_size: int = 512,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """(n, 7) probabilities for (n, 48, 48) uint8 faces; averaged over TTA views if asked.

    ``model`` is a tier name, a model file (the shipped one if None) or a loaded backend;
    ``progress`` is called with the fraction done after each batch.
    """
    backend = _backend(model)
    n = len(faces)
    total = np.zeros((n, NUM_CLASSES), np.float64)
    for start in range(0, n, batch_size):
        chunk = faces[start : start + batch_size]
        views = tta_views(chunk) if tta else [chunk]
        for view in views:
            total[start : start + len(chunk)] += backend.predict(to_model_input(np.ascontiguousarray(view)))
        total[start : start + len(chunk)] /= len(views)
        if progress is not None:
            progress(min(1.0, (start + len(chunk)) / n))
    return total.astype(np.float32)


@dataclass
class EvalResult:
    """Predictions and the metrics derived from them.

    ``proba`` is what the backend returned; ``temperature`` (from the model's calibration file)
    gives the probabilities users see, ``calibrated``. Argmax, hence accuracy, is the same.
    """

    y_true: np.ndarray
    proba: np.ndarray
    model: str
    tta: bool
    temperature: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def y_pred(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def calibrated(self) -> np.ndarray:
        return apply_temperature(self.proba, self.temperature)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: accuracy, n, per_class, confusion (+ labels, model, tta, macro_f1,
        ece of the served probabilities, ece_uncalibrated, temperature, the reliability bins of the
        served probabilities for a diagram, and ``extra``)."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        labels = list(range(NUM_CLASSES))
        p, r, f, s = precision_recall_fscore_support(self.y_true, self.y_pred, labels=labels, zero_division=0)
        per_class = {
            EMOTIONS[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in labels
        }
        return {
            "accuracy": float((self.y_pred == self.y_true).mean()) if len(self.y_true) else 0.0,
            "n": int(len(self.y_true)),
            "per_class": per_class,
            "macro_f1": float(np.mean(f)),
            "confusion": confusion_matrix(self.y_true, self.y_pred, labels=labels).tolist(),
            "labels": list(EMOTIONS),
            "model": self.model,
            "tta": self.tta,
            "ece": ece(self.calibrated, self.y_true, ECE_BINS),
            "ece_uncalibrated": ece(self.proba, self.y_true, ECE_BINS),
            "temperature": self.temperature,
            "reliability": reliability(self.calibrated, self.y_true, ECE_BINS),
            **self.extra,
        }


def _saved_temperature(model: str | Path | None, tta: bool) -> float:
    """The model's saved temperature if it was fitted on the same kind of output: averaging over
    TTA views already softens the probabilities, so a temperature fitted without TTA would
    over-correct them (and vice versa); then 1."""
    record = load_calibration(resolve_tier(model))
    return float(record["temperature"]) if record and bool(record.get("tta", False)) == tta else 1.0


def evaluate(
    model: ModelArg,
    dataset: Dataset,
    tta: bool = False,
    progress: Callable[[float], None] | None = None,
    model_name: str | None = None,
    temperature: float | None = None,
) -> EvalResult:
    """Classify every face of ``dataset`` with the model (a tier name, a file, a loaded backend,
    or the shipped model if None). ``temperature`` defaults to the model's calibration file when it
    was fitted with the same TTA setting (1 otherwise, and for a backend). A tier that applies its own TTA is never augmented twice."""
    if len(dataset) == 0:
        raise ValueError("the data set has no images to evaluate")
    backend = _backend(model)
    tier_tta = isinstance(backend, EnsembleBackend) and backend.tta
    is_file = model is None or isinstance(model, (str, Path))
    if temperature is None:
        temperature = (
            _saved_temperature(model, tta or tier_tta) if model is None or isinstance(model, (str, Path)) else 1.0
        )
    proba = predict_proba(backend, dataset.images, tta=tta and not tier_tta, progress=progress)
    if model_name is None:
        model_name = str(model or resolve_tier(None)) if is_file else type(model).__name__
    return EvalResult(
        y_true=dataset.labels.astype(np.int64),
        proba=proba,
        model=model_name,
        tta=tta or tier_tta,
        temperature=temperature,
    )


# ----------------------------------------------------------------------------------------------
# FER+ labels


def find_ferplus_votes(data: str | Path) -> Path:
    """``ferplus_votes.csv`` inside a data folder or beside a data file/folder; FileNotFoundError if none."""
    found = find_votes(data)
    if found is None:
        raise FileNotFoundError(f"no {VOTES_FILE} in or beside {data}; give its path with --ferplus")
    return found


def ferplus_relabel(dataset: Dataset, votes_file: str | Path) -> tuple[Dataset, dict[str, int]]:
    """The faces of ``dataset`` that have a clear FER+ majority among the 7 FER2013 emotions,
    relabelled with it (contempt, unknown and not-a-face votes are ignored).

    A clear majority is a unique most-voted emotion. Faces without one (a tie, or no vote among
    the 7 — including faces absent from the vote file) are left out and counted: returns the
    relabelled subset and ``{"excluded_no_majority": …, "excluded_tie": …, "excluded_no_votes": …}``.
    """
    rows, votes = load_ferplus_votes(votes_file)
    v = align_votes(dataset, rows, votes)
    top = v.max(axis=1)
    no_votes = top <= 0
    tie = ~no_votes & ((v == top[:, None]).sum(axis=1) > 1)
    keep = ~(no_votes | tie)
    sub = dataset.subset(keep)
    relabelled = dataclasses.replace(sub, labels=v[keep].argmax(axis=1).astype(np.int64))
    counts = {
        "excluded_no_majority": int((~keep).sum()),
        "excluded_tie": int(tie.sum()),
        "excluded_no_votes": int(no_votes.sum()),
    }
    return relabelled, counts


# ----------------------------------------------------------------------------------------------
# Samples and calibration


def stratified_subset(
    dataset: Dataset, limit: int | None = None, fold: tuple[int, int] | None = None, seed: int = 0
) -> Dataset:
    """A reproducible class-balanced part of ``dataset``: fold ``k`` of ``n`` (``fold=(k, n)``,
    1-based; the folds partition each class) and/or at most ``limit`` faces in class proportions.

    Folds let one fit a temperature on one half of a split and report on the other."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    if fold is not None:
        k, n = fold
        if not 1 <= k <= n:
            raise ValueError(f"fold must be k/n with 1 ≤ k ≤ n, got {k}/{n}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be ≥ 1, got {limit}")
    chosen: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if fold is not None:
            members = members[fold[0] - 1 :: fold[1]]
        chosen.append(members)
    index = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    if limit is not None and limit < len(index):
        # the same share of every class (at least one face each); rounding overshoot trimmed at random
        rate = limit / len(index)
        pooled = np.concatenate([m[: max(1, round(rate * len(m)))] for m in chosen])
        index = rng.permutation(pooled)[:limit]
    return dataset.subset(np.sort(index))


def fit_and_save_temperature(result: EvalResult, model_path: str | Path, fitted_on: str) -> dict[str, Any]:
    """Fit the temperature on ``result``'s raw probabilities and save it beside ``model_path``;
    returns what was written (temperature, fitted_on, n, ece_before, ece_after, nll…)."""
    t = fit_temperature(result.proba, result.y_true)
    info = {
        "fitted_on": fitted_on,
        "n": int(len(result.y_true)),
        "tta": result.tta,
        "ece_before": ece(result.proba, result.y_true, ECE_BINS),
        "ece_after": ece(apply_temperature(result.proba, t), result.y_true, ECE_BINS),
        "nll_before": nll(result.proba, result.y_true),
        "nll_after": nll(result.proba, result.y_true, t),
    }
    file = save_temperature(model_path, t, **info)
    return {"temperature": t, **info, "file": str(file)}
