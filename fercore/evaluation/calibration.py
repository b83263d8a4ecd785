"""Honest probabilities: expected calibration error, reliability bins and temperature scaling.

A network trained with cross-entropy is usually over-confident: among faces it scores at 0.9 it is
right far less than 90 % of the time. Temperature scaling divides the log-probabilities by one
scalar ``T`` fitted on held-out faces (Guo et al., 2017): the ranking, hence accuracy, is
unchanged, only the confidence moves. ``T`` is saved with the model in ``calibration.json`` beside
the model file (one per folder: every format of the same weights shares it) so every loader
applies the same correction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "calibration.json"
# Probabilities are floored here before taking logs: an int8 softmax rounds anything below 1/512
# to 0, and log(0) would let those faces decide the temperature alone.
_EPS = 1e-4
_T_RANGE = (0.05, 20.0)


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (n, classes), got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"need one label per row: {probs.shape[0]} rows, labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}")
    return probs, labels


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 goes to bin 0."""
    if bins < 1:
        raise ValueError(f"bins must be ≥ 1, got {bins}")
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin (equal width on [0, 1]): ``lower``, ``upper``, mean ``confidence`` of the
    top class, ``accuracy`` of the top class and ``count`` — the points of a reliability diagram
    (empty bins have count 0 and confidence/accuracy 0)."""
    probs, labels = _check(probs, labels)
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels) if len(probs) else np.zeros(0, bool)
    idx = _bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=bins)
    safe = np.maximum(count, 1)
    return [
        {
            "lower": i / bins,
            "upper": (i + 1) / bins,
            "confidence": float(conf_sum[i] / safe[i]),
            "accuracy": float(acc_sum[i] / safe[i]),
            "count": int(count[i]),
        }
        for i in range(bins)
    ]


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: Σ_bins (count/n) · |accuracy − confidence| over ``bins``
    equal-width bins of top-class confidence (0 for no rows)."""
    table = reliability(probs, labels, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table) / n)


def _as_logits(logits_or_probs: np.ndarray) -> np.ndarray:
    """Log-probabilities when the rows are probabilities (non-negative, summing to 1 within the
    1/256 steps of an int8 softmax), else the
    values themselves: both give the same softmax, so either can be temperature-scaled."""
    z = np.asarray(logits_or_probs, dtype=np.float64)
    if z.ndim == 2 and z.size and z.min() >= 0 and np.allclose(z.sum(axis=1), 1.0, atol=0.05):
        return np.log(np.maximum(z, _EPS))
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits_or_probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels after dividing the logits by ``temperature``."""
    z, labels = _check(_as_logits(logits_or_probs), labels)
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits_or_probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising the labels' NLL (a bounded 1-D search on log T;
    the NLL is smooth and unimodal in T for fixed logits). Accepts logits or probabilities."""
    from scipy.optimize import minimize_scalar

    z, labels = _check(_as_logits(logits_or_probs), labels)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on zero faces")
    lo, hi = math.log(_T_RANGE[0]), math.log(_T_RANGE[1])
    res = minimize_scalar(
        lambda log_t: nll(z, labels, math.exp(log_t)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-4}
    )
    return float(math.exp(res.x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): rescales probabilities (e.g. a LiteRT model's softmax output) by ``T``;
    T = 1 returns them unchanged, T > 1 softens, T < 1 sharpens. Keeps the dtype float32."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    probs = np.asarray(probs)
    if temperature == 1.0 or probs.size == 0:
        return probs.astype(np.float32, copy=False)
    return _softmax(np.log(np.maximum(probs.astype(np.float64), _EPS)) / temperature).astype(np.float32)


def calibration_file(model_path: str | Path) -> Path:
    """Where a model's calibration lives: ``calibration.json`` in its folder (in the folder itself
    when given a folder, e.g. a tier)."""
    path = Path(model_path)
    return (path if path.is_dir() else path.parent) / CALIBRATION_FILE


def load_calibration(model_path: str | Path) -> dict[str, Any]:
    """The whole calibration record saved beside ``model_path`` (``{}`` when there is none), its
    temperature checked."""
    file = calibration_file(model_path)
    if not file.exists():
        return {}
    try:
        record = json.loads(file.read_text())
        t = float(record["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{file}: unreadable calibration file ({exc})") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{file}: temperature must be a positive number, got {t}")
    return {**record, "temperature": t}


def saved_temperature(model_path: str | Path, tta: bool = False) -> float:
    """The temperature saved beside ``model_path`` if it applies to outputs of this kind, else 1.0.

    The one rule for every caller (serving and evaluation): a temperature applies only when it was
    fitted with the same ``tta`` setting as the probabilities it will rescale. Averaging over test-time
    views already softens probabilities, so a temperature fitted without TTA would over-correct them
    (and vice versa). A record without a ``tta`` entry was fitted without TTA.

    Parameters: ``model_path`` a model file or tier folder/manifest; ``tta`` whether the probabilities
    to rescale are averaged over test-time views.
    """
    record = load_calibration(model_path)
    if not record or bool(record.get("tta", False)) != bool(tta):
        return 1.0
    return float(record["temperature"])


def save_temperature(model_path: str | Path, temperature: float, **info: Any) -> Path:
    """Write ``calibration.json`` beside ``model_path`` with the temperature and what it was
    fitted on (``fitted_on``, ``ece_before``, ``ece_after``, … as given)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    file = calibration_file(model_path)
    file.write_text(json.dumps({"temperature": float(temperature), **info}, indent=2) + "\n")
    return file
