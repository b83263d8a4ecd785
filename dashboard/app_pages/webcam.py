"""Webcam: live emotions over WebRTC, with recording, snapshots and a personal neutral calibration.

The frame callback runs in a worker thread of streamlit-webrtc: this session's ``LiveSession`` runs
each frame through its own FramePipeline (around the shared classifier) and puts its results on a
queue. It never touches ``st.*``; the page drains the queue in a fragment that reruns every second
while the camera plays. See docs/webcam.md for running it beyond localhost (HTTPS, STUN/TURN).
"""

import os

import common
import streamlit as st
import webcam_views as views

from fercore.inference.classify import stream_model_path
from fercore.inference.image import encode_png
from fercore.inference.live import MAX_RECORD_SECONDS, LiveSession, parse_ice_servers
from fercore.inference.personal import NEUTRAL_TARGET

IDLE_POLL_S = 5.0

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
r4.slider(
    "Recording limit (s)",
    5,
    int(MAX_RECORD_SECONDS),
    60,
    key="webcam_limit",
    help="the recording stops by itself after this long; it is kept in your session only",
)


def start_recording() -> None:  # callbacks run before the page, so both buttons are drawn in the new state
    st.session_state["webcam_live"].start_recording(float(st.session_state["webcam_limit"]))
    st.session_state.pop("webcam_recorded", None)


def stop_recording() -> None:
    st.session_state["webcam_recorded"] = st.session_state["webcam_live"].stop_recording()


recording = live.recording is not None
r1.button(
    "Record", icon=":material/fiber_manual_record:", key="webcam_record", disabled=recording, on_click=start_recording
)
r2.button("Stop recording", icon=":material/stop:", key="webcam_stop", disabled=not recording, on_click=stop_recording)
if live.last_frame is not None:
    r3.download_button(
        "Snapshot",
        encode_png(live.last_frame),
        "snapshot.png",
        "image/png",
        key="webcam_snapshot",
        icon=":material/photo_camera:",
        on_click="ignore",
    )

k1, k2 = st.columns([1, 3])
if k1.button("Calibrate neutral (3 s)", key="webcam_calibrate", icon=":material/tune:"):
    live.personal.start(3.0)
live.personal.enabled = k2.toggle("Show calibrated scores", value=True, key="webcam_calibrated")
k2.caption(
    f"Hold a neutral face for 3 s: each face's scores are then re-weighted by its own resting "
    f"expression (p′ ∝ p · q / baseline, with q = {NEUTRAL_TARGET:.0%} neutral), so the face at rest "
    "reads neutral and an emotion shows as much as it grew."
)


# Only the readout reruns (a fragment): every second while frames flow or a recording waits for them,
# every few seconds when idle, so an idle page stays still. The slow poll also catches a camera whose
# start no rerun reported (``playing`` stayed false): the readout then reruns the page, which polls fast.
active = playing or ctx.state.signalling or live.recording is not None or live.streaming()
st.fragment(views.readout, run_every=1.0 if active else IDLE_POLL_S)(live, active)
views.recording(st.session_state.get("webcam_recorded"))
