"""Honest probabilities: expected calibration error, reliability bins and fitting a temperature.

A network trained with cross-entropy is usually over-confident: among faces it scores at 0.9 it is
right far less than 90 % of the time. Temperature scaling divides the log-probabilities by one
scalar ``T`` fitted here on held-out faces (Guo et al., 2017). Applying, saving and loading ``T``
is :mod:`fercore.inference.temperature`'s, which every loader uses.
"""

from __future__ import annotations

import math

import numpy as np

from fercore.inference.temperature import PROB_FLOOR

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
        return np.log(np.maximum(z, PROB_FLOOR))
    return z


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
