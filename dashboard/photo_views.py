"""Layout blocks of the Photo page: the batch's one account (counts, problems, downloads, summary) and
one photo in detail (the numbered image, each face's chart, the table of every face)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import common
import streamlit as st

from fercore.inference.batch import BatchReport, ImageResult, to_table
from fercore.inference.image import encode_png
from fercore.labels import EMOTIONS

# the table of a photo's faces: probabilities shown as whole percents, every column narrow enough to fit
FACE_COLUMNS = {
    "face_id": st.column_config.NumberColumn("face", help="numbered left to right, as on the image"),
    "label": st.column_config.TextColumn("label"),
    **{c: st.column_config.NumberColumn(c, help="box in the photo's pixels") for c in "xywh"},
    **{e: st.column_config.NumberColumn(e, format="%.0f%%") for e in EMOTIONS},
}


def batch_account(report: BatchReport) -> None:
    """The counts, every item not analysed with its reason, the CSV/JSON of all, a line per image."""
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Images analysed", len(report.analysed))
    m2.metric("Faces", report.faces)
    m3.metric("Without a face", report.without_face)
    m4.metric("Skipped or unreadable", len(report.problems))
    if report.problems:
        with st.expander(f"Skipped or unreadable: {len(report.problems)}", icon=":material/warning:", expanded=True):
            st.dataframe(
                report.problem_rows(),
                hide_index=True,
                key="photo_problems",
                width="stretch",
                column_config={
                    "file": st.column_config.TextColumn(width="medium"),
                    "reason": "why it was not analysed",
                },
            )
    downloads = [
        ("CSV (all faces)", report.table().to_csv(index=False), "faces.csv", "text/csv"),
        ("JSON (all images)", json.dumps(report.to_json(), indent=2), "faces.json", "application/json"),
    ]
    for col, (label, data, file, mime) in zip(st.columns([1, 1, 3]), downloads, strict=False):
        col.download_button(label, data, file, mime, key=f"photo_{file}", icon=":material/download:", on_click="ignore")
    if len(report.analysed) > 1:
        st.dataframe(
            [r.summary() for r in report.analysed],
            hide_index=True,
            key="photo_table",
            column_config={"labels": st.column_config.TextColumn("label per face (face 1, 2, … left to right)")},
        )


def face_table(res: ImageResult, key: str) -> None:
    """Every face of one photo: number, label, box and the seven probabilities (in percent)."""
    table = to_table([res])[["face_id", "label", *EMOTIONS, "x", "y", "w", "h"]]
    table[list(EMOTIONS)] = (table[list(EMOTIONS)].astype(float) * 100).round(1)
    st.dataframe(table, hide_index=True, key=key, column_config=FACE_COLUMNS, width="stretch")


def photo_detail(res: ImageResult, preview: Any, key: str, overlays: list[Any]) -> None:
    """One photo: the image with numbered boxes beside each face's crop and chart, then the table."""
    left, right = st.columns([3, 2])
    left.image(preview, caption=f"{len(res.faces)} face(s) found, numbered left to right", width="stretch")
    name = f"{Path(res.file).stem}_annotated.png"
    left.download_button(
        "Annotated PNG", encode_png(preview), name, key=f"png_{key}", icon=":material/download:", on_click="ignore"
    )
    if not res.faces:
        right.info(
            "No face found. Try another detector (mtcnn is the most thorough), a photo with a larger "
            "face, or classify the whole image (toggle above)."
        )
        return
    with right.container(height=560 if len(res.faces) > 2 else "content", border=False):
        for i, face in enumerate(res.faces):
            cols = st.columns([1, 3, 1] if overlays else [1, 3])
            cols[0].image(face.face, caption=f"face {face.face_id}: {face.label}", width=96)
            cols[1].plotly_chart(common.emotion_bar(face.scores, height=180), key=f"bar_{key}_{i}")
            if overlays:
                cols[2].image(overlays[i], caption="Grad-CAM", width=96)
    face_table(res, key=f"faces_{key}")
