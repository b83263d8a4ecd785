"""Webcam: live emotions over WebRTC.

The frame callback runs in a worker thread of streamlit-webrtc: this session's ``LiveSession`` runs
each frame through its own FramePipeline (around the shared classifier) and puts its results on a
queue. It never touches ``st.*``; the page drains the queue in a fragment that reruns every second
while the camera plays.
See docs/webcam.md for running it beyond localhost (HTTPS, STUN/TURN).
"""

import json
import os
import time
from collections import deque

import streamlit as st

import common
from fercore.labels import COLORS_HEX, EMOTIONS

st.title("Webcam")

model = common.require_model()
if model is None:
    st.stop()

c1, c2 = st.columns([1, 3])
detector = common.detector_select("webcam_detector", c1)
with c2.expander("Connection (ICE servers)"):
    ice_text = st.text_area(
        "ICE servers as JSON", os.environ.get("FER_ICE_SERVERS", "[]"), key="webcam_ice",
        help='None by default (works on localhost and a LAN). Beyond that add STUN/TURN servers, e.g. '
             '[{"urls": ["stun:stun.example.org:3478"]}] — see docs/webcam.md.')
try:
    ice_servers = json.loads(ice_text or "[]")
    if not isinstance(ice_servers, list) or not all(isinstance(s, dict) and "urls" in s for s in ice_servers):
        raise ValueError('expected a JSON list of {"urls": …} objects')
except ValueError as exc:
    common.show_error(exc, "ICE servers ignored")
    ice_servers = []

from streamlit_webrtc import WebRtcMode, webrtc_streamer  # noqa: E402

from fercore.live import LiveSession  # noqa: E402

if "webcam_live" not in st.session_state:
    st.session_state["webcam_live"] = LiveSession(common.get_classifier(str(model)), detector)
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

HISTORY_S = 20.0


def readout() -> None:
    hist: deque = st.session_state.setdefault("webcam_history", deque(maxlen=2000))
    hist.extend(live.drain())
    now = time.time()
    while hist and now - hist[0][0] > HISTORY_S:
        hist.popleft()
    recent = [h for h in hist if now - h[0] <= 3.0]
    span = recent[-1][0] - recent[0][0] if len(recent) > 1 else 0.0
    fps = (len(recent) - 1) / span if span > 0 else 0.0
    latency = sum(h[1] for h in recent) / len(recent) * 1000 if recent else 0.0
    last_faces = hist[-1][2] if hist else []
    m1, m2, m3 = st.columns(3)
    m1.metric("Faces in view", len(last_faces) if recent else 0)
    m2.metric("FPS", f"{fps:.1f}")
    m3.metric("Latency per frame", f"{latency:.0f} ms")
    st.markdown(f"frames processed: {live.frames}")
    if not hist:
        return
    if last_faces:
        st.markdown(" · ".join(
            f"<span style='color:{COLORS_HEX.get(f['label'], '#888')}'>■</span> face {f['face_id']}: "
            f"**{f['label']}** {f['scores'].get(f['label'], 0):.0%} at {tuple(f['box'])}"
            for f in last_faces), unsafe_allow_html=True)
    else:
        st.caption("no face in view")
    import pandas as pd
    import plotly.express as px

    rows = [{"t": t - now, "face": f"face {f['face_id']}", "emotion": e, "p": f["scores"].get(e, 0.0)}
            for t, _, faces in hist for f in faces for e in EMOTIONS]
    if rows:
        df = pd.DataFrame(rows)
        fig = px.line(df, x="t", y="p", color="emotion", facet_row="face", color_discrete_map=COLORS_HEX,
                      category_orders={"emotion": list(EMOTIONS)},
                      labels={"t": "seconds ago", "p": "smoothed probability"},
                      title="Smoothed emotions per face (last 20 s)")
        fig.update_layout(height=220 + 160 * df["face"].nunique())
        fig.update_yaxes(range=[0, 1])
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        st.plotly_chart(fig, key="webcam_chart")


st.fragment(readout, run_every=1.0 if playing else None)()
