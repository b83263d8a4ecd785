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
    st.dataframe(
        agree,
        hide_index=True,
        column_config={
            "emotion": st.column_config.TextColumn("FER2013 class"),
            "n": st.column_config.NumberColumn("faces with votes", format="localized"),
            "agree": st.column_config.NumberColumn(
                "FER+ majority agrees", format="percent", help="share of the faces whose FER+ majority is this class"
            ),
            "mean_votes_for_label": st.column_config.NumberColumn(
                "votes for the label (mean)",
                format="%.1f",
                help="how many of the (usually 10) FER+ annotators chose the FER2013 label, on average",
            ),
        },
    )


def label_noise(ds: Any, key: str, votes_path: Path | None, split_choices: list[str]) -> None:
    """Suspect labels (FER+ disagreement and/or confident learning with the shipped model), by class pair;
    each face accepted or rejected, the accepted ones exported as a relabel file."""
    from fercore.data.audit import audit
    from fercore.data.ferplus import align_votes, load_ferplus_votes

    st.caption(
        "Faces whose FER2013 label the FER+ annotators' majority or the shipped model (confidently) "
        "disagree with. Accept or reject each suggestion; the relabel file (`row,old_label,new_label`, for "
        "`python -m training.train --relabel FILE`, as `python -m training.audit` writes) holds exactly the "
        "accepted ones."
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
            audit_id = st.session_state.get("noise", (None, None, None, 0))[3] + 1
            st.session_state["noise"] = (job, sub, audit(sub, proba=proba, votes=votes), audit_id)
            st.session_state["noise_decisions"] = {}  # a new audit starts undecided
        except common.USER_ERRORS as exc:
            common.show_error(exc, "Label audit")
            return
    saved = st.session_state.get("noise")
    if saved is None or saved[0] != job:
        if "FER+ votes" in rules and votes_path is None:
            st.info("No FER+ votes beside this dataset: only the model rule can run.")
        return
    _, sub, result, audit_id = saved
    m1, m2, m3 = st.columns(3)
    m1.metric("Faces audited", f"{result.n:,}")
    m2.metric("Suspects", f"{len(result.suspects):,}")
    m3.metric("No clear FER+ majority", f"{result.excluded_no_majority:,}")
    pairs = result.by_pair()
    pair = st.selectbox(
        "Class pair (label → suggested)",
        ["all", *pairs],
        key=f"noise_pair_{audit_id}",
        format_func=lambda p: p if p == "all" else f"{p.replace('->', ' → ')}: {pairs[p]}",
    )
    chosen = [s for s in result.suspects if pair == "all" or f"{s.label}->{s.suggested}" == pair]
    decisions: dict[int, str] = st.session_state.setdefault("noise_decisions", {})
    b1, b2, _ = st.columns([1, 1, 3])
    if b1.button(f"Accept all {len(chosen):,} shown", key=f"noise_accept_all_{audit_id}"):
        decisions.update({s.index: ACCEPT for s in chosen})
    if b2.button(f"Reject all {len(chosen):,} shown", key=f"noise_reject_all_{audit_id}"):
        decisions.update({s.index: REJECT for s in chosen})
    _suspect_grid(sub.images, chosen, decisions, f"{audit_id}_{pair}")
    _relabel_download(result.suspects, decisions)


ACCEPT, REJECT = "accept", "reject"
SUSPECTS_PER_PAGE, SUSPECT_COLUMNS = 24, 8
RULE_NAMES = {"ferplus": "FER+", "model": "model", "ferplus+model": "FER+ & model"}


def _decide(decisions: dict[int, str], index: int, widget: str) -> None:
    """A face's accept/reject control changed: keep the decision beyond the widget (pages come and go)."""
    value = st.session_state.get(widget)
    if value is None:
        decisions.pop(index, None)
    else:
        decisions[index] = value


def _suspect_grid(images: np.ndarray, chosen: list[Any], decisions: dict[int, str], key: str) -> None:
    """The suspects, a page at a time: face, "label → suggested", evidence, and accept / reject."""
    n_pages = max(1, -(-len(chosen) // SUSPECTS_PER_PAGE))
    page = st.pagination(n_pages, key=f"noise_page_{key}")
    lo = (page - 1) * SUSPECTS_PER_PAGE
    st.caption(f"{len(chosen):,} suspects · page {page} of {n_pages} · label → suggested, evidence, rule")
    shown = chosen[lo : lo + SUSPECTS_PER_PAGE]
    for start in range(0, len(shown), SUSPECT_COLUMNS):
        for col, s in zip(st.columns(SUSPECT_COLUMNS), shown[start : start + SUSPECT_COLUMNS], strict=False):
            widget = f"noise_decision_{key}_{s.index}"
            st.session_state[widget] = decisions.get(s.index)  # the decision, even when the widget is new
            col.image(np.clip(images[s.index], 0, 255).astype("uint8"), width=96)
            col.caption(
                f"**{s.label} →  \n{s.suggested}**  \n{s.confidence:.0%} · {RULE_NAMES.get(s.reason, s.reason)}"
            )
            col.segmented_control(
                f"face {s.index}",
                [ACCEPT, REJECT],
                key=widget,
                label_visibility="collapsed",
                format_func=lambda o: "✓" if o == ACCEPT else "✗",
                on_change=_decide,
                args=(decisions, s.index, widget),
                help="✓ accept the suggested label · ✗ keep the FER2013 label",
            )


def _relabel_download(suspects: list[Any], decisions: dict[int, str]) -> None:
    """The relabel file of the accepted suspects (all pairs), and the tally."""
    from fercore.data.audit import relabel_csv

    accepted = [s for s in suspects if decisions.get(s.index) == ACCEPT]
    rejected = sum(decisions.get(s.index) == REJECT for s in suspects)
    st.markdown(
        f"**{len(accepted):,} accepted** · {rejected:,} rejected · "
        f"{len(suspects) - len(accepted) - rejected:,} undecided (of {len(suspects):,} suspects, all pairs)"
    )
    try:
        relabel = relabel_csv(accepted)
    except DataError as exc:  # faces without a FER2013 row (not NNNNN.png files)
        st.caption(f"No relabel file: {exc}")
        return
    st.download_button(
        f"Relabel file (CSV, {len(accepted):,} faces)",
        relabel,
        "relabel.csv",
        "text/csv",
        key="noise_csv",
        icon=":material/download:",
        disabled=not accepted,
        help=None if accepted else "accept some suggestions first",
    )
