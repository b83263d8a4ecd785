"""Knowledge distillation: a teacher's probabilities on the training faces, cached once.

``python -m training.evaluate --split train --model accurate --proba-out FILE`` runs the teacher (the
accurate tier applies its own test-time augmentation) and writes a probability CSV
(:func:`fercore.data.audit.save_proba`: ``file,row,<7 emotions>``). A run names that file as its
``teacher``; :func:`teacher_targets` matches it to the run's images by FER2013 row or file id, so a
subset or a relabelled copy of the same images finds its rows. The cache belongs with the runs, never
in the project: a teacher's output on FER2013 is derived from FER2013.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fercore.data.dataset import Dataset


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at a temperature: p^(1/T) renormalised (T > 1 flattens them, T = 1 keeps them).
    Negative entries count as 0; an all-zero row stays zero."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = np.power(np.clip(np.asarray(probs, np.float64), 0.0, None), 1.0 / temperature)
    total = p.sum(axis=1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0).astype(np.float32)


def teacher_targets(path: str | Path, dataset: Dataset, temperature: float = 1.0) -> np.ndarray:
    """The cached teacher's probabilities for every image of ``dataset`` (softened by
    ``temperature``); DataError when the file is unreadable or lacks any of the images."""
    from fercore.data.audit import load_proba

    return soften(load_proba(path, dataset), temperature)
