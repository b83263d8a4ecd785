"""Photo: faces and their emotions in uploaded photos, zips of photos or a sample photo. One table and
one CSV/JSON for the whole batch; per photo the annotated image, bars and Grad-CAM when there are few."""

import json
from pathlib import Path

import common
import streamlit as st

from fercore.data import locations
from fercore.inference.batch import BatchLimits
from fercore.models import catalog

DETAIL_MAX = 4  # photos shown one by one (annotated image, bars, Grad-CAM); more go to the gallery
GALLERY_PAGE = 40
LIMITS = BatchLimits()

st.title("Photo")
model = common.require_model()
c1, c2, c3 = st.columns([1, 2, 2])
detector = common.detector_select("photo_detector", c1)
if model is not None:
    model = common.tier_select("photo_model", c1)
uploads = c2.file_uploader(
    "Upload photos or zips of photos",
    type=[*common.IMAGE_TYPES, "zip"],
    accept_multiple_files=True,
    key="photo_upload",
    help=f"{LIMITS.describe()}. Files that cannot be read are skipped and listed.",
)
photos = locations.photos_dir()
samples = sorted(p.name for p in photos.iterdir() if p.suffix.lower()[1:] in common.IMAGE_TYPES) if photos else []
sample = c3.selectbox("…or a sample photo", ["(none)", *samples], key="photo_sample", disabled=not samples)
t1, t2 = st.columns(2)
whole = t1.toggle(
    "When no face is found, classify the whole image as one face",
    key="photo_whole",
    help="For images that are face crops already (such as FER2013's 48×48 faces). Such faces are "
    "marked “whole image” in the table and `whole_image` in the CSV and JSON.",
)
gradcam = t2.toggle("Grad-CAM (where the model looks; loads TensorFlow, slower)", key="photo_gradcam")
st.caption(f"Batches: {LIMITS.describe()}.")

inputs: list[tuple[str, bytes]] = [(u.name, u.getvalue()) for u in uploads or []]
if sample != "(none)" and photos:
    inputs.append((sample, (photos / sample).read_bytes()))
if not inputs:
    st.info("Upload photos (or zips of photos), or pick a sample photo.", icon=":material/add_photo_alternate:")
    st.stop()
if model is None:
    st.stop()

from fercore.inference.batch import ImageResult, ProgressClock, predict_images, read_uploads, to_table  # noqa: E402
from fercore.inference.image import encode_png  # noqa: E402
from fercore.inference.pipeline import FramePipeline  # noqa: E402

job = (tuple((n, common.sha1(d)) for n, d in inputs), detector, str(model), whole)
state = st.session_state.get("photo_batch")
if state is None or state["job"] != job:
    images, skipped = read_uploads(inputs, LIMITS)
    try:
        pipe = common.get_pipeline(detector, str(model))
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Cannot load the detector or the model")
        st.stop()
    if whole:  # the same shared detector and classifier, plus the fallback: cheap to build
        pipe = FramePipeline(pipe.detector, pipe.classifier, whole_image_fallback=True)
    bar, clock, results = st.progress(0.0, text="Finding faces…"), ProgressClock(), []
    side = 960 if len(images) <= DETAIL_MAX else 160  # annotated image, or a gallery thumbnail
    for i, res in enumerate(predict_images(pipe, images, workers=2, preview=side), 1):
        results.append(res)
        bar.progress(i / len(images), text=f"Finding faces… {i}/{len(images)} images · {clock.text(i / len(images))}")
    bar.empty()
    state = {"job": job, "results": results, "skipped": [ImageResult(n, error=why) for n, why in skipped]}
    st.session_state["photo_batch"] = state

results, every = state["results"], state["results"] + state["skipped"]
m1, m2, m3, m4 = st.columns(4)
m1.metric("Images", len(results))
m2.metric("Faces", sum(len(r.faces) for r in results))
m3.metric("Without a face", sum(not r.faces and r.error is None for r in results))
m4.metric("Skipped or unreadable", sum(r.error is not None for r in every))
if state["skipped"]:
    with st.expander(f"Skipped: {len(state['skipped'])}", icon=":material/warning:"):
        st.dataframe([{"file": r.file, "why": r.error} for r in state["skipped"]], hide_index=True)
downloads = [
    ("CSV (all faces)", to_table(every).to_csv(index=False), "faces.csv", "text/csv"),
    ("JSON (all images)", json.dumps([r.to_dict() for r in every], indent=2), "faces.json", "application/json"),
]
for col, (label, data, file, mime) in zip(st.columns([1, 1, 3]), downloads, strict=False):
    col.download_button(label, data, file, mime, key=f"photo_{file}", icon=":material/download:")
if len(every) > 1:
    st.dataframe(
        [r.summary() for r in every],
        hide_index=True,
        key="photo_table",
        column_config={"labels": st.column_config.TextColumn("label per face")},
    )

if len(results) > DETAIL_MAX:  # the gallery: annotated thumbnails, a page at a time
    st.subheader("Gallery")
    pages = (len(results) + GALLERY_PAGE - 1) // GALLERY_PAGE
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="photo_page")) if pages > 1 else 1
    shown = [r for r in results[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE] if r.preview is not None]
    captions = [f"{Path(r.file).name}: {r.summary()['labels'] or 'no face'}" for r in shown]
    common.face_grid([r.preview for r in shown], captions, cols=5, width=160)
    st.stop()

keras_path = catalog.keras_model_for(model) if gradcam else None
if gradcam and keras_path is None:
    st.warning("Grad-CAM needs the Keras model (model.keras) beside the .tflite file; none found.")

for n, res in enumerate(results):
    st.divider()
    st.subheader(res.file)
    if res.error is not None:
        common.show_error(ValueError(res.error))
        continue
    left, right = st.columns([3, 2])
    left.image(res.preview, caption=f"{len(res.faces)} face(s) found", width="stretch")
    with right:
        if not res.faces:
            st.info(
                "No face found. Try another detector (mtcnn is the most thorough), a photo with a larger "
                "face, or classify the whole image (toggle above)."
            )
        else:
            st.dataframe(to_table([res]).drop(columns=["file", "face_id", "error"]), hide_index=True)
        png = encode_png(res.preview)
        st.download_button("Annotated PNG", png, f"{Path(res.file).stem}_annotated.png", key=f"png_{n}")
    overlays = []
    if keras_path is not None and res.faces:
        from fercore.inference.explain import gradcam as grad_cam
        from fercore.inference.explain import overlay

        try:
            kmodel = common.get_keras_model(str(keras_path))
            overlays = [overlay(f.face, grad_cam(kmodel, f.face)) for f in res.faces]
        except (ValueError, OSError) as exc:
            common.show_error(exc, "Grad-CAM failed")
    for i, f in enumerate(res.faces):
        cols = st.columns([1, 3, 1] if overlays else [1, 4])
        cols[0].image(f.face, caption=f"face {i + 1}: {f.label}", width=120)
        cols[1].plotly_chart(common.emotion_bar(f.scores, height=200), key=f"bar_{n}_{i}")
        if overlays:
            cols[2].image(overlays[i], caption="Grad-CAM", width=120)
