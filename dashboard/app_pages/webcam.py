"""Webcam: live emotions over WebRTC, with recording, snapshots and a personal neutral calibration.

The frame callback runs in a worker thread of streamlit-webrtc: this session's ``LiveSession`` runs
each frame through its own FramePipeline (around the shared classifier) and puts its results on a
queue. It never touches ``st.*``; the page drains the queue in a fragment that reruns every second
while the camera plays. See docs/webcam.md for running it beyond localhost (HTTPS, STUN/TURN).
"""

import os

import common
import plotly.express as px
import streamlit as st

from fercore.baseline import NEUTRAL_TARGET
from fercore.classify import stream_model_path
from fercore.image import encode_png
from fercore.labels import COLORS_HEX, EMOTIONS
from fercore.live import MAX_RECORD_SECONDS, LiveHistory, LiveSession, parse_ice_servers

st.title("Webcam")

model = common.require_model()
if model is None:
    st.stop()

c1, c2 = st.columns([1, 3])
detector = common.detector_select("webcam_detector", c1)
with c2.expander("Connection (ICE servers)"):
    ice_text = st.text_area(
        "ICE servers as JSON",
        os.environ.get("FER_ICE_SERVERS", "[]"),
        key="webcam_ice",
        help="None by default (works on localhost and a LAN). Beyond that add STUN/TURN servers, e.g. "
        '[{"urls": ["stun:stun.example.org:3478"]}] — see docs/webcam.md.',
    )
try:
    ice_servers = parse_ice_servers(ice_text)
except ValueError as exc:
    common.show_error(exc, "ICE servers ignored")
    ice_servers = []

from streamlit_webrtc import WebRtcMode, webrtc_streamer  # noqa: E402

if "webcam_live" not in st.session_state:
    # the int8 twin of the shipped model when there is one: same top-1, 2–4× the throughput
    st.session_state["webcam_live"] = LiveSession(common.get_classifier(str(stream_model_path())), detector)
live: LiveSession = st.session_state["webcam_live"]
live.use_detector(detector)

ctx = webrtc_streamer(
    key="fer-webcam",
    mode=WebRtcMode.SENDRECV,
    rtc_configuration={"iceServers": ice_servers},
    media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
    video_frame_callback=live.frame_callback(),
    async_processing=True,
)
playing = bool(ctx.state.playing)
if not playing:
    st.caption("Press START and allow the camera. Boxes and labels are drawn on the returned video.")

r1, r2, r3, r4 = st.columns([1, 1, 1, 2])
limit = r4.slider(
    "Recording limit (s)",
    5,
    int(MAX_RECORD_SECONDS),
    60,
    key="webcam_limit",
    help="the recording stops by itself after this long; it is kept in your session only",
)
if r1.button("Record", icon=":material/fiber_manual_record:", key="webcam_record", disabled=live.recording is not None):
    live.start_recording(float(limit))
    st.session_state.pop("webcam_recorded", None)
if r2.button("Stop recording", icon=":material/stop:", key="webcam_stop", disabled=live.recording is None):
    st.session_state["webcam_recorded"] = live.stop_recording()
if live.last_frame is not None:
    r3.download_button(
        "Snapshot",
        encode_png(live.last_frame),
        "snapshot.png",
        "image/png",
        key="webcam_snapshot",
        icon=":material/photo_camera:",
    )

k1, k2 = st.columns([1, 3])
if k1.button("Calibrate neutral (3 s)", key="webcam_calibrate", icon=":material/tune:"):
    live.calibration.start(3.0)
live.calibration.enabled = k2.toggle("Show calibrated scores", value=True, key="webcam_calibrated")
k2.caption(
    f"Hold a neutral face for 3 s: each face's scores are then re-weighted by its own resting "
    f"expression (p′ ∝ p · q / baseline, with q = {NEUTRAL_TARGET:.0%} neutral), so the face at rest "
    "reads neutral and an emotion shows as much as it grew."
)


def readout() -> None:
    hist: LiveHistory = st.session_state.setdefault("webcam_history", LiveHistory())
    hist.extend(live.drain())
    stats = hist.stats()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Faces in view", len(stats["faces"]))
    m2.metric("FPS", f"{stats['fps']:.1f}")
    m3.metric("Latency per frame", f"{stats['latency_ms']:.0f} ms")
    rec = live.recording
    m4.metric("Recording", f"{rec.elapsed:.0f} / {rec.max_seconds:.0f} s" if rec else "off")
    st.markdown(f"frames processed: {live.frames}")
    if live.calibration.baselines:
        st.caption(
            "Baselines: "
            + "; ".join(
                f"face {i}: " + ", ".join(f"{e} {v:.0%}" for e, v in zip(EMOTIONS, b, strict=True) if v >= 0.05)
                for i, b in live.calibration.baselines.items()
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
    fig = px.line(
        df,
        x="t",
        y="p",
        color="emotion",
        facet_row="face",
        color_discrete_map=COLORS_HEX,
        category_orders={"emotion": list(EMOTIONS)},
        labels={"t": "seconds ago", "p": "probability"},
        title="Emotions per face (last 20 s)",
    )
    fig.update_layout(height=220 + 160 * df["face"].nunique())
    fig.update_yaxes(range=[0, 1])
    st.plotly_chart(fig, key="webcam_chart")


st.fragment(readout, run_every=1.0 if playing else None)()

recorded = st.session_state.get("webcam_recorded")
if recorded is not None:
    st.subheader(f"Recording: {recorded.seconds:.1f} s, {recorded.frames} frames, {len(recorded.table)} face rows")
    d1, d2, d3 = st.columns(3)
    d1.download_button("CSV", recorded.csv(), "recording.csv", "text/csv", key="rec_csv", icon=":material/download:")
    d2.download_button(
        "JSON", recorded.json(), "recording.json", "application/json", key="rec_json", icon=":material/download:"
    )
    d3.download_button("MP4", recorded.mp4, "recording.mp4", "video/mp4", key="rec_mp4", icon=":material/download:")
    summary = recorded.summary()
    if summary.empty:
        st.info("No face was seen while recording.")
    else:
        st.dataframe(
            summary,
            hide_index=True,
            key="rec_summary",
            column_config={e: st.column_config.NumberColumn(format="percent") for e in EMOTIONS},
        )
        timeline = recorded.table.melt(
            id_vars=["time_s", "face_id"], value_vars=list(EMOTIONS), var_name="emotion", value_name="p"
        )
        fig = px.line(
            timeline,
            x="time_s",
            y="p",
            color="emotion",
            facet_row="face_id",
            color_discrete_map=COLORS_HEX,
            title="Timeline of the recording",
        )
        st.plotly_chart(fig, key="rec_timeline")
