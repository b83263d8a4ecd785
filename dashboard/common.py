"""What several dashboard pages share: paths, cached loaders (st.cache_resource / st.cache_data) and
small widgets. Pages import it as ``import common`` (Streamlit puts the main script's folder on
sys.path).

Heavy modules (plotly, cv2, fercore's predictor, tensorflow) are imported inside the functions
that need them, so the home page starts fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import streamlit as st

from fercore.labels import COLORS_HEX, EMOTIONS

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"]
VIDEO_TYPES = ["mp4", "avi", "mov", "mkv", "webm", "m4v"]
DATA_TYPES = ["csv", "gz", "zip"]

# Errors that mean "the user's input is bad": shown with st.error, the app keeps working.
try:  # these land in fercore progressively; a missing one must not break the page
    from fercore.data import DataError
except ImportError:  # pragma: no cover
    DataError = ValueError  # type: ignore[misc,assignment]


def show_error(exc: BaseException, what: str = "") -> None:
    """One clear message for bad input."""
    prefix = f"{what}: " if what else ""
    st.error(f"{prefix}{exc}", icon=":material/error:")


# ----------------------------------------------------------------------------------------------
# Locations


def data_candidates() -> list[Path]:
    """Where the dataset is looked for, in order: $FER_DATA, data/ in the project, ../shared/data/fer2013."""
    out: list[Path] = []
    env = os.environ.get("FER_DATA")
    if env:
        out.append(Path(env).expanduser())
    data = ROOT / "data"
    out += [data / "fer2013.csv", data / "fer2013.csv.gz", data / "fer2013", data]
    out.append(SHARED_DATA / "fer2013")
    return out


def looks_like_dataset(path: Path) -> bool:
    """Cheap check (no image is read): a FER2013 CSV, or a folder with class folders (one or two levels)."""
    from fercore.labels import canonical_emotion

    if path.is_file():
        name = path.name.lower()
        return name.endswith(".csv") or name.endswith(".csv.gz")
    if not path.is_dir():
        return False

    def has_classes(folder: Path) -> bool:
        try:
            return any(c.is_dir() and canonical_emotion(c.name) for c in folder.iterdir())
        except OSError:
            return False

    if has_classes(path):
        return True
    try:
        return any(c.is_dir() and has_classes(c) for c in path.iterdir())
    except OSError:
        return False


def find_dataset() -> Path | None:
    """The configured dataset, or None when none of the candidate places holds one."""
    env = os.environ.get("FER_DATA")
    if env:  # an explicit setting wins, even when wrong (the page then says why)
        return Path(env).expanduser()
    for cand in data_candidates():
        if cand.exists() and looks_like_dataset(cand):
            return cand
    return None


def check_dataset_path(path: str | Path) -> Path:
    """The path if it looks like a dataset; FileNotFoundError / DataError with a clear message otherwise."""
    p = Path(str(path).strip()).expanduser()
    if not str(path).strip():
        raise DataError("no dataset path given")
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if not looks_like_dataset(p):
        raise DataError(
            f"{p}: not a dataset (expected a FER2013 .csv/.csv.gz, or a folder of <class>/ image "
            "folders, or <split>/<class>/ as in the Kaggle layout)"
        )
    return p


def runs_dir() -> Path:
    """Training runs: $FER_RUNS, else runs/ in the project."""
    env = os.environ.get("FER_RUNS")
    return Path(env).expanduser() if env else ROOT / "runs"


def photos_dir() -> Path | None:
    p = SHARED_DATA / "photos"
    return p if p.is_dir() else None


def shipped_model() -> Path | None:
    """The shipped model file ($FER_MODEL or models/model.tflite|.keras), None if absent."""
    from fercore.classify import default_model_path

    p = Path(default_model_path())
    return p if p.exists() else None


def model_card() -> dict[str, Any] | None:
    """metrics.json of the shipped model (beside it, else in models/), None if absent."""
    cands = []
    model = shipped_model()
    if model is not None:
        cands.append(model.parent / "metrics.json")
    cands.append(MODELS_DIR / "metrics.json")
    for c in cands:
        try:
            return json.loads(c.read_text())
        except (OSError, ValueError):
            continue
    return None


def available_models() -> dict[str, Path]:
    """Models the user can pick: the shipped one, then each run's export (or best checkpoint)."""
    from fercore import runs

    out: dict[str, Path] = {}
    shipped = shipped_model()
    if shipped is not None:
        out[f"shipped ({shipped.name})"] = shipped
    for run in runs.list_runs(runs_dir()):
        for rel in ("export/model.tflite", "export/model.keras", runs.BEST, runs.LAST):
            if (run / rel).exists():
                out[f"run {run.name} ({Path(rel).name})"] = run / rel
                break
    return out


def keras_model_for(model_path: Path) -> Path | None:
    """The Keras file beside a model (needed for Grad-CAM), None when there is none."""
    model_path = Path(model_path)
    if model_path.suffix in (".keras", ".json"):
        return model_path
    for name in ("model.keras", "model.json"):
        cand = model_path.parent / name
        if cand.exists():
            return cand
    return None


def export_files(model_path: Path) -> dict[str, Path]:
    """The export formats that exist beside a model file (model.json + weights, .keras, .tflite)."""
    try:
        from fercore.export import EXPORT_NAMES
    except ImportError:  # pragma: no cover
        EXPORT_NAMES = {"keras": "model.keras", "json": "model.json", "weights": "model.weights.h5",
                        "tflite": "model.tflite"}
    folder = Path(model_path).parent
    return {k: folder / v for k, v in EXPORT_NAMES.items() if (folder / v).exists()}


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
# Cached resources


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def get_dataset(path: str, key: str = ""):
    """A dataset from a path, kept in memory (fercore.data also caches on disk)."""
    from fercore.data import load_dataset

    return load_dataset(path)


@st.cache_resource(show_spinner="Reading the uploaded dataset…", max_entries=2)
def get_uploaded_dataset(name: str, digest: str, _data: bytes):
    """A dataset from uploaded bytes (CSV, .csv.gz or a zip of the folder layout)."""
    import tempfile

    workdir = Path(tempfile.gettempdir()) / "fer-dashboard-uploads" / digest
    workdir.mkdir(parents=True, exist_ok=True)
    from fercore.data import load_uploaded

    return load_uploaded(name, _data, workdir)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def get_classifier(model_path: str):
    from fercore.classify import EmotionClassifier

    return EmotionClassifier(model_path)


@st.cache_resource(show_spinner="Loading detector and model…", max_entries=6)
def get_predictor(detector: str, model_path: str, slot: str = "shared"):
    """A Predictor and the lock that serialises its use (LiteRT and OpenCV's cascade are not
    re-entrant). ``slot`` gives long jobs (a video) their own instance so the webcam never waits."""
    from fercore.predictor import Predictor

    return Predictor(detector=detector, classifier=get_classifier(model_path)), threading.Lock()


@st.cache_resource(show_spinner="Loading the Keras model for Grad-CAM…", max_entries=2)
def get_keras_model(path: str):
    from fercore.model import load_keras_model

    return load_keras_model(path)


# ----------------------------------------------------------------------------------------------
# Widgets


def require_model() -> Path | None:
    """The shipped model, or a clear warning (with what to do) and None."""
    model = shipped_model()
    if model is None:
        st.warning(
            "No trained model found (looked for `$FER_MODEL`, `models/model.tflite`, "
            "`models/model.keras`). Train one on the **Train** page or run "
            "`python -m training.train`, then export it to `models/`.",
            icon=":material/model_training:",
        )
    return model


def detector_select(key: str, where=st) -> str:
    try:
        from fercore.detect import DETECTORS
    except ImportError:  # pragma: no cover
        DETECTORS = ("blaze", "haar", "mtcnn")
    return where.selectbox(
        "Face detector", list(DETECTORS), index=0, key=key,
        help="blaze: BlazeFace, fast and finds small and turned faces (default); haar: OpenCV's "
             "classic cascade, frontal faces from 1/8 of the image height; mtcnn: accurate on hard "
             "faces, but slow (it runs on TensorFlow, which takes a few seconds to load the first time)",
    )


def emotion_bar(scores: dict[str, float], height: int = 220):
    """A plotly bar chart of the 7 probabilities in FER2013 order."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(
        x=[scores.get(e, 0.0) for e in EMOTIONS], y=list(EMOTIONS), orientation="h",
        marker_color=[COLORS_HEX[e] for e in EMOTIONS],
        text=[f"{scores.get(e, 0.0):.0%}" for e in EMOTIONS], textposition="auto",
    ))
    fig.update_layout(height=height, margin=dict(l=0, r=10, t=10, b=0),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return fig


def face_grid(images, captions: list[str] | None = None, cols: int = 8, width: int = 80) -> None:
    """Small faces in a grid (48×48 upscaled for display)."""
    import numpy as np

    images = list(images)
    if not images:
        st.caption("nothing to show")
        return
    captions = captions or [""] * len(images)
    for start in range(0, len(images), cols):
        row = st.columns(cols)
        for col, img, cap in zip(row, images[start:start + cols], captions[start:start + cols]):
            col.image(np.clip(np.asarray(img), 0, 255).astype("uint8"), caption=cap or None, width=width)


def png_bytes(rgb) -> bytes:
    """An RGB image as PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise ValueError("could not encode PNG")
    return buf.tobytes()


def evaluate_with_progress(model_path, dataset, tta: bool, progress):
    """fercore.evaluate with the cached classifier (loaded once) and a progress callback."""
    from fercore.evaluate import evaluate

    if len(dataset) == 0:
        raise DataError("the split has no images to evaluate")
    backend = get_classifier(str(model_path)).backend
    return evaluate(backend, dataset, tta=tta, progress=progress, model_name=str(model_path))


# ----------------------------------------------------------------------------------------------
# Webcam: what runs in streamlit-webrtc's worker thread (never touches st.*)


class LiveResults:
    """Per-session hand-over from the frame callback to the page: a queue of per-frame results
    ``(time, latency_s, faces)``, a frame counter and this session's FaceTracker."""

    def __init__(self, maxsize: int = 600) -> None:
        import queue

        from fercore.track import FaceTracker

        self.queue = queue.Queue(maxsize=maxsize)
        self.tracker = FaceTracker()
        self.frames = 0
        self._lock = threading.Lock()
        self.detector = None  # this session's stream detector (Haar follows faces between scans)
        self.detector_name = ""

    def use_detector(self, name: str) -> None:
        """Give this stream its own detector (a tracking Haar detector for "haar")."""
        from fercore.detect import make_stream_detector

        if name != self.detector_name:
            self.detector = make_stream_detector(name)
            self.detector_name = name

    def record(self, t: float, latency: float, preds) -> None:
        import queue

        with self._lock:
            self.frames += 1
        faces = [{"face": int(p.face_id) if p.face_id is not None else i + 1, "label": p.label,
                  "scores": {k: float(v) for k, v in p.scores.items()}, "box": p.box.as_list()}
                 for i, p in enumerate(preds)]
        try:
            self.queue.put_nowait((t, latency, faces))
        except queue.Full:  # nobody is reading (tab hidden): drop the oldest result
            try:
                self.queue.get_nowait()
                self.queue.put_nowait((t, latency, faces))
            except (queue.Empty, queue.Full):
                pass


def make_frame_callback(live: LiveResults, predictor, lock):
    """streamlit-webrtc ``video_frame_callback``: predict → track → draw; results to ``live``."""
    import time

    import av

    from fercore.draw import annotate

    def video_frame_callback(frame: "av.VideoFrame") -> "av.VideoFrame":
        t0 = time.perf_counter()
        rgb = frame.to_ndarray(format="rgb24")
        with lock:
            if live.detector is not None:
                preds = predictor.predict_faces(rgb, live.detector.detect(rgb))
            else:
                preds = predictor.predict(rgb)
        preds = live.tracker.update(preds)
        out = annotate(rgb, preds)
        live.record(time.time(), time.perf_counter() - t0, preds)
        return av.VideoFrame.from_ndarray(out, format="rgb24")  # pts/time_base are copied by the library

    return video_frame_callback
