"""Evaluate: a model on a split — accuracy, confusion, per-class table, calibration, mistakes, exports —
and, optionally, a second model side by side. Results are cached by model files, data, split, sample size
and TTA (fercore.evaluation.cache): a comparison reuses model a's result, and a reload shows it again."""

from pathlib import Path

import common
import evaluate_views as views
import streamlit as st

from fercore.evaluation.cache import EvalKey, evaluate_many, evaluation_sample
from fercore.evaluation.compare import Comparison
from fercore.models import catalog

st.title("Evaluate")

models = catalog.available_models()
if not models:
    common.require_model()
    st.stop()

views.restore_choices(models)
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
if st.session_state.get("eval_split") not in splits:
    st.session_state["eval_split"] = "test" if "test" in splits else splits[0]
split = c1.selectbox("Split", splits, key="eval_split")
tta = c2.toggle("Test-time augmentation", key="eval_tta", help="average over 10 crops and flips (10× slower)")
limit = c3.number_input(
    "Images (0 = all)",
    0,
    1_000_000,
    step=500,
    key="eval_limit",
    help="evaluate on about N images, every class in proportion (always the same ones; as the CLI's --limit)",
)

sub = evaluation_sample(ds, split, int(limit))
chosen = [models[model_label]] + ([models[other_label]] if other_label != "(none)" else [])
keys = [EvalKey.of(m, ds_key, split, int(limit), bool(tta)) for m in chosen]
cache = common.get_eval_cache()
results = [cache.get(k) for k in keys]
if st.button(f"Evaluate on {len(sub):,} faces", type="primary", icon=":material/play_arrow:", key="eval_go"):
    bar = st.progress(0.0, text=f"Evaluating {len(sub):,} faces…")
    try:
        results = evaluate_many(
            chosen, sub, keys, cache, tta=bool(tta), progress=lambda *a: bar.progress(*views.progress(*a))
        )
    except common.USER_ERRORS as exc:
        bar.empty()
        common.show_error(exc, "Evaluation failed")
        st.stop()
    bar.empty()
if any(r is None for r in results):
    views.view_id(None)
    views.not_evaluated_yet(results, len(sub))
    st.stop()
views.remember_choices()
view = views.view_id("-".join(k.digest() for k in keys))
res = results[0]
views.results(res, view)

if len(results) == 2:
    views.comparison(Comparison(*results), (model_label, other_label), sub.images, view)

st.subheader("Misclassified faces")
views.mistakes(sub.images, res.y_true, res.y_pred, res.calibrated, view)

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
            on_click="ignore",
        )
    hints = {
        "json": "model.json + weights: `keras.models.model_from_json(...)` then `load_weights(...)`",
        "keras": ".keras: `keras.models.load_model(...)`",
        "tflite": ".tflite: LiteRT's `Interpreter`",
    }
    shown = [hints[k] for k in hints if k in files]
    if "json" not in files:
        shown.append("model.json + weights: `python -m training.export` writes them")
    st.caption("; ".join(shown) + ".")
