"""Evaluation: accuracy, confusion matrix, per-class precision/recall/F1 (scikit-learn), and
test-time augmentation (flips and crops)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fercore.classify import load_backend
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


def predict_proba(model_path: str | Path | None, faces: np.ndarray, tta: bool = False,
                  batch_size: int = 256) -> np.ndarray:
    """(n, 7) probabilities for (n, 48, 48) uint8 faces; averaged over TTA views if asked."""
    backend = load_backend(model_path)
    views = tta_views(faces) if tta else [faces]
    total = np.zeros((len(faces), NUM_CLASSES), np.float64)
    for view in views:
        for start in range(0, len(view), batch_size):
            chunk = view[start : start + batch_size]
            total[start : start + len(chunk)] += backend.predict(to_model_input(np.ascontiguousarray(chunk)))
    return (total / len(views)).astype(np.float32)


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


def evaluate(model_path: str | Path | None, dataset: Dataset, tta: bool = False) -> EvalResult:
    """Classify every face of ``dataset`` with the model (the shipped one if None)."""
    from fercore.classify import default_model_path

    path = Path(model_path) if model_path else default_model_path()
    if len(dataset) == 0:
        raise ValueError("the data set has no images to evaluate")
    proba = predict_proba(path, dataset.images, tta=tta)
    return EvalResult(y_true=dataset.labels.astype(np.int64), proba=proba, model=str(path), tta=tta)
