"""Evaluation: accuracy, confusion matrix, per-class precision/recall/F1 (scikit-learn), and
test-time augmentation (flips and crops)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fercore.classify import Backend, load_backend
from fercore.data import Dataset
from fercore.labels import EMOTIONS, NUM_CLASSES
from fercore.preprocess import FACE_SIZE, to_model_input


def tta_views(faces: np.ndarray, crop: int = 44) -> list[np.ndarray]:
    """Ten views of (n, 48, 48) faces: four corner and one centre ``crop``×``crop`` crops resized
    back to 48×48, each also mirrored."""
    import cv2

    m = FACE_SIZE - crop
    offsets = [(m // 2, m // 2), (0, 0), (0, m), (m, 0), (m, m)]
    views = []
    for y, x in offsets:
        cropped = faces[:, y : y + crop, x : x + crop]
        resized = np.stack([cv2.resize(f, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
                            for f in cropped]) if len(faces) else faces
        views += [resized, resized[:, :, ::-1]]
    return views


def predict_proba(model: str | Path | Backend | None, faces: np.ndarray, tta: bool = False,
                  batch_size: int = 512,
                  progress: Callable[[float], None] | None = None) -> np.ndarray:
    """(n, 7) probabilities for (n, 48, 48) uint8 faces; averaged over TTA views if asked.

    ``model`` is a model file (the shipped one if None) or an already loaded backend;
    ``progress`` is called with the fraction done after each batch.
    """
    backend = model if hasattr(model, "predict") else load_backend(model)
    n = len(faces)
    total = np.zeros((n, NUM_CLASSES), np.float64)
    for start in range(0, n, batch_size):
        chunk = faces[start : start + batch_size]
        views = tta_views(chunk) if tta else [chunk]
        for view in views:
            total[start : start + len(chunk)] += backend.predict(
                to_model_input(np.ascontiguousarray(view)))
        total[start : start + len(chunk)] /= len(views)
        if progress is not None:
            progress(min(1.0, (start + len(chunk)) / n))
    return total.astype(np.float32)


@dataclass
class EvalResult:
    """Predictions and the metrics derived from them."""

    y_true: np.ndarray
    proba: np.ndarray
    model: str
    tta: bool

    @property
    def y_pred(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: accuracy, n, per_class, confusion (+ labels, model, tta, macro_f1)."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        labels = list(range(NUM_CLASSES))
        p, r, f, s = precision_recall_fscore_support(self.y_true, self.y_pred, labels=labels,
                                                     zero_division=0)
        per_class = {
            EMOTIONS[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])}
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
        }


def evaluate(model: str | Path | Backend | None, dataset: Dataset, tta: bool = False,
             progress: Callable[[float], None] | None = None,
             model_name: str | None = None) -> EvalResult:
    """Classify every face of ``dataset`` with the model (a file, a loaded backend, or the
    shipped model if None)."""
    from fercore.classify import default_model_path

    if len(dataset) == 0:
        raise ValueError("the data set has no images to evaluate")
    if model is None:
        model = default_model_path()
    proba = predict_proba(model, dataset.images, tta=tta, progress=progress)
    name = model_name or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    return EvalResult(y_true=dataset.labels.astype(np.int64), proba=proba, model=name, tta=tta)
