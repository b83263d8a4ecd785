"""Emotion classification of 48×48 faces: LiteRT for speed (no tensorflow import), Keras otherwise.

Every backend is safe to share between threads on its own; callers hold no locks. A LiteRT
interpreter is not re-entrant (its tensors are shared between calls and ``invoke`` releases the
GIL), so ``TFLiteBackend`` keeps a small pool of interpreters: each call borrows one for its whole
set-tensor → invoke → copy-out sequence, and concurrent calls run in parallel on separate
interpreters instead of corrupting one.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fercore.inference.preprocess import to_model_input
from fercore.inference.temperature import apply_temperature, saved_temperature
from fercore.labels import EMOTIONS
from fercore.paths import MODELS_DIR


def default_model_path() -> Path:
    """The shipped model: ``$FER_MODEL`` or ``models/model.tflite`` (``model.keras`` if no tflite)."""
    env = os.environ.get("FER_MODEL")
    if env:
        return Path(env)
    tfl = MODELS_DIR / "model.tflite"
    return tfl if tfl.exists() else MODELS_DIR / "model.keras"


def stream_model_path() -> Path:
    """The model for live streams and videos: ``$FER_MODEL`` when set, else the shipped int8 model
    (same top-1 within 0.1 pt, 2–4× the throughput: ``bench/int8.py``), else the default model."""
    if os.environ.get("FER_MODEL"):
        return default_model_path()
    int8 = MODELS_DIR / "model_int8.tflite"
    return int8 if int8.exists() else default_model_path()


class Backend(Protocol):
    """What runs a model: ``predict`` maps (n, 48, 48, 1) float32 faces in 0–255 to (n, 7) probabilities."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 48, 48, 1) float32 0–255 → (n, 7) probabilities. Safe to call from several threads."""
        ...


class _Interpreter:
    """One LiteRT interpreter with its batch size; used by one thread at a time (the pool sees to it)."""

    def __init__(self, path: Path, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=num_threads)
        inp, out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.input, self.output = inp["index"], out["index"]
        self.in_dtype = inp["dtype"]
        self.in_quant: tuple[float, int] = tuple(inp.get("quantization", (0.0, 0)))
        self.out_quant: tuple[float, int] = tuple(out.get("quantization", (0.0, 0)))
        self.batch = int(inp["shape"][0])
        self.interp.allocate_tensors()

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self.batch:
            self.interp.resize_tensor_input(self.input, list(x.shape), strict=False)
            self.interp.allocate_tensors()
            self.batch = x.shape[0]
        self.interp.set_tensor(self.input, self._quantize(x))
        self.interp.invoke()
        return self._dequantize(self.interp.get_tensor(self.output))  # get_tensor copies

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self.in_dtype == np.float32:
            return np.ascontiguousarray(x, dtype=np.float32)
        scale, zero = self.in_quant
        info = np.iinfo(self.in_dtype)
        q = np.round(x / (scale or 1.0) + zero)
        return np.clip(q, info.min, info.max).astype(self.in_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if y.dtype == np.float32:
            return y
        scale, zero = self.out_quant
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class TFLiteBackend:
    """Runs a .tflite model (float or fully int8-quantized) with LiteRT; thread-safe.

    ``max_interpreters`` bounds the pool (and so the parallelism and memory); a call that finds
    every interpreter busy waits for one.
    """

    def __init__(self, path: str | Path, num_threads: int = 2, max_interpreters: int = 4):
        if max_interpreters < 1:
            raise ValueError(f"max_interpreters must be >= 1, got {max_interpreters}")
        self.path = Path(path)
        self.num_threads = int(num_threads)
        self._idle: queue.LifoQueue[_Interpreter] = queue.LifoQueue()
        self._idle.put(_Interpreter(self.path, self.num_threads))  # fails here for a bad file
        self._created = 1
        self._max = int(max_interpreters)
        self._lock = threading.Lock()

    def _borrow(self) -> _Interpreter:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._created < self._max
            if grow:
                self._created += 1
        return _Interpreter(self.path, self.num_threads) if grow else self._idle.get()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 48, 48, 1) float32 faces → (n, 7) probabilities, on an idle interpreter of the pool."""
        if x.shape[0] == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        interp = self._borrow()
        try:
            return interp.run(x)
        finally:
            self._idle.put(interp)


class KerasBackend:
    """Runs a .keras / model.json model with ``model(x, training=False)`` (never ``predict`` per face)."""

    def __init__(self, path_or_model: str | Path | Any):
        from fercore.models.architectures import load_keras_model

        if isinstance(path_or_model, (str, Path)):  # noqa: UP038 - mypy narrows the tuple form
            self.model = load_keras_model(path_or_model)
        else:
            self.model = path_or_model
        self._lock = threading.Lock()  # a Keras layer call is not documented as thread-safe

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 48, 48, 1) float32 faces → (n, 7) probabilities (one model call, under the lock)."""
        if x.shape[0] == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        with self._lock:
            return np.asarray(self.model(x, training=False), dtype=np.float32)


def load_backend(path: str | Path | None = None) -> Backend:
    """LiteRT for .tflite files, Keras for .keras/.json."""
    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".tflite":
        return TFLiteBackend(path)
    return KerasBackend(path)


class EmotionClassifier:
    """Classifies a stack of 48×48 uint8 faces in one call; thread-safe when its backend is.

    Probabilities are calibrated by the temperature saved with the model (``calibration.json`` beside
    the file, see :mod:`fercore.evaluation.calibration`) unless ``temperature`` is given; a backend passed in
    directly is used as it is (temperature 1) unless told otherwise.
    """

    def __init__(
        self, model_path: str | Path | None = None, backend: Backend | None = None, temperature: float | None = None
    ):
        if backend is None:
            path = Path(model_path) if model_path else default_model_path()
            backend = load_backend(path)
            temperature = saved_temperature(path) if temperature is None else temperature
        self.backend = backend
        self.temperature = 1.0 if temperature is None else float(temperature)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """(n, 48, 48) uint8 → (n, 7) calibrated probabilities in FER2013 class order."""
        probs = self.backend.predict(to_model_input(faces))
        if self.temperature == 1.0 or len(probs) == 0:
            return probs
        return apply_temperature(probs, self.temperature)

    def predict(self, faces: np.ndarray) -> list[str]:
        """Most likely emotion per face."""
        return [EMOTIONS[i] for i in self.predict_proba(faces).argmax(axis=1)]
