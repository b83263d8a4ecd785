"""Layout blocks of the Evaluate page (kept apart so the page stays a short script).

Widgets under the results are keyed by :func:`view_id`, which changes with every result shown: a new
result starts with fresh filters, and a widget that disappeared (no result shown for a run) never comes
back showing one value in the browser while the server still holds another.
"""

from __future__ import annotations

import json
from typing import Any

import common
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from fercore.evaluation.calibration import reliability
from fercore.evaluation.compare import Comparison
from fercore.evaluation.evaluate import EvalResult
from fercore.labels import EMOTIONS

# The choices that define an evaluation; the last shown ones are restored when the page is opened again.
CHOICES = ("eval_model", "eval_other", "eval_split", "eval_tta", "eval_limit")


@st.cache_resource
def _last_choices() -> dict[str, Any]:
    """The choices of the last evaluation shown on this server (so a reload shows it again)."""
    return {}


def restore_choices(models: dict[str, Any]) -> None:
    """Seed this session's widgets with the last shown evaluation's choices (when they are still valid)."""
    for key, value in _last_choices().items():
        if key in st.session_state:
            continue
        if key == "eval_model" and value not in models:
            continue
        if key == "eval_other" and value != "(none)" and value not in models:
            continue
        st.session_state[key] = value


def remember_choices() -> None:
    _last_choices().update({k: st.session_state[k] for k in CHOICES if k in st.session_state})


def view_id(shown: str | None) -> str:
    """A key suffix for the widgets of the result ``shown`` (None: no result in this run). It changes
    whenever a different result is shown or the same one comes back after a run without it."""
    state = st.session_state
    if state.get("eval_shown") != shown or shown is None:
        state["eval_view"] = state.get("eval_view", 0) + 1
        state["eval_shown"] = shown
    return f"{state['eval_view']}"


def progress(done: int, total: int, seconds_left: float | None) -> tuple[float, str]:
    """The progress bar's value and text: faces done of the total and the time left."""
    left = "estimating the time left…" if seconds_left is None else f"~{_duration(seconds_left)} left"
    return min(1.0, done / max(total, 1)), f"Evaluating: {done:,} / {total:,} faces · {left}"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s} s" if s < 90 else f"{s // 60} min {s % 60:02d} s"


def not_evaluated_yet(results: list[EvalResult | None], n_faces: int) -> None:
    """What pressing Evaluate will do (and what it reuses)."""
    if results[0] is not None:
        st.info(
            f"Model a was already evaluated on these {n_faces:,} faces: **Evaluate** classifies them with "
            "model b only.",
            icon=":material/analytics:",
        )
        return
    st.info(
        "Pick a model (and optionally a second one to compare), a split and press **Evaluate**. On this "
        "2-core machine the test split takes about a minute per model (ten times that with TTA). Results "
        "are kept: evaluating the same model on the same faces again shows them at once.",
        icon=":material/analytics:",
    )


def results(res: EvalResult, view: str) -> None:
    """Metrics, confusion matrix, per-class table, reliability diagram and the JSON download."""
    result = res.to_dict()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Accuracy", f"{result['accuracy']:.2%}")
    m2.metric("Macro F1", f"{result['macro_f1']:.3f}")
    m3.metric("Images", f"{result['n']:,}")
    m4.metric(
        "ECE (calibration error)",
        f"{result['ece']:.3f}",
        help=f"expected calibration error of the shown probabilities (temperature {result['temperature']:.2f}; "
        f"{result['ece_uncalibrated']:.3f} before)",
    )
    left, right = st.columns(2, gap="medium")
    with left:
        norm = st.toggle("Normalise rows (recall)", value=True, key=f"eval_norm_{view}")
        confusion(result["confusion"], "Confusion matrix", f"confusion_{view}", norm)
    with right:
        per_class_table(result["per_class"])
        st.download_button(
            "Results (JSON)",
            json.dumps(result, indent=2),
            "evaluation.json",
            "application/json",
            icon=":material/download:",
            key=f"eval_json_{view}",
            on_click="ignore",
        )
        reliability_chart(res.calibrated, res.y_true, result["ece"], f"reliability_{view}")


def per_class_table(per_class: dict[str, dict[str, float]]) -> None:
    """Precision, recall, F1 and support per class, every column visible."""
    table = pd.DataFrame([{"emotion": e, **d} for e, d in per_class.items()])
    score = {"format": "%.3f", "width": "small"}
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "emotion": st.column_config.TextColumn("class", width="small"),
            "precision": st.column_config.NumberColumn("precision", **score),
            "recall": st.column_config.NumberColumn("recall", **score),
            "f1": st.column_config.NumberColumn("F1", **score),
            "support": st.column_config.NumberColumn("support", format="%d", width="small", help="true faces"),
        },
    )


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
    fig.update_layout(height=560, margin=dict(l=0, r=0, t=50, b=0), font=dict(size=14))
    fig.update_xaxes(side="bottom")  # plotly tilts the labels only when they would touch
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


def mistakes(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, view: str) -> None:
    """Misclassified faces, most confident first, filterable by true and predicted class."""
    wrong = np.flatnonzero(y_true != y_pred)
    if len(wrong) == 0:
        st.success("No mistakes on this split.")
        return
    f1, f2 = st.columns(2)
    true_f = f1.selectbox("True class", ["any", *EMOTIONS], key=f"eval_true_{view}")
    pred_f = f2.selectbox("Predicted class", ["any", *EMOTIONS], key=f"eval_pred_{view}")
    sel = wrong
    if true_f != "any":
        sel = sel[y_true[sel] == EMOTIONS.index(true_f)]
    if pred_f != "any":
        sel = sel[y_pred[sel] == EMOTIONS.index(pred_f)]
    sel = sel[np.argsort(-proba[sel, y_pred[sel]])] if len(sel) else sel
    # spaces around the arrow: a 64 px caption wraps between words ("neutral →" / "happy 97%"), not inside one
    captions = [f"{EMOTIONS[y_true[i]]} → {EMOTIONS[y_pred[i]]} {proba[i, y_pred[i]]:.0%}" for i in sel]
    what = "faces · caption: true → predicted (confidence)"
    common.paged_face_grid(images, sel, captions, f"eval_page_{view}_{true_f}_{pred_f}", what, per_page=36)


def comparison(cmp: Comparison, names: tuple[str, str], images: np.ndarray, view: str) -> None:
    """Model a against model b: metric deltas, confusion difference, the faces they disagree on."""
    st.subheader("Comparison")
    st.caption(f"a = {names[0]} · b = {names[1]}")
    left, right = st.columns([2, 3])
    left.dataframe(
        cmp.summary(),
        hide_index=True,
        key=f"cmp_summary_{view}",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("a", "b", "b − a")},
    )
    with right:
        confusion(
            cmp.confusion_delta(),
            "Confusion of b minus a (row fractions)",
            f"cmp_confusion_{view}",
            normalize=True,
            diverging=True,
        )
    sel = cmp.disagreements()
    st.markdown(f"**Faces the two models label differently: {len(sel):,}**")
    captions = [cmp.caption(int(i)) for i in sel]
    common.paged_face_grid(
        images, sel, captions, f"cmp_page_{view}", "faces · caption: true · a · b (✓ = right)", per_page=36
    )
