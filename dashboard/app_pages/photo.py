"""Photo: faces and their emotions in uploaded or sample photos, with optional Grad-CAM."""

import json
from pathlib import Path

import streamlit as st

import common
from fercore import catalog, locations
from fercore.image import encode_png

st.title("Photo")

model = common.require_model()
c1, c2, c3 = st.columns([1, 2, 2])
detector = common.detector_select("photo_detector", c1)
uploads = c2.file_uploader("Upload photos", type=common.IMAGE_TYPES, accept_multiple_files=True,
                           key="photo_upload")
photos = locations.photos_dir()
samples = sorted(p.name for p in photos.iterdir() if p.suffix.lower().lstrip(".") in common.IMAGE_TYPES) \
    if photos else []
sample = c3.selectbox("…or a sample photo", ["(none)", *samples], key="photo_sample",
                      disabled=not samples, help=None if samples else "no sample photos folder found")
gradcam = st.toggle("Grad-CAM (where the model looks; loads TensorFlow, slower)", key="photo_gradcam")

inputs: list[tuple[str, bytes]] = [(u.name, u.getvalue()) for u in uploads or []]
if sample != "(none)" and photos:
    inputs.append((sample, (photos / sample).read_bytes()))
if not inputs:
    st.info("Upload one or more photos, or pick a sample photo.", icon=":material/add_photo_alternate:")
    st.stop()
if model is None:
    st.stop()



@st.cache_data(show_spinner="Finding faces…", max_entries=32)
def analyse(name: str, digest: str, _data: bytes, detector: str, model: str):
    """Annotated image and per-face results of one photo (cached by content)."""
    from fercore.draw import annotate
    from fercore.image import load_image

    rgb = load_image(_data, name)
    preds = common.get_pipeline(detector, model)(rgb).faces
    return annotate(rgb, preds), [p.face for p in preds], [p.to_dict() for p in preds]


def gradcam_overlays(faces, keras_path: Path):
    from fercore.explain import gradcam, overlay

    kmodel = common.get_keras_model(str(keras_path))
    return [overlay(face, gradcam(kmodel, face)) for face in faces]


keras_path = catalog.keras_model_for(model) if gradcam else None
if gradcam and keras_path is None:
    st.warning("Grad-CAM needs the Keras model (model.keras) beside the .tflite file; none found.")

for n, (name, data) in enumerate(inputs):
    st.divider()
    st.subheader(name)
    try:
        annotated, faces, records = analyse(name, common.sha1(data), data, detector, str(model))
    except common.USER_ERRORS as exc:
        common.show_error(exc)
        continue
    left, right = st.columns([3, 2])
    left.image(annotated, caption=f"{len(records)} face(s) found", width="stretch")
    with right:
        if not records:
            st.info("No face found. Try another detector (mtcnn is the most thorough), or a photo with a larger face.")
        else:
            st.dataframe([{"face": i + 1, "emotion": r["label"], "confidence": max(r["scores"].values()),
                           "box": r["box"]} for i, r in enumerate(records)], hide_index=True,
                         column_config={"confidence": st.column_config.NumberColumn(format="percent")})
        stem = Path(name).stem
        d1, d2, d3 = st.columns(3)
        d1.download_button("PNG", encode_png(annotated), f"{stem}_annotated.png", "image/png",
                           key=f"png_{n}_{name}", icon=":material/download:")
        import pandas as pd

        table = pd.DataFrame([{"face": i + 1, **dict(zip("xywh", r["box"])), "label": r["label"], **r["scores"]}
                              for i, r in enumerate(records)])
        d2.download_button("CSV", table.to_csv(index=False), f"{stem}_faces.csv", "text/csv",
                           key=f"csv_{n}_{name}", icon=":material/download:")
        d3.download_button("JSON", json.dumps({"image": name, "faces": records}, indent=2),
                           f"{stem}_faces.json", "application/json", key=f"json_{n}_{name}",
                           icon=":material/download:")
    overlays = []
    if keras_path is not None and faces:
        try:
            overlays = gradcam_overlays(faces, keras_path)
        except (ValueError, OSError) as exc:
            common.show_error(exc, "Grad-CAM failed")
    for i, (face, rec) in enumerate(zip(faces, records)):
        cols = st.columns([1, 3, 1] if overlays else [1, 4])
        cols[0].image(face, caption=f"face {i + 1}: {rec['label']}", width=120)
        cols[1].plotly_chart(common.emotion_bar(rec["scores"], height=200), key=f"bar_{n}_{i}_{name}")
        if overlays:
            cols[2].image(overlays[i], caption="Grad-CAM", width=120)
