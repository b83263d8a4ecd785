"""Dataset explorer: counts, samples, mean faces, intensities, duplicates, blanks, FER+ agreement and a
label-noise finder."""

from pathlib import Path

import common
import streamlit as st

from fercore.data import locations
from fercore.data.ferplus import find_votes

st.title("Dataset")

source = st.radio("Source", ["Configured path", "Upload"], horizontal=True, key="ds_source")
votes_path: Path | None = None
try:
    if source == "Configured path":
        default = locations.find_dataset()
        path = st.text_input(
            "Dataset path (FER2013 CSV, Kaggle folder layout or class folders)",
            value=str(default or ""),
            key="ds_path",
            help=common.ROOTS_HELP,
        )
        if not path.strip():
            st.info("No dataset configured. See **Home** for how to get FER2013, or upload one.")
            st.stop()
        p = locations.check_dataset_path(path)  # resolved, inside a data root
        key = common.file_key(p)
        ds = common.get_dataset(str(p), key)
        shown_as: str | None = path.strip()
        votes_path = find_votes(p, accept=locations.within_data_roots)
    else:
        up = st.file_uploader(
            "FER2013 CSV, .csv.gz, or a zip of the folder layout", type=common.DATA_TYPES, key="ds_upload"
        )
        if up is None:
            st.info(
                "Upload `fer2013.csv` (or `.csv.gz`), or a zip holding `train/<class>/*.png` "
                "and `test/<class>/*.png` (or just `<class>/` folders)."
            )
            st.stop()
        data = up.getvalue()
        key = common.sha1(data)
        ds = common.get_uploaded_dataset(up.name, key, data)
        shown_as = None
except common.USER_ERRORS as exc:
    common.show_error(exc, "Cannot load the dataset")
    st.stop()

import dataset_views as views  # noqa: E402  (plotly and stats after the cheap early exits)

report = ds.report
split_choices = ["all", *[s for s in ds.split_names if s != "all"]]
st.caption(report.summary(shown_as=shown_as))
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(ds):,}")
c2.metric("Splits", ", ".join(ds.split_names))
c3.metric("Unreadable skipped", len(report.skipped))
c4.metric("Ignored folders", len(report.unknown_folders))
if report.skipped:
    with st.expander(f"{len(report.skipped)} unreadable files"):
        st.dataframe([{"file": f, "why": w} for f, w in report.skipped[:500]], hide_index=True)

tabs = st.tabs(
    ["Counts", "Samples", "Mean faces", "Intensities", "Duplicates & blanks", "FER+ agreement", "Label noise"]
)
with tabs[0]:
    views.counts(ds, key)
with tabs[1]:
    views.samples(ds, split_choices)
with tabs[2]:
    views.means(ds, key, split_choices)
with tabs[3]:
    views.intensities(ds, key)
with tabs[4]:
    views.quality(ds, key)
with tabs[5]:
    views.ferplus(ds, key, votes_path)
with tabs[6]:
    views.label_noise(ds, key, votes_path, split_choices)
