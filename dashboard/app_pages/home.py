"""Home: what the toolkit does, the shipped model's card, and where the dataset is (or how to get it)."""

import common
import home_views
import streamlit as st

from fercore import paths
from fercore.data import locations
from fercore.labels import COLORS_HEX, EMOTIONS
from fercore.models import catalog

st.title("Facial expression recognition")
st.markdown(
    "Recognises **seven emotions** in faces — in photos, videos and a live webcam — with a CNN trained "
    "on FER2013 (48×48 grayscale faces). Explore the data, train and evaluate models, and see the "
    "predictions, all from this dashboard."
)
st.markdown(
    " ".join(
        f"<span style='background:{COLORS_HEX[e]};color:#111;padding:2px 8px;border-radius:8px;"
        f"margin-right:4px'>{i} {e}</span>"
        for i, e in enumerate(EMOTIONS)
    ),
    unsafe_allow_html=True,
)

cols = st.columns(3)
for col, (page, text) in zip(
    cols * 3,
    [
        ("app_pages/dataset.py", "Class balance, samples, mean faces, duplicates"),
        ("app_pages/train.py", "Train in the background, live curves, stop any time"),
        ("app_pages/evaluate.py", "Accuracy, confusion matrix, mistakes, exports"),
        ("app_pages/photo.py", "Faces and their emotions in your photos"),
        ("app_pages/video.py", "Annotated video and an emotion timeline"),
        ("app_pages/webcam.py", "Live emotions from your camera"),
    ],
    strict=False,
):
    with col:
        st.page_link(page)
        st.caption(text)

st.header("Shipped model")
model = catalog.shipped_model()
card = catalog.model_card()
if model is None:
    common.require_model()
else:
    st.caption(f"`{paths.shown(model)}`")
if card:
    c1, c2, c3, c4 = st.columns(4)
    acc = card.get("accuracy")
    c1.metric(
        "Test accuracy",
        f"{acc:.1%}" if isinstance(acc, (int, float)) else "–",
        delta=(
            f"{card['accuracy_tta'] - acc:+.1%} with TTA"
            if isinstance(card.get("accuracy_tta"), (int, float)) and isinstance(acc, (int, float))
            else None
        ),
    )
    c2.metric("Classes", len(EMOTIONS))
    size = card.get("size_mb")
    c3.metric("Size", f"{size:.1f} MB" if isinstance(size, (int, float)) else "–")
    params = card.get("params")
    c4.metric("Parameters", f"{params / 1e6:.2f} M" if isinstance(params, (int, float)) else "–")
    facts = catalog.card_facts(card)
    if facts:
        st.caption(" · ".join(facts))
    tier = catalog.tier_summary("accurate")
    if tier and tier["accuracy"] is not None:
        st.caption(
            f"**Accurate tier** (Photo and Evaluate pages): {tier['members']} networks averaged"
            f"{' over 10 test-time views' if tier['tta'] else ''}, {tier['accuracy']:.1%} test accuracy."
        )
    home_views.model_card(catalog.model_card_sections())
elif model is not None:
    st.info("The model has no metrics.json beside it; evaluate it on the **Evaluate** page.")

st.header("Dataset")
data = locations.find_dataset()
if data is not None and data.exists() and locations.looks_like_dataset(data):
    st.success(f"Dataset found: `{data}`", icon=":material/check_circle:")
else:
    if data is not None:
        st.warning(f"`FER_DATA` points to `{data}`, which is not a dataset.")
    else:
        st.warning("No dataset found.", icon=":material/folder_off:")
    root = paths.PROJECT_ROOT
    st.markdown(f"""
**How to get FER2013** (Goodfellow et al., 2013 — the Kaggle *Challenges in Representation Learning:
Facial Expression Recognition* data). Sign in to Kaggle, accept the competition rules, and download either form:

1. **CSV** — `fer2013.csv` (columns `emotion,pixels,Usage`; `.csv.gz` also works). Put it at
   `{root / "data" / "fer2013.csv"}`.
2. **Folder layout** — the `train/` and `test/` folders, each with one folder per class
   (`angry/ disgust/ fear/ happy/ sad/ surprise/ neutral/`, PNG files). Put them under
   `{root / "data" / "fer2013"}` so that `data/fer2013/train/happy/…` exists.

Or point the environment variable `FER_DATA` at the CSV or folder
(`FER_DATA=/path/to/fer2013 streamlit run dashboard/app.py`).
Looked in, in order: {", ".join(f"`{p}`" for p in locations.data_candidates())}.
You can also upload a CSV or a zip of the folder layout on the **Dataset** page.
""")
