"""Photo: faces and their emotions in uploaded photos, zips of photos or a sample photo. One table and
one CSV/JSON for the whole batch; per photo the annotated image, bars and Grad-CAM when there are few."""

from pathlib import Path

import common
import photo_views as views
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
    max_upload_size=LIMITS.max_total_bytes // 2**20,  # a zip may hold the whole batch
    help=f"{LIMITS.describe()}. Files that cannot be read are skipped and listed with the reason.",
)
photos = locations.photos_dir()
samples = sorted(p.name for p in photos.iterdir() if p.suffix.lower()[1:] in common.IMAGE_TYPES) if photos else []
sample = c3.selectbox("…or a sample photo", ["(none)", *samples], key="photo_sample", disabled=not samples)
t1, t2 = st.columns([3, 2])
whole = t1.toggle(
    "When no face is found, classify the whole image",
    key="photo_whole",
    help="For images that are face crops already (such as FER2013's 48×48 faces). Such faces are "
    "marked “whole image” in the table and `whole_image` in the CSV and JSON.",
)
gradcam = t2.toggle(
    "Grad-CAM (where the model looks)", key="photo_gradcam", help="Loads TensorFlow the first time: slower."
)
st.caption(f"A batch holds {LIMITS.describe()}.")

inputs: list[tuple[str, bytes]] = [(u.name, u.getvalue()) for u in uploads or []]
if sample != "(none)" and photos:
    inputs.append((sample, (photos / sample).read_bytes()))
if not inputs:
    st.info("Upload photos (or zips of photos), or pick a sample photo.", icon=":material/add_photo_alternate:")
    st.stop()
if model is None:
    st.stop()

from fercore.inference.batch import (  # noqa: E402
    BatchReport,
    ProgressClock,
    annotated_preview,
    find_upload,
    predict_images,
    read_uploads,
)
from fercore.inference.image import load_image  # noqa: E402
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
    state = {"job": job, "report": BatchReport.of(results, skipped)}
    st.session_state["photo_batch"] = state

report: BatchReport = state["report"]
views.batch_account(report)
shown, gallery = report.analysed, len(report.analysed) > DETAIL_MAX
if gallery:  # the gallery: annotated thumbnails, a page at a time; one opens in detail
    st.subheader("Gallery")
    pages = (len(shown) + GALLERY_PAGE - 1) // GALLERY_PAGE
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="photo_page")) if pages > 1 else 1
    thumbs = [r for r in shown[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE] if r.preview is not None]
    captions = [f"{Path(r.file).name}: {r.summary()['labels'] or 'no face'}" for r in thumbs]
    common.face_grid([r.preview for r in thumbs], captions, cols=5, width=160)
    names = [r.file for r in shown]
    picked = st.selectbox("Open a photo to see its faces", names, index=None, key="photo_open", placeholder="(none)")
    if picked is None:
        st.stop()
    shown = [r for r in shown if r.file == picked]

keras_path = catalog.keras_model_for(model) if gradcam else None
if gradcam and keras_path is None:
    st.warning("Grad-CAM needs the Keras model (model.keras) beside the .tflite file; none found.")

for n, res in enumerate(shown):
    st.divider()
    st.subheader(res.file)
    preview = res.preview
    if gallery:  # only a thumbnail was kept: draw this photo again, larger
        preview = annotated_preview(load_image(find_upload(inputs, res.file, LIMITS) or b"", res.file), res.faces, 960)
    overlays = []
    if keras_path is not None and res.faces:
        from fercore.inference.explain import gradcam as grad_cam
        from fercore.inference.explain import overlay

        try:
            kmodel = common.get_keras_model(str(keras_path))
            overlays = [overlay(f.face, grad_cam(kmodel, f.face)) for f in res.faces]
        except (ValueError, OSError) as exc:
            common.show_error(exc, "Grad-CAM failed")
    views.photo_detail(res, preview, str(n), overlays)
