"""Shared fixtures. Tests on real data look for ../shared/data beside the checkout and skip otherwise."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

# pylibsrtp (aiortc, behind the Webcam page) segfaults when first imported after TensorFlow; the
# dashboard imports it first (dashboard/app.py) and so must this test process.
try:
    import pylibsrtp  # noqa: F401
except ImportError:  # pragma: no cover - webrtc extras missing: those tests skip
    pass

from fercore.data.locations import shared_data_dir
from fercore.paths import MODELS_DIR
from fercore.paths import PROJECT_ROOT as ROOT  # noqa: F401 - the tests take it from here

SHARED_DATA = shared_data_dir()
FER_DIR = SHARED_DATA / "fer2013"
PHOTOS = SHARED_DATA / "photos"
SHIPPED_MODEL_DIR = MODELS_DIR
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # small stored files the tests read

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _need(path: Path, what: str):
    return pytest.mark.skipif(not path.exists(), reason=f"{what} not found at {path} (needs ../shared/data)")


requires_fer = _need(FER_DIR / "train", "FER2013 folder layout")
requires_photos = _need(PHOTOS, "sample photos")
requires_model = pytest.mark.skipif(
    not (SHIPPED_MODEL_DIR / "model.tflite").exists(), reason="no shipped model in models/"
)


def pytest_collection_modifyitems(config, items):
    """Lanes by what a test needs, so ``make test-fast`` can leave out the heavy ones without a list to
    keep up: ``browser`` for everything under tests/browser/, ``data`` for tests that read FER2013 (the
    ``fer_dir`` fixture or the ``requires_fer`` skip; the four sample photos are small enough for the fast
    lane unless a test says otherwise). ``slow`` is marked by hand (training, full runs)."""
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)
        skips = " ".join(str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))
        if "fer_dir" in getattr(item, "fixturenames", ()) or "FER2013" in skips:
            item.add_marker(pytest.mark.data)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own data cache and runs folder."""
    monkeypatch.setenv("FER_CACHE", str(tmp_path_factory.getbasetemp() / "fer-cache"))


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    if not (FER_DIR / "train").exists():
        pytest.skip(f"FER2013 not found at {FER_DIR} (needs ../shared/data)")
    return FER_DIR


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    if not PHOTOS.exists():
        pytest.skip(f"photos not found at {PHOTOS} (needs ../shared/data)")
    return PHOTOS


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generated 48×48 'faces' whose class is visible (a bright bar whose row encodes the class)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 7
    images = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4 + c * 6 : 8 + c * 6, 8:40] = 230
    return images, labels


def write_fer_folder(root: Path, sizes: tuple[int, int], continue_rows: bool) -> Path:
    """root/fer/{train,test}/<class>/NNNNN.png of synthetic faces (``sizes`` = train, test counts).
    ``continue_rows`` numbers the test files after the train ones, like the real set's CSV rows."""
    import cv2

    from fercore.labels import EMOTIONS

    start = 0
    for split, n, seed in (("train", sizes[0], 0), ("test", sizes[1], 1)):
        images, labels = synthetic_faces(n, seed)
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            d = root / "fer" / split / EMOTIONS[lab]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{start + i:05d}.png"), img)
        start += n if continue_rows else 0
    return root / "fer"


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """A small Kaggle-style layout train/<class>/*.png + test/<class>/*.png of synthetic faces."""
    return write_fer_folder(tmp_path, (140, 35), continue_rows=False)


@pytest.fixture
def fer_folder(tmp_path) -> Path:
    """Like ``class_folder`` (70 + 21 faces) but numbered like the real set: one row number per face
    across both splits."""
    return write_fer_folder(tmp_path, (70, 21), continue_rows=True)


@pytest.fixture
def no_export(monkeypatch):
    """Training tests that look at training, not at the (slow) final export."""
    fit_module = importlib.import_module("fercore.train.fit")  # the package's ``fit`` is the function
    monkeypatch.setattr(fit_module, "export_final", lambda run_dir: None)


TINY = {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "stem_width": 8, "dropout": 0.1}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny fernet exported in every format (model.keras/.json/.weights.h5/.tflite)."""
    import keras

    from fercore.models.architectures import build_model, save_model
    from fercore.models.export import export_all

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("tiny-model")
    src = save_model(build_model("fernet", **TINY), out / "src.keras", {"model": "fernet"})
    export_all(src, out / "export", check=False)
    return out / "export"


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory) -> Path:
    """One tiny fernet trained for 3 epochs (every augmentation, dropout and mixup on, 4 steps an epoch)
    on generated faces, without the final export: the uninterrupted run that resume tests compare with,
    trained once per session. Its config.json rebuilds the config (``TrainConfig.from_dict``)."""
    from fercore.train.config import TrainConfig
    from fercore.train.fit import fit

    root = tmp_path_factory.mktemp("trained")
    data = write_fer_folder(root, (140, 35), continue_rows=False)
    base = {"data": str(data), "model_params": TINY, "epochs": 3, "batch_size": 32, "lr": 0.02, "precision": "float32"}
    config = TrainConfig.from_dict({**base, "warmup_epochs": 1, "log_every": 1, "augment": {"mixup": 0.2}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.import_module("fercore.train.fit"), "export_final", lambda run_dir: None)
        assert fit(config, root / "run", verbose=0)["state"] == "finished"
    return root / "run"


def model_weights(file: Path) -> list[np.ndarray]:
    """The weights of a saved Keras model, as arrays (to compare two runs' checkpoints)."""
    from fercore.models.architectures import load_keras_model

    return [np.asarray(w) for w in load_keras_model(file).get_weights()]


def stop_at(run_dir: Path, step: int):
    """A Keras callback that requests a stop of ``run_dir`` when the global step ``step`` ends (in a fresh run)."""
    import itertools

    import keras

    from fercore import runs

    count = itertools.count(1)
    return keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: next(count) == step and runs.request_stop(run_dir)
    )


# ---------------------------------------------------------------------------------------------
# Inference fixtures: a fake model backend, detectors that return fixed boxes, the sample photos.

FIXED_PROBS = np.array([0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1], np.float32)  # "happy" at 0.5

# Face centres (x, y) in the sample photos, measured by eye on the originals.
ASTRONAUT_FACE = (222, 115)
GRACE_FACE = (262, 215)  # grace_hopper.jpg is 512 wide × 600 high
MESSI_FACE = (241, 111)


class FixedBackend:
    """Stands in for a trained model: the same probabilities (happy first) for every face.
    Records the batch size of every call and checks the input the real backends get."""

    def __init__(self, probs: np.ndarray = FIXED_PROBS):
        self.probs = np.asarray(probs, np.float32)
        self.calls: list[int] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and x.shape[1:] == (48, 48, 1), (x.dtype, x.shape)
        self.calls.append(len(x))
        return np.tile(self.probs, (len(x), 1))


class FixedDetector:
    """A FaceDetector that returns the same boxes for every image and records the shapes it saw.
    ``gray=True`` also gives it ``detect_gray`` (the Haar-style entry point)."""

    def __init__(self, boxes=(), gray: bool = False):
        self.boxes = list(boxes)
        self.shapes: list[tuple[int, ...]] = []
        self.resets = 0
        if gray:
            self.detect_gray = self._detect_gray

    def detect(self, rgb: np.ndarray) -> list:
        self.shapes.append(rgb.shape)
        return list(self.boxes)

    def _detect_gray(self, gray: np.ndarray) -> list:
        assert gray.ndim == 2
        self.shapes.append(gray.shape)
        return list(self.boxes)

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture
def fixed_backend() -> FixedBackend:
    return FixedBackend()


@pytest.fixture
def fixed_classifier(fixed_backend):
    """An EmotionClassifier over ``FixedBackend`` (its calls are in ``.backend.calls``)."""
    from fercore.inference.classify import EmotionClassifier

    return EmotionClassifier(backend=fixed_backend)


@pytest.fixture(scope="session")
def shipped_classifier():
    """One EmotionClassifier over the shipped models/model.tflite (skips when it is absent)."""
    path = SHIPPED_MODEL_DIR / "model.tflite"
    if not path.exists():
        pytest.skip(f"no shipped model at {path} (train and ship one: python -m training.ship)")
    from fercore.inference.classify import EmotionClassifier

    return EmotionClassifier(path)


def load_photo(name: str) -> np.ndarray:
    """A sample photo as RGB uint8 (skips when ../shared/data/photos is missing)."""
    if not PHOTOS.exists():
        pytest.skip(f"photos not found at {PHOTOS} (needs ../shared/data)")
    from fercore.inference.image import load_image

    return load_image(PHOTOS / name)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return load_photo("astronaut.png")


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    return load_photo("grace_hopper.jpg")


def encode(rgb: np.ndarray, fmt: str, **save) -> bytes:
    """An array encoded by Pillow (``fmt``: "PNG", "JPEG", …; ``save``: Pillow's save options)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **save)
    return buf.getvalue()


def face_tile(side: int = 150) -> np.ndarray:
    """The astronaut's head (a square crop of astronaut.png) resized to ``side``×``side``."""
    import cv2

    return cv2.resize(load_photo("astronaut.png")[0:256, 96:352], (side, side), interpolation=cv2.INTER_AREA)


def moving_face_frames(n: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """``n`` frames: the astronaut's head (a 150×150 tile) sliding left to right over gray."""
    tile = face_tile(150)
    frames = []
    for i in range(n):
        frame = np.full((height, width, 3), 90, np.uint8)
        x = round(i * (width - 150) / max(n - 1, 1))
        frame[45:195, x : x + 150] = tile
        frames.append(frame)
    return frames


def write_video(
    path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "mpeg4", faststart: bool = False
) -> None:
    """Encode RGB frames into a video file with PyAV."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", container_options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000  # mpeg4's default (200 kb/s) is blocky enough to hide faces
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def contains(box, point: tuple[float, float]) -> bool:
    """Whether ``point`` lies inside ``box`` (edges included)."""
    x, y = point
    return box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h
