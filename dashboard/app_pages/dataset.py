"""Dataset explorer: counts, samples, mean faces, intensities, duplicates, blanks, FER+ agreement."""

from pathlib import Path

import common
import numpy as np
import streamlit as st

from fercore import locations
from fercore.labels import COLORS_HEX, EMOTIONS
from fercore.types import DataError

st.title("Dataset")

source = st.radio("Source", ["Configured path", "Upload"], horizontal=True, key="ds_source")
ds = None
key = ""
votes_path: Path | None = None
try:
    if source == "Configured path":
        default = locations.find_dataset()
        path = st.text_input("Dataset path (FER2013 CSV, Kaggle folder layout or class folders)",
                             value=str(default or ""), key="ds_path", help=common.ROOTS_HELP)
        if not path.strip():
            st.info("No dataset configured. See **Home** for how to get FER2013, or upload one.")
            st.stop()
        p = locations.check_dataset_path(path)  # resolved, inside a data root
        key = common.file_key(p)
        ds = common.get_dataset(str(p), key)
        for cand in (p / "ferplus_votes.csv", p.parent / "ferplus_votes.csv"):
            if locations.within_data_roots(cand) and cand.is_file():
                votes_path = cand
                break
    else:
        up = st.file_uploader("FER2013 CSV, .csv.gz, or a zip of the folder layout",
                              type=common.DATA_TYPES, key="ds_upload")
        if up is None:
            st.info("Upload `fer2013.csv` (or `.csv.gz`), or a zip holding `train/<class>/*.png` "
                    "and `test/<class>/*.png` (or just `<class>/` folders).")
            st.stop()
        data = up.getvalue()
        key = common.sha1(data)
        ds = common.get_uploaded_dataset(up.name, key, data)
except common.USER_ERRORS as exc:
    common.show_error(exc, "Cannot load the dataset")
    st.stop()

import plotly.express as px  # noqa: E402  (after the cheap early exits)

from fercore import stats  # noqa: E402


@st.cache_data(show_spinner="Counting…", max_entries=8)
def _counts(_ds, key):
    return stats.split_class_counts(_ds)


@st.cache_data(show_spinner="Averaging faces…", max_entries=16)
def _means(_ds, key, split):
    return stats.class_mean_faces(_ds, split)


@st.cache_data(show_spinner="Histogram…", max_entries=8)
def _hist(_ds, key):
    return stats.intensity_histogram(_ds)


@st.cache_data(show_spinner="Looking for duplicates…", max_entries=8)
def _dups(_ds, key):
    return stats.find_duplicates(_ds)


@st.cache_data(show_spinner="Looking for blank images…", max_entries=8)
def _blanks(_ds, key):
    return stats.blank_images(_ds)


@st.cache_data(show_spinner="Comparing with FER+ votes…", max_entries=8)
def _ferplus(_ds, key, votes):
    return stats.ferplus_agreement(_ds, votes)


report = ds.report
split_choices = ["all", *[s for s in ds.split_names if s != "all"]]
st.caption(report.summary())
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(ds):,}")
c2.metric("Splits", ", ".join(ds.split_names))
c3.metric("Unreadable skipped", len(report.skipped))
c4.metric("Ignored folders", len(report.unknown_folders))
if report.skipped:
    with st.expander(f"{len(report.skipped)} unreadable files"):
        st.dataframe([{"file": f, "why": w} for f, w in report.skipped[:500]], hide_index=True)

tab_counts, tab_samples, tab_means, tab_hist, tab_quality, tab_ferplus = st.tabs(
    ["Counts", "Samples", "Mean faces", "Intensities", "Duplicates & blanks", "FER+ agreement"])

with tab_counts:
    counts = _counts(ds, key)
    long = counts.reset_index().melt(id_vars="split", var_name="emotion", value_name="images")
    fig = px.bar(long, x="emotion", y="images", color="split", barmode="group",
                 category_orders={"emotion": list(EMOTIONS)}, title="Images per class and split")
    st.plotly_chart(fig, key="counts_chart")
    table = counts.copy()
    table["total"] = table.sum(axis=1)
    st.dataframe(table)

with tab_samples:
    s1, s2 = st.columns(2)
    emotion = s1.selectbox("Class", list(EMOTIONS), index=3, key="sample_class")
    split = s2.selectbox("Split", split_choices, key="sample_split")
    mask = ds.labels == EMOTIONS.index(emotion)
    if split != "all":
        mask &= ds.splits == split
    idx = np.flatnonzero(mask)
    per_page = 48
    if len(idx) == 0:
        st.info(f"No {emotion} images in this split.")
    else:
        n_pages = max(1, -(-len(idx) // per_page))
        page = st.pagination(n_pages, key=f"sample_page_{emotion}_{split}")
        chunk = idx[(page - 1) * per_page: page * per_page]
        st.caption(f"{len(idx):,} {emotion} images · page {page} of {n_pages}")
        common.face_grid(ds.images[chunk], [Path(str(ds.ids[i])).stem[:12] for i in chunk], cols=12, width=64)

with tab_means:
    msplit = st.selectbox("Split", split_choices, key="mean_split")
    means = _means(ds, key, None if msplit == "all" else msplit)
    common.face_grid([means[e] for e in means], list(means), cols=7, width=110)
    st.caption("The average face of each class: the typical mouth and brow shapes show through.")

with tab_hist:
    hist = _hist(ds, key)
    ycol = "share" if "share" in hist.columns else "count"
    fig = px.line(hist, x="intensity", y=ycol, color="split", title="Pixel intensity distribution")
    st.plotly_chart(fig, key="hist_chart")

with tab_quality:
    dups = _dups(ds, key)
    blanks = _blanks(ds, key)
    q1, q2, q3, q4 = st.columns(4)
    q1.metric("Duplicate groups", len(dups.groups))
    q2.metric("Across splits", dups.across_splits, help="same image in train and test: leakage")
    q3.metric("Conflicting labels", dups.conflicting)
    q4.metric("Blank images", len(blanks))
    st.subheader("Duplicates")
    if dups.groups:
        show = st.radio("Show", ["conflicting labels", "across splits", "all"], horizontal=True,
                        key="dup_filter")
        groups = dups.groups
        if show == "conflicting labels":
            groups = [g for g in groups if len(set(ds.labels[g].tolist())) > 1]
        elif show == "across splits":
            groups = [g for g in groups if len(set(ds.splits[g].tolist())) > 1]
        for g in groups[:12]:
            common.face_grid(ds.images[g][:8],
                             [f"{ds.splits[i]} · {EMOTIONS[ds.labels[i]]}" for i in g[:8]],
                             cols=8, width=72)
        if len(groups) > 12:
            st.caption(f"…and {len(groups) - 12} more groups (all in the table below)")
        st.dataframe(dups.table, hide_index=True, height=240)
    else:
        st.success("No exact duplicates.")
    st.subheader("Blank images")
    if len(blanks):
        common.face_grid(ds.images[blanks[:24]],
                         [f"{ds.splits[i]} · {EMOTIONS[ds.labels[i]]}" for i in blanks[:24]],
                         cols=12, width=64)
    else:
        st.success("No blank images.")

with tab_ferplus:
    if votes_path is None:
        st.info("No FER+ votes found (a `ferplus_votes.csv` beside or inside the dataset folder). "
                "FER+ (Barsoum et al., 2016) re-labelled every FER2013 image with 10 annotators.")
    else:
        try:
            agree = _ferplus(ds, key, str(votes_path))
        except DataError as exc:
            common.show_error(exc, "FER+ votes")
        else:
            st.caption(f"Votes: `{votes_path}` — share of images whose FER+ majority vote agrees with "
                       "the FER2013 label.")
            valid = agree[agree["n"] > 0]
            if valid.empty:
                st.info("No image of this dataset has FER+ votes (votes are matched by CSV row).")
            else:
                fig = px.bar(valid, x="emotion", y="agree", color="emotion",
                             color_discrete_map=COLORS_HEX, range_y=[0, 1],
                             title="FER+ majority agrees with the FER2013 label")
                fig.update_layout(yaxis_tickformat=".0%", showlegend=False)
                st.plotly_chart(fig, key="ferplus_chart")
            st.dataframe(agree, hide_index=True)
