"""Evaluate: a model on a split — accuracy, confusion matrix, per-class table, mistakes, exports."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

import common
from fercore import catalog
from fercore.evaluate import evaluate
from fercore.labels import EMOTIONS

st.title("Evaluate")

models = catalog.available_models()
if not models:
    common.require_model()
    st.stop()

c1, c2 = st.columns([2, 3])
model_label = c1.selectbox("Model", list(models), key="eval_model")
model_path = models[model_label]
p = common.dataset_input("Dataset", "eval_data", c2)
if p is None:
    st.stop()
try:
    ds_key = common.file_key(p)
    ds = common.get_dataset(str(p), ds_key)
except common.USER_ERRORS as exc:
    common.show_error(exc, "Cannot load the dataset")
    st.stop()

c1, c2, c3 = st.columns(3)
splits = ds.split_names
split = c1.selectbox("Split", splits, index=splits.index("test") if "test" in splits else 0, key="eval_split")
tta = c2.toggle("Test-time augmentation", key="eval_tta", help="average over 10 crops and flips (10× slower)")
limit = c3.number_input("Images (0 = all)", 0, 1_000_000, 0, step=500, key="eval_limit",
                        help="evaluate on a random sample of N images (always the same) for a quick look")


sub = ds.split(split)
if limit and limit < len(sub):
    sub = sub.subset(np.sort(np.random.default_rng(0).choice(len(sub), int(limit), replace=False)))
job = (str(model_path), common.file_key(Path(model_path)), ds_key, split, bool(tta), int(limit))
saved = st.session_state.get("eval_result")
go = st.button(f"Evaluate on {len(sub):,} faces", type="primary", icon=":material/play_arrow:",
               key="eval_go")
if go:
    bar = st.progress(0.0, text="Evaluating…")
    try:
        res = evaluate(common.get_classifier(str(model_path)).backend, sub, tta=bool(tta), model_name=str(model_path),
                       progress=lambda f: bar.progress(f, text=f"Evaluating {len(sub):,} faces… {f:.0%}"))
    except common.USER_ERRORS as exc:
        bar.empty()
        common.show_error(exc, "Evaluation failed")
        st.stop()
    bar.empty()
    saved = {"job": job, "result": res.to_dict(), "y_true": np.asarray(res.y_true),
             "y_pred": np.asarray(res.y_pred), "proba": np.asarray(res.proba)}
    st.session_state["eval_result"] = saved
if saved is None or saved["job"] != job:
    st.info("Pick a model, a split and press **Evaluate**. On this 2-core machine the test split takes "
            "about a minute (ten times that with TTA).", icon=":material/analytics:")
    st.stop()
result, y_true, y_pred, proba = saved["result"], saved["y_true"], saved["y_pred"], saved["proba"]

import plotly.express as px  # noqa: E402

m1, m2, m3 = st.columns(3)
m1.metric("Accuracy", f"{result['accuracy']:.2%}")
m2.metric("Macro F1", f"{result.get('macro_f1', float('nan')):.3f}")
m3.metric("Images", f"{result['n']:,}")

left, right = st.columns([3, 2])
with left:
    norm = st.toggle("Normalise rows (recall)", value=True, key="eval_norm")
    cm = np.array(result["confusion"], dtype=float)
    z = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if norm else cm
    fig = px.imshow(z, x=list(EMOTIONS), y=list(EMOTIONS), color_continuous_scale="Blues",
                    text_auto=".0%" if norm else "d", labels=dict(x="predicted", y="true", color=""),
                    title="Confusion matrix", aspect="equal")
    st.plotly_chart(fig, key="confusion")
with right:
    table = [{"emotion": e, **{k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}}
             for e, d in result["per_class"].items()]
    st.dataframe(table, hide_index=True)
    st.download_button("Results (JSON)", json.dumps(result, indent=2), "evaluation.json",
                       "application/json", icon=":material/download:")

st.subheader("Misclassified faces")
wrong = np.flatnonzero(y_true != y_pred)
if len(wrong) == 0:
    st.success("No mistakes on this split.")
else:
    f1, f2 = st.columns(2)
    true_f = f1.selectbox("True class", ["any", *EMOTIONS], key="eval_true")
    pred_f = f2.selectbox("Predicted class", ["any", *EMOTIONS], key="eval_pred")
    sel = wrong
    if true_f != "any":
        sel = sel[y_true[sel] == EMOTIONS.index(true_f)]
    if pred_f != "any":
        sel = sel[y_pred[sel] == EMOTIONS.index(pred_f)]
    # most confident mistakes first
    sel = sel[np.argsort(-proba[sel, y_pred[sel]])] if len(sel) else sel
    per_page = 36
    n_pages = max(1, -(-len(sel) // per_page))
    page = st.pagination(n_pages, key=f"eval_page_{true_f}_{pred_f}")
    chunk = sel[(page - 1) * per_page: page * per_page]
    st.caption(f"{len(sel):,} mistakes · page {page} of {n_pages} · caption: true → predicted (confidence)")
    common.face_grid(sub.images[chunk],
                     [f"{EMOTIONS[y_true[i]]}→{EMOTIONS[y_pred[i]]} {proba[i, y_pred[i]]:.0%}" for i in chunk],
                     cols=12, width=64)

st.subheader("Download the model")
files = catalog.export_files(Path(model_path))
if not files:
    st.caption("No exported files beside this model.")
else:
    cols = st.columns(len(files))
    labels = {"json": "model.json", "weights": "weights (.weights.h5)", "keras": ".keras", "tflite": ".tflite"}
    for col, (kind, f) in zip(cols, files.items()):
        # read when clicked: the model files are tens of MB
        col.download_button(labels.get(kind, f.name), f.read_bytes, f.name, "application/octet-stream",
                            key=f"dl_{kind}", icon=":material/download:")
    st.caption("model.json + model.weights.h5 load with `keras.models.model_from_json(...)` then "
               "`load_weights(...)`; the .keras file with `keras.models.load_model`; .tflite with LiteRT.")
