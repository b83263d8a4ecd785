"""A model's temperature: the one scalar that rescales its probabilities, saved beside it.

Temperature scaling (Guo et al., 2017) divides the log-probabilities by ``T``: the ranking, hence
accuracy, is unchanged, only the confidence moves. ``T`` lives in ``calibration.json`` beside the
model file (one per folder: every format of the same weights shares it), so every loader applies
the same correction; :func:`saved_temperature` is the one rule of when it applies. Fitting ``T``
and measuring calibration (ECE) are :mod:`fercore.evaluation.calibration`'s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "calibration.json"
# Probabilities are floored before taking logs (here, and when fitting T): an int8 softmax rounds
# anything below 1/512 to 0, and log(0) would let those faces decide the temperature alone.
PROB_FLOOR = 1e-4


def _checked(temperature: float, where: str = "") -> float:
    """``temperature`` when it is a finite positive number, else one clear error (prefixed by ``where``)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{where}temperature must be a positive number, got {temperature}")
    return temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): rescales probabilities (e.g. a LiteRT model's softmax output) by ``T``;
    T = 1 returns them unchanged, T > 1 softens, T < 1 sharpens. Keeps the dtype float32."""
    _checked(temperature)
    probs = np.asarray(probs)
    if temperature == 1.0 or probs.size == 0:
        return probs.astype(np.float32, copy=False)
    return _softmax(np.log(np.maximum(probs.astype(np.float64), PROB_FLOOR)) / temperature).astype(np.float32)


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
    return {**record, "temperature": _checked(t, f"{file}: ")}


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
    _checked(temperature)
    file = calibration_file(model_path)
    file.write_text(json.dumps({"temperature": float(temperature), **info}, indent=2) + "\n")
    return file
