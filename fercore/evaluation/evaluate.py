"""Evaluation: accuracy, confusion matrix, per-class precision/recall/F1 (scikit-learn), calibration
(ECE, temperature), test-time augmentation, and scoring against FER+ majority labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fercore.data.loader import Dataset, align_votes, load_ferplus_votes
from fercore.evaluation.calibration import ece, fit_temperature, nll, reliability
from fercore.inference.classify import Backend
from fercore.inference.preprocess import to_model_input
from fercore.inference.temperature import apply_temperature, save_temperature, saved_temperature
from fercore.labels import EMOTIONS, NUM_CLASSES
from fercore.models.ensemble import TTA_VIEWS, EnsembleBackend, load_tier, resolve_tier, view_batch, view_mean

ECE_BINS = 15

__all__ = [
    "EvalResult",
    "evaluate",
    "predict_proba",
    "ferplus_relabel",
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
    ``batch_size`` bounds the faces (views included) of one backend call; ``progress`` is called with
    the fraction done after each batch. The views and their average are :func:`view_batch` and
    :func:`view_mean`, the ones a TTA tier serves with.
    """
    backend = _backend(model)
    n = len(faces)
    views = TTA_VIEWS if tta or (isinstance(backend, EnsembleBackend) and backend.tta) else 1  # a tier's own too
    step = max(1, batch_size // views)
    total = np.zeros((n, NUM_CLASSES), np.float64)
    for start in range(0, n, step):
        chunk = to_model_input(faces[start : start + step])[..., 0]
        batch, views = view_batch(chunk, tta)
        total[start : start + len(chunk)] = view_mean(backend.predict(batch), views)
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
        """The most probable class of each face."""
        return self.proba.argmax(axis=1)

    @property
    def calibrated(self) -> np.ndarray:
        """The probabilities users see: ``proba`` rescaled by ``temperature``."""
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
    was fitted with the same TTA setting (:func:`saved_temperature`; 1 for a backend). A tier that
    applies its own TTA is never augmented twice. ``progress`` gets the fraction done;
    ``model_name`` names the model in the result (default: the model argument)."""
    if len(dataset) == 0:
        raise ValueError("the data set has no images to evaluate")
    backend = _backend(model)
    tier_tta = isinstance(backend, EnsembleBackend) and backend.tta
    path = resolve_tier(model) if model is None or isinstance(model, (str, Path)) else None
    if temperature is None:
        temperature = 1.0 if path is None else saved_temperature(path, tta or tier_tta)
    proba = predict_proba(backend, dataset.images, tta=tta and not tier_tta, progress=progress)
    if model_name is None:
        model_name = type(model).__name__ if path is None else str(model or path)
    return EvalResult(
        y_true=dataset.labels.astype(np.int64),
        proba=proba,
        model=model_name,
        tta=tta or tier_tta,
        temperature=temperature,
    )


# ----------------------------------------------------------------------------------------------
# FER+ labels


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
# Calibration


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
