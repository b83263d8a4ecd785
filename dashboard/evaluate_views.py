"""Layout blocks of the Evaluate page (kept apart so the page stays a short script)."""

from __future__ import annotations

from typing import Any

import common
import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from fercore.evaluation.calibration import reliability
from fercore.evaluation.compare import Comparison
from fercore.labels import EMOTIONS


def confusion(cm: Any, title: str, key: str, normalize: bool, diverging: bool = False) -> None:
    """A 7×7 heat map, rows = true class."""
    z = np.asarray(cm, dtype=float)
    if normalize and not diverging:
        z = z / np.maximum(z.sum(axis=1, keepdims=True), 1)
    scale = "RdBu" if diverging else "Blues"
    fig = px.imshow(
        z,
        x=list(EMOTIONS),
        y=list(EMOTIONS),
        color_continuous_scale=scale,
        color_continuous_midpoint=0 if diverging else None,
        text_auto=".0%" if normalize or diverging else "d",
        labels=dict(x="predicted", y="true", color=""),
        title=title,
        aspect="equal",
    )
    st.plotly_chart(fig, key=key)


def reliability_chart(proba: np.ndarray, y_true: np.ndarray, ece_value: float, key: str) -> None:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    bins = [b for b in reliability(proba, y_true, 15) if b["count"]]
    fig = go.Figure(
        [
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="perfect"),
            go.Scatter(
                x=[b["confidence"] for b in bins],
                y=[b["accuracy"] for b in bins],
                mode="lines+markers",
                marker=dict(size=[4 + 20 * np.sqrt(b["count"] / len(y_true)) for b in bins]),
                name="model",
                text=[f"{b['count']} faces" for b in bins],
            ),
        ]
    )
    fig.update_layout(
        title=f"Reliability (ECE {ece_value:.3f})",
        xaxis_title="confidence",
        yaxis_title="accuracy",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        height=380,
    )
    st.plotly_chart(fig, key=key)


def mistakes(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> None:
    """Misclassified faces, most confident first, filterable by true and predicted class."""
    wrong = np.flatnonzero(y_true != y_pred)
    if len(wrong) == 0:
        st.success("No mistakes on this split.")
        return
    f1, f2 = st.columns(2)
    true_f = f1.selectbox("True class", ["any", *EMOTIONS], key="eval_true")
    pred_f = f2.selectbox("Predicted class", ["any", *EMOTIONS], key="eval_pred")
    sel = wrong
    if true_f != "any":
        sel = sel[y_true[sel] == EMOTIONS.index(true_f)]
    if pred_f != "any":
        sel = sel[y_pred[sel] == EMOTIONS.index(pred_f)]
    sel = sel[np.argsort(-proba[sel, y_pred[sel]])] if len(sel) else sel
    captions = [f"{EMOTIONS[y_true[i]]}→{EMOTIONS[y_pred[i]]} {proba[i, y_pred[i]]:.0%}" for i in sel]
    what = "faces · caption: true → predicted (confidence)"
    common.paged_face_grid(images, sel, captions, f"eval_page_{true_f}_{pred_f}", what, per_page=36)


def comparison(cmp: Comparison, names: tuple[str, str], images: np.ndarray) -> None:
    """Model a against model b: metric deltas, confusion difference, the faces they disagree on."""
    st.subheader("Comparison")
    st.caption(f"a = {names[0]} · b = {names[1]}")
    left, right = st.columns([2, 3])
    left.dataframe(
        cmp.summary(),
        hide_index=True,
        key="cmp_summary",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("a", "b", "b − a")},
    )
    with right:
        confusion(
            cmp.confusion_delta(),
            "Confusion of b minus a (row fractions)",
            "cmp_confusion",
            normalize=True,
            diverging=True,
        )
    sel = cmp.disagreements()
    st.markdown(f"**Faces the two models label differently: {len(sel):,}**")
    captions = [cmp.caption(int(i)) for i in sel]
    common.paged_face_grid(images, sel, captions, "cmp_page", "faces · caption: true · a · b (✓ = right)", per_page=36)
