"""Two models on the same faces: accuracy and per-class F1 side by side, where their confusions
differ, and the faces on which they disagree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fercore.evaluation.evaluate import EvalResult
from fercore.labels import EMOTIONS


@dataclass
class Comparison:
    """``a`` and ``b`` evaluated on the same faces (same order)."""

    a: EvalResult
    b: EvalResult

    def __post_init__(self) -> None:
        if len(self.a.y_true) != len(self.b.y_true) or not np.array_equal(self.a.y_true, self.b.y_true):
            raise ValueError("the two evaluations are not on the same faces: evaluate both on one split")

    def summary(self) -> pd.DataFrame:
        """One row per metric (accuracy, macro F1, each class's F1): a, b and b − a."""
        da, db = self.a.to_dict(), self.b.to_dict()
        rows = [("accuracy", da["accuracy"], db["accuracy"]), ("macro F1", da["macro_f1"], db["macro_f1"])]
        rows += [(f"F1 {e}", da["per_class"][e]["f1"], db["per_class"][e]["f1"]) for e in EMOTIONS]
        table = pd.DataFrame(rows, columns=["metric", "a", "b"])
        table["b − a"] = table["b"] - table["a"]
        return table

    def confusion_delta(self, normalize: bool = True) -> np.ndarray:
        """b's confusion matrix minus a's (rows: true class); as row fractions when ``normalize``."""
        ca = np.array(self.a.to_dict()["confusion"], dtype=float)
        cb = np.array(self.b.to_dict()["confusion"], dtype=float)
        if normalize:
            support = np.maximum(ca.sum(axis=1, keepdims=True), 1)
            return (cb - ca) / support
        return cb - ca

    def disagreements(self) -> np.ndarray:
        """Indices of the faces the two models label differently, where either is most sure first."""
        idx = np.flatnonzero(self.a.y_pred != self.b.y_pred)
        sure = np.maximum(self.a.proba[idx].max(axis=1), self.b.proba[idx].max(axis=1))
        return idx[np.argsort(-sure)]

    def caption(self, i: int) -> str:
        """``true · a: label · b: label`` for one face, with ✓ on the model that is right."""
        truth = int(self.a.y_true[i])
        pa, pb = int(self.a.y_pred[i]), int(self.b.y_pred[i])
        mark = {True: "✓", False: ""}
        return f"{EMOTIONS[truth]} · a {EMOTIONS[pa]}{mark[pa == truth]} · b {EMOTIONS[pb]}{mark[pb == truth]}"
