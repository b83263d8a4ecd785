"""Emotion classification of 48×48 faces: LiteRT for speed (no tensorflow import), Keras fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from fercore.labels import EMOTIONS
from fercore.preprocess import to_model_input

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def default_model_path() -> Path:
    """The shipped model: ``$FER_MODEL`` or ``models/model.tflite`` (``model.keras`` if no tflite)."""
    import os

    env = os.environ.get("FER_MODEL")
    if env:
        return Path(env)
    tfl = MODELS_DIR / "model.tflite"
    return tfl if tfl.exists() else MODELS_DIR / "model.keras"


class Backend(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 48, 48, 1) float32 0–255 → (n, 7) probabilities."""
        ...


class TFLiteBackend:
    """Runs a .tflite model with LiteRT; resizes its batch dimension to the number of faces."""

    def __init__(self, path: str | Path, num_threads: int = 2):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - LiteRT missing: TensorFlow's copy
            from tensorflow.lite import Interpreter  # type: ignore[no-redef]
        self.path = Path(path)
        self._interp = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if n != self._batch:
            self._interp.resize_tensor_input(self._in, list(x.shape), strict=False)
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in, np.ascontiguousarray(x, dtype=np.float32))
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out))


class KerasBackend:
    """Runs a .keras / model.json model with ``model(x, training=False)`` (never ``predict`` per face)."""

    def __init__(self, path_or_model):
        from fercore.model import load_keras_model

        self.model = load_keras_model(path_or_model) if isinstance(path_or_model, (str, Path)) else path_or_model

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        return np.asarray(self.model(x, training=False))


def load_backend(path: str | Path | None = None) -> Backend:
    """LiteRT for .tflite files, Keras for .keras/.json."""
    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".tflite":
        return TFLiteBackend(path)
    return KerasBackend(path)


class EmotionClassifier:
    """Classifies a stack of 48×48 uint8 faces in one call."""

    def __init__(self, model_path: str | Path | None = None, backend: Backend | None = None):
        self.backend = backend or load_backend(model_path)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """(n, 48, 48) uint8 → (n, 7) probabilities in FER2013 class order."""
        return self.backend.predict(to_model_input(faces))

    def predict(self, faces: np.ndarray) -> list[str]:
        """Most likely emotion per face."""
        return [EMOTIONS[i] for i in self.predict_proba(faces).argmax(axis=1)]
