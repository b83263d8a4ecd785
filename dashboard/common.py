"""What several dashboard pages share: Streamlit caching of fercore's resources, and small widgets.

Pages import it as ``import common`` (Streamlit puts the main script's folder on sys.path). Logic —
dataset discovery, the model registry, run folders, pipelines — lives in fercore; this module only
caches its objects per server and draws shared widgets. Heavy modules (plotly, cv2, tensorflow) are
imported inside the functions that need them, so the home page starts fast.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from fercore.data import locations
from fercore.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fercore.labels import COLORS_HEX, EMOTIONS
from fercore.models import catalog
from fercore.types import FerError

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"]
VIDEO_TYPES = ["mp4", "avi", "mov", "mkv", "webm", "m4v"]
DATA_TYPES = ["csv", "gz", "zip"]
# Errors that mean "the user's input is bad": shown with st.error, the app keeps working.
USER_ERRORS = (FerError, ValueError, FileNotFoundError)
ROOTS_HELP = (
    "A FER2013 .csv/.csv.gz, or a folder of <class>/ image folders (or <split>/<class>/), under one of "
    "the data roots: $FER_DATA, the project's data/ folder, the shared data beside the checkout, or a "
    "folder listed in $FER_DATA_ROOTS."
)


def show_error(exc: BaseException, what: str = "") -> None:
    """One clear message for bad input."""
    prefix = f"{what}: " if what else ""
    st.error(f"{prefix}{exc}", icon=":material/error:")


def file_key(path: Path) -> str:
    """A cache key that changes when the file or folder changes."""
    try:
        st_ = path.stat()
        return f"{path.resolve()}|{st_.st_size}|{st_.st_mtime_ns}"
    except OSError:
        return str(path)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# Cached resources (one per server process, shared by every session: all are thread-safe)


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def get_dataset(path: str, key: str = "") -> Any:
    """A dataset from a path, kept in memory (fercore.data.loader also caches on disk)."""
    from fercore.data.loader import load_dataset

    return load_dataset(path)


@st.cache_resource(show_spinner="Reading the uploaded dataset…", max_entries=2)
def get_uploaded_dataset(name: str, digest: str, _data: bytes) -> Any:
    """A dataset from uploaded bytes (CSV, .csv.gz or a zip of the folder layout); nothing stays on disk."""
    from fercore.data.uploads import load_uploaded

    return load_uploaded(name, _data)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def get_classifier(model_path: str) -> Any:
    from fercore.models.ensemble import load_classifier

    return load_classifier(model_path)


@st.cache_resource(show_spinner="Loading detector and model…", max_entries=6)
def get_pipeline(detector: str, model_path: str) -> Any:
    """A stateless FramePipeline (no tracker) for single images, shared by every session."""
    from fercore.inference.pipeline import FramePipeline

    return FramePipeline(detector, get_classifier(model_path))


@st.cache_resource(show_spinner="Loading the Keras model for Grad-CAM…", max_entries=2)
def get_keras_model(path: str) -> Any:
    from fercore.models.architectures import load_keras_model

    return load_keras_model(path)


# ----------------------------------------------------------------------------------------------
# Widgets


def require_model() -> Path | None:
    """The shipped model, or a clear warning (with what to do) and None."""
    model = catalog.shipped_model()
    if model is None:
        st.warning(
            "No trained model found (looked for `$FER_MODEL`, `models/model.tflite`, "
            "`models/model.keras`). Train one on the **Train** page or run "
            "`python -m training.train`, then export it to `models/`.",
            icon=":material/model_training:",
        )
    return model


def tier_select(key: str, where: Any = st) -> Path:
    """The shipped tier to use (fast, or accurate when installed)."""
    options = catalog.tiers()
    label = where.selectbox(
        "Model",
        list(options),
        key=key,
        disabled=len(options) < 2,
        format_func=lambda name: name.split(" (")[0],  # "fast", "accurate": the details are in the help
        help="fast: one network; accurate: an ensemble of three networks with test-time augmentation "
        "(better, several times slower)",
    )
    return options[label]


def detector_select(key: str, where: Any = st) -> str:
    return str(
        where.selectbox(
            "Face detector",
            list(DETECTORS),
            index=list(DETECTORS).index(DEFAULT_DETECTOR),
            key=key,
            help="blaze: BlazeFace, fast and finds small and turned faces (default); haar: OpenCV's "
            "classic cascade, frontal faces from 1/8 of the image height; mtcnn: accurate on hard "
            "faces, but slow (it runs on TensorFlow, which takes a few seconds to load the first time)",
        )
    )


def dataset_input(label: str, key: str, where: Any = st) -> Path | None:
    """A dataset path field limited to the data roots; None (with the reason shown) when refused."""
    default = locations.find_dataset()
    text = where.text_input(label, value=str(default or ""), key=key, help=ROOTS_HELP)
    try:
        return locations.check_dataset_path(text)
    except USER_ERRORS as exc:
        show_error(exc, "Dataset")
        return None


def emotion_bar(scores: dict[str, float], height: int = 220) -> Any:
    """A plotly bar chart of the 7 probabilities in FER2013 order."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=[scores.get(e, 0.0) for e in EMOTIONS],
            y=list(EMOTIONS),
            orientation="h",
            marker_color=[COLORS_HEX[e] for e in EMOTIONS],
            text=[f"{scores.get(e, 0.0):.0%}" for e in EMOTIONS],
            textposition="auto",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=10, t=10, b=0),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def face_grid(images: Any, captions: list[str] | None = None, cols: int = 8, width: int = 80) -> None:
    """Small faces in a grid (48×48 upscaled for display)."""
    import numpy as np

    images = list(images)
    if not images:
        st.caption("nothing to show")
        return
    captions = captions or [""] * len(images)
    for start in range(0, len(images), cols):
        row = st.columns(cols)
        for col, img, cap in zip(row, images[start : start + cols], captions[start : start + cols], strict=False):
            col.image(np.clip(np.asarray(img), 0, 255).astype("uint8"), caption=cap or None, width=width)


def paged_face_grid(images: Any, idx: Any, captions: list[str], key: str, what: str, per_page: int = 48) -> None:
    """Faces ``images[idx]`` (captions aligned with ``idx``), ``per_page`` to a page with a pager."""
    n_pages = max(1, -(-len(idx) // per_page))
    page = st.pagination(n_pages, key=key)
    lo = (page - 1) * per_page
    st.caption(f"{len(idx):,} {what} · page {page} of {n_pages}")
    face_grid(images[idx[lo : lo + per_page]], captions[lo : lo + per_page], cols=12, width=64)
