"""Evaluate: a model on a split — accuracy, confusion, per-class table, calibration, mistakes, exports —
and, optionally, a second model side by side."""

import json
from pathlib import Path

import common
import evaluate_views as views
import streamlit as st

from fercore.data.dataset import stratified_subset
from fercore.evaluation.compare import Comparison
from fercore.evaluation.evaluate import evaluate
from fercore.models import catalog

st.title("Evaluate")

models = catalog.available_models()
if not models:
    common.require_model()
    st.stop()

c1, c2, c3 = st.columns([2, 2, 3])
model_label = c1.selectbox("Model (a)", list(models), key="eval_model")
other_label = c2.selectbox("Compare with (b)", ["(none)", *[m for m in models if m != model_label]], key="eval_other")
p = common.dataset_input("Dataset", "eval_data", c3)
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
limit = c3.number_input(
    "Images (0 = all)",
    0,
    1_000_000,
    0,
    step=500,
    key="eval_limit",
    help="evaluate on about N images, every class in proportion (always the same ones; as the CLI's --limit)",
)

sub = ds.split(split)
if limit and limit < len(sub):
    sub = stratified_subset(sub, limit=int(limit))
chosen = [models[model_label]] + ([models[other_label]] if other_label != "(none)" else [])
job = (*[(str(m), common.file_key(Path(m))) for m in chosen], ds_key, split, bool(tta), int(limit))
saved = st.session_state.get("eval_result")
if st.button(f"Evaluate on {len(sub):,} faces", type="primary", icon=":material/play_arrow:", key="eval_go"):
    bar = st.progress(0.0, text="Evaluating…")
    try:
        results = []
        for k, m in enumerate(chosen):

            def tick(f: float, k: int = k) -> None:
                bar.progress((k + f) / len(chosen), text=f"Evaluating {len(sub):,} faces… model {k + 1}")

            results.append(evaluate(str(m), sub, tta=bool(tta), progress=tick, model_name=str(m)))
    except common.USER_ERRORS as exc:
        bar.empty()
        common.show_error(exc, "Evaluation failed")
        st.stop()
    bar.empty()
    saved = {"job": job, "results": results}
    st.session_state["eval_result"] = saved
if saved is None or saved["job"] != job:
    st.info(
        "Pick a model (and optionally a second one to compare), a split and press **Evaluate**. On this "
        "2-core machine the test split takes about a minute per model (ten times that with TTA).",
        icon=":material/analytics:",
    )
    st.stop()
res = saved["results"][0]
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

left, mid, right = st.columns([3, 3, 2])
with left:
    norm = st.toggle("Normalise rows (recall)", value=True, key="eval_norm")
    views.confusion(result["confusion"], "Confusion matrix", "confusion", norm)
with mid:
    views.reliability_chart(res.calibrated, res.y_true, result["ece"], "reliability")
with right:
    st.dataframe(
        [
            {"emotion": e, **{k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}}
            for e, d in result["per_class"].items()
        ],
        hide_index=True,
    )
    st.download_button(
        "Results (JSON)",
        json.dumps(result, indent=2),
        "evaluation.json",
        "application/json",
        icon=":material/download:",
    )

if len(saved["results"]) == 2:
    views.comparison(Comparison(*saved["results"]), (model_label, other_label), sub.images)

st.subheader("Misclassified faces")
views.mistakes(sub.images, res.y_true, res.y_pred, res.calibrated)

st.subheader("Download the model")
files = catalog.export_files(Path(models[model_label]))
if not files:
    st.caption("No exported files beside this model.")
else:
    cols = st.columns(len(files))
    labels = {"json": "model.json", "weights": "weights (.weights.h5)", "keras": ".keras", "tflite": ".tflite"}
    for col, (kind, f) in zip(cols, files.items(), strict=False):
        # read when clicked: the model files are tens of MB
        col.download_button(
            labels.get(kind, f.name),
            f.read_bytes,
            f.name,
            "application/octet-stream",
            key=f"dl_{kind}",
            icon=":material/download:",
        )
    st.caption(
        "model.json + model.weights.h5 load with `keras.models.model_from_json(...)` then "
        "`load_weights(...)`; .keras with `keras.models.load_model(...)`; .tflite with LiteRT."
    )
