"""Video: an uploaded video → annotated video, per-face emotion timeline, emotion shares, CSV."""

import tempfile
from pathlib import Path

import streamlit as st

import common
from fercore.labels import COLORS_HEX, EMOTIONS

st.title("Video")

model = common.require_model()
c1, c2, c3 = st.columns([1, 1, 3])
detector = common.detector_select("video_detector", c1)
stride = c2.number_input("Analyse every n-th frame", 1, 30, 1, key="video_stride",
                         help="2 or 3 halves or thirds the time on long videos")
upload = c3.file_uploader("Upload a video", type=common.VIDEO_TYPES, key="video_upload")
if upload is None:
    st.info("Upload a video (mp4, avi, mov, mkv, webm) with faces in it.", icon=":material/movie:")
    st.stop()
if model is None:
    st.stop()

from fercore.pipeline import FramePipeline  # noqa: E402
from fercore.video import process_video  # noqa: E402

data = upload.getvalue()
job = (common.sha1(data), detector, int(stride), str(model))
result = st.session_state.get("video_result")
if result is None or result["job"] != job:
    work = Path(tempfile.mkdtemp(prefix="fer-video-"))
    src = work / ("input" + (Path(upload.name).suffix or ".mp4"))
    src.write_bytes(data)
    bar = st.progress(0.0, text="Analysing the video…")
    try:
        pipeline = FramePipeline(detector, common.get_classifier(str(model)), stream=True, tracker=True, draw=True)
        res = process_video(src, work / "annotated.mp4", work / "faces.csv", pipeline=pipeline,
                            stride=int(stride),
                            progress=lambda f: bar.progress(min(1.0, float(f)), text=f"Analysing the video… {f:.0%}"))
    except common.USER_ERRORS as exc:
        bar.empty()
        common.show_error(exc, f"Cannot process {upload.name}")
        st.stop()
    bar.empty()
    result = {"job": job, "name": upload.name, "warning": res.warning, "frames": res.frames, "fps": res.fps,
              "table": res.table, "video": Path(res.out_path).read_bytes(),
              "video_name": Path(res.out_path).name}
    st.session_state["video_result"] = result

table = result["table"]
if result.get("warning"):
    st.warning(f"{result['name']}: {result['warning']}")
m1, m2, m3 = st.columns(3)
m1.metric("Frames", result["frames"])
m2.metric("Frame rate", f"{result['fps']:.1f} fps" if result["fps"] else "–")
m3.metric("Faces tracked", table["face_id"].nunique() if len(table) else 0)

left, right = st.columns([3, 2])
fmt = "video/webm" if result["video_name"].endswith(".webm") else "video/mp4"
left.video(result["video"], format=fmt)
stem = Path(result["name"]).stem
right.download_button("Annotated video", result["video"], f"{stem}_annotated{Path(result['video_name']).suffix}",
                      fmt, key="video_dl", icon=":material/download:")
right.download_button("Per-frame CSV", table.to_csv(index=False), f"{stem}_faces.csv", "text/csv",
                      key="video_csv", icon=":material/download:")

if table.empty:
    st.info("No face was found in this video.")
    st.stop()

import plotly.express as px  # noqa: E402

ids = sorted(table["face_id"].unique().tolist())
with right:
    share = (table.groupby("face_id")["label"].value_counts(normalize=True).rename("share").reset_index())
    fig = px.bar(share, x="face_id", y="share", color="label", color_discrete_map=COLORS_HEX,
                 category_orders={"label": list(EMOTIONS)}, title="Share of each emotion per face")
    fig.update_layout(yaxis_tickformat=".0%", xaxis_type="category")
    st.plotly_chart(fig, key="video_share")

face = st.selectbox("Face", ids, key="video_face", format_func=lambda i: f"face {i}")
one = table[table["face_id"] == face]
long = one.melt(id_vars=["time_s"], value_vars=[e for e in EMOTIONS if e in one.columns],
                var_name="emotion", value_name="probability")
fig = px.line(long, x="time_s", y="probability", color="emotion", color_discrete_map=COLORS_HEX,
              title=f"Emotion timeline — face {face}", labels={"time_s": "time (s)"})
fig.update_layout(yaxis_range=[0, 1])
st.plotly_chart(fig, key="video_timeline")
