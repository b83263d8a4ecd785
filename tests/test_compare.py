"""fercore.evaluation.compare: two evaluations of the same faces side by side."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.evaluation.compare import Comparison
from fercore.evaluation.evaluate import EvalResult


def _result(y_true: np.ndarray, y_pred: np.ndarray, sure: float = 0.9) -> EvalResult:
    proba = np.full((len(y_true), 7), (1 - sure) / 6)
    proba[np.arange(len(y_true)), y_pred] = sure
    return EvalResult(y_true=y_true, proba=proba, model="m", tta=False)


def test_summary_deltas_confusion_difference_and_disagreements():
    y = np.array([0, 0, 3, 3, 3, 6, 6, 4])
    a = _result(y, np.array([0, 6, 3, 3, 4, 6, 6, 4]))  # 6 of 8 right
    b = _result(y, np.array([0, 0, 3, 3, 3, 6, 4, 4]), sure=0.8)  # 7 of 8 right
    cmp = Comparison(a, b)
    table = cmp.summary().set_index("metric")
    assert table.loc["accuracy", "a"] == pytest.approx(6 / 8) and table.loc["accuracy", "b"] == pytest.approx(7 / 8)
    assert table.loc["accuracy", "b − a"] == pytest.approx(1 / 8)
    assert len(table) == 2 + 7
    delta = cmp.confusion_delta(normalize=False)
    assert delta[0, 0] == 1 and delta[0, 6] == -1 and delta[6, 4] == 1 and delta.sum() == 0
    assert sorted(cmp.disagreements().tolist()) == [1, 4, 6]
    assert cmp.caption(1) == "angry · a neutral · b angry✓"


def test_evaluations_on_different_faces_are_refused():
    a = _result(np.array([0, 1]), np.array([0, 1]))
    b = _result(np.array([1, 0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="same faces"):
        Comparison(a, b)
