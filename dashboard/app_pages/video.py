"""Video: an uploaded video → annotated video, per-face emotion timeline and shares, CSV, and per face
the moment each emotion peaked. Long videos show an ETA and can be cancelled; nothing stays on disk."""

import tempfile
from pathlib import Path

import common
import streamlit as st

from fercore.labels import COLORS_HEX, EMOTIONS

HIGHLIGHT_MIN = 0.25  # an emotion whose peak stays below this gets no thumbnail
HIGHLIGHT_FACES = 8  # the most seen faces

st.title("Video")

model = common.require_model()
c1, c2, c3 = st.columns([1, 1, 3])
detector = common.detector_select("video_detector", c1)
stride = c2.number_input(
    "Analyse every n-th frame", 1, 30, 1, key="video_stride", help="2 or 3 halves or thirds the time on long videos"
)
upload = c3.file_uploader("Upload a video", type=common.VIDEO_TYPES, key="video_upload")
if upload is None:
    st.info("Upload a video (mp4, avi, mov, mkv, webm) with faces in it.", icon=":material/movie:")
    st.stop()
if model is None:
    st.stop()

from fercore.inference.batch import ProgressClock  # noqa: E402
from fercore.inference.classify import stream_model_path  # noqa: E402
from fercore.inference.highlights import video_highlights  # noqa: E402
from fercore.inference.pipeline import FramePipeline  # noqa: E402
from fercore.inference.video import emotion_shares, process_video  # noqa: E402

data = upload.getvalue()
job = (common.sha1(data), detector, int(stride), str(model))
result = st.session_state.get("video_result")
if result is None or result["job"] != job:
    if st.session_state.get("video_cancelled") == job:
        st.info("Analysis cancelled.", icon=":material/cancel:")
        st.button("Analyse again", key="video_again", on_click=st.session_state.pop, args=("video_cancelled", None))
        st.stop()
    bar, cancel, clock = st.progress(0.0, text="Analysing the video…"), st.empty(), ProgressClock()
    # Clicking Cancel reruns the page: Streamlit then raises inside the next bar update, which unwinds
    # process_video (it deletes its output) and the temporary folder below; the callback marks the job.
    cancel.button("Cancel", key="video_cancel", on_click=st.session_state.__setitem__, args=("video_cancelled", job))
    try:
        with tempfile.TemporaryDirectory(prefix="fer-video-") as tmp:
            src = Path(tmp) / ("input" + (Path(upload.name).suffix or ".mp4"))
            src.write_bytes(data)
            classifier = common.get_classifier(str(stream_model_path()))  # the int8 twin when shipped
            pipeline = FramePipeline(detector, classifier, stream=True, tracker=True, draw=True)
            res = process_video(
                src,
                Path(tmp) / "annotated.mp4",
                pipeline=pipeline,
                stride=int(stride),
                progress=lambda f: bar.progress(min(1.0, f), text=f"Analysing the video… {clock.text(f)}"),
            )
            moments = video_highlights(
                res.table,
                src,
                HIGHLIGHT_MIN,
                HIGHLIGHT_FACES,
                progress=lambda f: bar.progress(f, text=f"Picking the highlights… {f:.0%}"),
            )
            video = res.out_path.read_bytes()
    except common.USER_ERRORS as exc:
        bar.empty()
        cancel.empty()
        common.show_error(exc, f"Cannot process {upload.name}")
        st.stop()
    bar.empty()
    cancel.empty()
    result = st.session_state["video_result"] = dict(
        job=job, name=upload.name, res=res, video=video, highlights=moments
    )

res, table, stem = result["res"], result["res"].table, Path(result["name"]).stem
if res.warning:
    st.warning(f"{result['name']}: {res.warning}")
m1, m2, m3 = st.columns(3)
m1.metric("Frames", res.frames)
m2.metric("Frame rate", f"{res.fps:.1f} fps" if res.fps else "–")
m3.metric("Faces tracked", table["face_id"].nunique() if len(table) else 0)

left, right = st.columns([3, 2])
left.video(result["video"], format="video/mp4")
right.download_button(
    "Annotated video",
    result["video"],
    f"{stem}_annotated.mp4",
    "video/mp4",
    key="video_dl",
    icon=":material/download:",
    on_click="ignore",
)
right.download_button(
    "Per-frame CSV",
    table.to_csv(index=False),
    f"{stem}_faces.csv",
    "text/csv",
    key="video_csv",
    icon=":material/download:",
    on_click="ignore",
)

if table.empty:
    st.info("No face was found in this video.")
    st.stop()

import plotly.express as px  # noqa: E402

ids = sorted(table["face_id"].unique().tolist())
with right:
    share = emotion_shares(table).melt(id_vars="face_id", var_name="label", value_name="share")
    fig = px.bar(
        share,
        x="face_id",
        y="share",
        color="label",
        color_discrete_map=COLORS_HEX,
        category_orders={"label": list(EMOTIONS)},
        title="Share of each emotion per face",
    )
    fig.update_layout(yaxis_tickformat=".0%", xaxis_type="category")
    st.plotly_chart(fig, key="video_share")

st.subheader("Highlights")
st.caption(
    f"Per face (the {HIGHLIGHT_FACES} most seen), the moment each emotion peaked; emotions that never "
    f"reached {HIGHLIGHT_MIN:.0%} are left out."
)
for face_id in dict.fromkeys(h.face_id for h in result["highlights"]):
    shots = [h for h in result["highlights"] if h.face_id == face_id]
    cols = st.columns(len(EMOTIONS) + 1)
    cols[0].markdown(f"**face {face_id}**")
    for col, h in zip(cols[1:], shots, strict=False):
        col.image(h.image, caption=h.caption(), width="stretch")

face = st.selectbox("Face", ids, key="video_face", format_func=lambda i: f"face {i}")
one = table[table["face_id"] == face]
long = one.melt(id_vars=["time_s"], value_vars=list(EMOTIONS), var_name="emotion", value_name="probability")
fig = px.line(
    long,
    x="time_s",
    y="probability",
    color="emotion",
    color_discrete_map=COLORS_HEX,
    title=f"Emotion timeline — face {face}",
    labels={"time_s": "time (s)"},
)
fig.update_layout(yaxis_range=[0, 1])
st.plotly_chart(fig, key="video_timeline")
