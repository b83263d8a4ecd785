"""Shared fixtures. Tests on real data look for ../shared/data beside the checkout and skip otherwise."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
FER_DIR = SHARED_DATA / "fer2013"
PHOTOS = SHARED_DATA / "photos"
SHIPPED_MODEL_DIR = ROOT / "models"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _need(path: Path, what: str):
    return pytest.mark.skipif(not path.exists(), reason=f"{what} not found at {path} (needs ../shared/data)")


requires_fer = _need(FER_DIR / "train", "FER2013 folder layout")
requires_photos = _need(PHOTOS, "sample photos")
requires_model = pytest.mark.skipif(
    not (SHIPPED_MODEL_DIR / "model.tflite").exists(), reason="no shipped model in models/")


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


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """A small Kaggle-style layout train/<class>/*.png + test/<class>/*.png of synthetic faces."""
    import cv2

    from fercore.labels import EMOTIONS

    for split, n, seed in (("train", 140, 0), ("test", 35, 1)):
        images, labels = synthetic_faces(n, seed)
        for i, (img, lab) in enumerate(zip(images, labels)):
            d = tmp_path / "fer" / split / EMOTIONS[lab]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:05d}.png"), img)
    return tmp_path / "fer"


TINY = {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "stem_width": 8, "dropout": 0.1}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny fernet exported in every format (model.keras/.json/.weights.h5/.tflite)."""
    import keras

    from fercore.export import export_all
    from fercore.model import build_model, save_model

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("tiny-model")
    src = save_model(build_model("fernet", **TINY), out / "src.keras", {"model": "fernet"})
    export_all(src, out / "export", check=False)
    return out / "export"
