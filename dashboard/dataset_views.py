"""Layout blocks of the Dataset page: one function per tab (the page stays a short script)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
import numpy as np
import plotly.express as px
import streamlit as st

from fercore.data import stats
from fercore.labels import COLORS_HEX, EMOTIONS
from fercore.types import DataError


@st.cache_data(show_spinner="Counting…", max_entries=8)
def _counts(_ds: Any, key: str) -> Any:
    return stats.split_class_counts(_ds)


@st.cache_data(show_spinner="Averaging faces…", max_entries=16)
def _means(_ds: Any, key: str, split: str | None) -> Any:
    return stats.class_mean_faces(_ds, split)


@st.cache_data(show_spinner="Histogram…", max_entries=8)
def _hist(_ds: Any, key: str) -> Any:
    return stats.intensity_histogram(_ds)


@st.cache_data(show_spinner="Looking for duplicates…", max_entries=8)
def _dups(_ds: Any, key: str) -> Any:
    return stats.find_duplicates(_ds)


@st.cache_data(show_spinner="Looking for blank images…", max_entries=8)
def _blanks(_ds: Any, key: str) -> Any:
    return stats.blank_images(_ds)


@st.cache_data(show_spinner="Comparing with FER+ votes…", max_entries=8)
def _ferplus(_ds: Any, key: str, votes: str) -> Any:
    return stats.ferplus_agreement(_ds, votes)


def counts(ds: Any, key: str) -> None:
    table = _counts(ds, key)
    long = table.reset_index().melt(id_vars="split", var_name="emotion", value_name="images")
    fig = px.bar(
        long,
        x="emotion",
        y="images",
        color="split",
        barmode="group",
        category_orders={"emotion": list(EMOTIONS)},
        title="Images per class and split",
    )
    st.plotly_chart(fig, key="counts_chart")
    table = table.copy()
    table["total"] = table.sum(axis=1)
    st.dataframe(table)


def samples(ds: Any, split_choices: list[str]) -> None:
    s1, s2 = st.columns(2)
    emotion = s1.selectbox("Class", list(EMOTIONS), index=3, key="sample_class")
    split = s2.selectbox("Split", split_choices, key="sample_split")
    mask = ds.labels == EMOTIONS.index(emotion)
    if split != "all":
        mask &= ds.splits == split
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        st.info(f"No {emotion} images in this split.")
        return
    common.paged_face_grid(
        ds.images,
        idx,
        [Path(str(ds.ids[i])).stem[:12] for i in idx],
        f"sample_page_{emotion}_{split}",
        f"{emotion} images",
    )


def means(ds: Any, key: str, split_choices: list[str]) -> None:
    msplit = st.selectbox("Split", split_choices, key="mean_split")
    faces = _means(ds, key, None if msplit == "all" else msplit)
    common.face_grid([faces[e] for e in faces], list(faces), cols=7, width=110)
    st.caption("The average face of each class: the typical mouth and brow shapes show through.")


def intensities(ds: Any, key: str) -> None:
    hist = _hist(ds, key)
    ycol = "share" if "share" in hist.columns else "count"
    st.plotly_chart(
        px.line(hist, x="intensity", y=ycol, color="split", title="Pixel intensity distribution"), key="hist_chart"
    )


def quality(ds: Any, key: str) -> None:
    dups, blanks = _dups(ds, key), _blanks(ds, key)
    q1, q2, q3, q4 = st.columns(4)
    q1.metric("Duplicate groups", len(dups.groups))
    q2.metric("Across splits", dups.across_splits, help="same image in train and test: leakage")
    q3.metric("Conflicting labels", dups.conflicting)
    q4.metric("Blank images", len(blanks))
    st.subheader("Duplicates")
    if dups.groups:
        show = st.radio("Show", ["conflicting labels", "across splits", "all"], horizontal=True, key="dup_filter")
        groups = dups.groups
        if show == "conflicting labels":
            groups = [g for g in groups if len(set(ds.labels[g].tolist())) > 1]
        elif show == "across splits":
            groups = [g for g in groups if len(set(ds.splits[g].tolist())) > 1]
        for g in groups[:12]:
            common.face_grid(
                ds.images[g][:8], [f"{ds.splits[i]} · {EMOTIONS[ds.labels[i]]}" for i in g[:8]], cols=8, width=72
            )
        if len(groups) > 12:
            st.caption(f"…and {len(groups) - 12} more groups (all in the table below)")
        st.dataframe(dups.table, hide_index=True, height=240)
    else:
        st.success("No exact duplicates.")
    st.subheader("Blank images")
    if len(blanks):
        common.face_grid(
            ds.images[blanks[:24]],
            [f"{ds.splits[i]} · {EMOTIONS[ds.labels[i]]}" for i in blanks[:24]],
            cols=12,
            width=64,
        )
    else:
        st.success("No blank images.")


def ferplus(ds: Any, key: str, votes_path: Path | None) -> None:
    if votes_path is None:
        st.info(
            "No FER+ votes found (a `ferplus_votes.csv` beside or inside the dataset folder). "
            "FER+ (Barsoum et al., 2016) re-labelled every FER2013 image with 10 annotators."
        )
        return
    try:
        agree = _ferplus(ds, key, str(votes_path))
    except DataError as exc:
        common.show_error(exc, "FER+ votes")
        return
    st.caption(f"Votes: `{votes_path.name}` — share of images whose FER+ majority vote agrees with the FER2013 label.")
    valid = agree[agree["n"] > 0]
    if valid.empty:
        st.info("No image of this dataset has FER+ votes (votes are matched by CSV row).")
    else:
        fig = px.bar(
            valid,
            x="emotion",
            y="agree",
            color="emotion",
            color_discrete_map=COLORS_HEX,
            range_y=[0, 1],
            title="FER+ majority agrees with the FER2013 label",
        )
        fig.update_layout(yaxis_tickformat=".0%", showlegend=False)
        st.plotly_chart(fig, key="ferplus_chart")
    st.dataframe(agree, hide_index=True)


def label_noise(ds: Any, key: str, votes_path: Path | None, split_choices: list[str]) -> None:
    """Suspect labels (FER+ disagreement and/or confident learning with the shipped model), by class pair."""
    from fercore.data.audit import audit, relabel_csv
    from fercore.data.ferplus import align_votes, load_ferplus_votes

    st.caption(
        "Faces whose FER2013 label the FER+ annotators' majority or the shipped model (confidently) "
        "disagree with. Export the ones you accept as `row,old_label,new_label` for "
        "`python -m training.train --relabel FILE` (same as `python -m training.audit`)."
    )
    a1, a2, a3 = st.columns([1, 2, 1])
    split = a1.selectbox("Split", split_choices, key="noise_split")
    rules = a2.multiselect(
        "Rules",
        ["FER+ votes", "shipped model"],
        default=["FER+ votes"],
        key="noise_rules",
        help="the model rule classifies every face of the split (about a minute per 10,000)",
    )
    job = (key, split, tuple(rules))
    if a3.button("Find suspects", key="noise_go", type="primary"):
        sub = ds if split == "all" else ds.split(split)
        try:
            votes = align_votes(sub, *load_ferplus_votes(votes_path)) if "FER+ votes" in rules and votes_path else None
            proba = None
            if "shipped model" in rules:
                proba = common.get_classifier("fast").predict_proba(sub.images)
            st.session_state["noise"] = (job, sub, audit(sub, proba=proba, votes=votes))
        except common.USER_ERRORS as exc:
            common.show_error(exc, "Label audit")
            return
    saved = st.session_state.get("noise")
    if saved is None or saved[0] != job:
        if "FER+ votes" in rules and votes_path is None:
            st.info("No FER+ votes beside this dataset: only the model rule can run.")
        return
    _, sub, result = saved
    m1, m2, m3 = st.columns(3)
    m1.metric("Faces audited", f"{result.n:,}")
    m2.metric("Suspects", f"{len(result.suspects):,}")
    m3.metric("No clear FER+ majority", f"{result.excluded_no_majority:,}")
    pairs = result.by_pair()
    pair = st.selectbox(
        "Class pair (label → suggested)",
        ["all", *pairs],
        key="noise_pair",
        format_func=lambda p: p if p == "all" else f"{p}: {pairs[p]}",
    )
    chosen = [s for s in result.suspects if pair == "all" or f"{s.label}->{s.suggested}" == pair]
    common.paged_face_grid(
        sub.images,
        np.array([s.index for s in chosen], dtype=int),
        [f"{s.label}→{s.suggested} {s.confidence:.0%} {s.reason}" for s in chosen],
        f"noise_page_{pair}",
        "suspects (label → suggested, confidence, rule)",
    )
    try:
        relabel = relabel_csv(chosen)
    except DataError as exc:  # faces without a FER2013 row (not NNNNN.png files)
        st.caption(f"No relabel file: {exc}")
        return
    st.download_button(
        "Relabel file (CSV)", relabel, "relabel.csv", "text/csv", key="noise_csv", icon=":material/download:"
    )
