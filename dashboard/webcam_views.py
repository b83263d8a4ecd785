"""Layout blocks of the Webcam page: the live readout (a fragment) and a finished recording."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from fercore.inference.live import LiveHistory, LiveSession, RecordingResult
from fercore.labels import COLORS_HEX, EMOTIONS


def readout(live: LiveSession, active: bool) -> None:
    """Rate, latency, faces, baselines and a 20-second chart, from what the stream published.
    Run as a fragment that polls fast when ``active``; an idle readout that sees frames flowing
    reruns the page, so that it polls fast from then on."""
    if not active and live.streaming():
        st.rerun()
    hist: LiveHistory = st.session_state.setdefault("webcam_history", LiveHistory())
    hist.extend(live.drain())
    stats = hist.stats()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Faces in view", len(stats["faces"]))
    m2.metric("FPS", f"{stats['fps']:.1f}")
    m3.metric("Latency per frame", f"{stats['latency_ms']:.0f} ms")
    rec = live.recording
    if rec is None:
        m4.metric("Recording", "off")
    elif rec.frames == 0:  # Record pressed, but no frame came yet: say so rather than count 0 s
        m4.metric("Recording", "waiting", help="for the camera's first frame: press START and allow the camera")
    else:
        m4.metric("Recording", f"{rec.elapsed:.0f} / {rec.max_seconds:.0f} s")
    st.markdown(f"frames processed: {live.frames}")
    if live.personal.last_capture is not None:
        st.caption(live.personal.last_capture.message())
    if live.personal.baselines:
        st.caption(
            "Baselines: "
            + "; ".join(
                f"face {i}: " + ", ".join(f"{e} {v:.0%}" for e, v in zip(EMOTIONS, b, strict=True) if v >= 0.05)
                for i, b in live.personal.baselines.items()
            )
        )
    if stats["faces"]:
        st.markdown(
            " · ".join(
                f"<span style='color:{COLORS_HEX.get(f['label'], '#888')}'>■</span> face {f['face_id']}: "
                f"**{f['label']}** {f['scores'].get(f['label'], 0):.0%} at {tuple(f['box'])}"
                for f in stats["faces"]
            ),
            unsafe_allow_html=True,
        )
    df = hist.table()
    if df.empty:
        return
    st.plotly_chart(
        _per_face_lines(df, "t", "face", "seconds ago", "Emotions per face (last 20 s)"), key="webcam_chart"
    )


def _per_face_lines(df, x: str, face: str, x_label: str, title: str):
    """Probability of each emotion over time, one row of the figure per face."""
    fig = px.line(
        df,
        x=x,
        y="p",
        color="emotion",
        facet_row=face,
        color_discrete_map=COLORS_HEX,
        category_orders={"emotion": list(EMOTIONS)},
        labels={x: x_label, "p": "probability"},
        title=title,
    )
    fig.update_layout(height=220 + 160 * df[face].nunique())
    fig.update_yaxes(range=[0, 1])
    return fig


def recording(recorded: RecordingResult | None) -> None:
    """Downloads, the per-face summary and the timeline of a finished recording."""
    if recorded is None:
        return
    why_empty = recorded.empty_reason()
    if recorded.frames == 0:  # nothing at all to download
        st.warning(f"Nothing was recorded: {why_empty}.", icon=":material/videocam_off:")
        return
    st.subheader(f"Recording: {recorded.seconds:.1f} s, {recorded.frames} frames, {len(recorded.table)} face rows")
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "MP4", recorded.mp4, "recording.mp4", "video/mp4", key="rec_mp4", icon=":material/download:", on_click="ignore"
    )
    if why_empty is not None:  # a video without faces: no empty CSV or JSON to download
        st.info(f"Only the video to download: {why_empty}.", icon=":material/face_retouching_off:")
        return
    d2.download_button(
        "CSV", recorded.csv(), "recording.csv", "text/csv", key="rec_csv", icon=":material/download:", on_click="ignore"
    )
    d3.download_button(
        "JSON",
        recorded.json(),
        "recording.json",
        "application/json",
        key="rec_json",
        icon=":material/download:",
        on_click="ignore",
    )
    st.dataframe(
        recorded.summary(),
        hide_index=True,
        key="rec_summary",
        column_config={e: st.column_config.NumberColumn(format="percent") for e in EMOTIONS},
    )
    timeline = recorded.table.melt(
        id_vars=["time_s", "face_id"], value_vars=list(EMOTIONS), var_name="emotion", value_name="p"
    )
    fig = _per_face_lines(timeline, "time_s", "face_id", "seconds", "Timeline of the recording")
    st.plotly_chart(fig, key="rec_timeline")
