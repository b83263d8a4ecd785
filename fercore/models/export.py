"""Export a trained model as model.json + weights, .keras and .tflite, each checked against the source,
and an optional full-integer (int8) .tflite for fast CPU inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_NAMES = {
    "keras": "model.keras",
    "json": "model.json",
    "weights": "model.weights.h5",
    "tflite": "model.tflite",
}
INT8_NAME = "model_int8.tflite"


def _convert(converter) -> bytes:
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):  # the converter prints its saved signature
        return bytes(converter.convert())


def export_tflite(model: Any, file: str | Path, float16: bool = False) -> Path:
    """Convert a Keras model to a .tflite file (LiteRT resizes the batch at run time). ``float16``
    stores the weights as float16 (half the file; LiteRT computes in float32 after loading)."""
    import tensorflow as tf

    file = Path(file)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    file.write_bytes(_convert(converter))
    return file


def representative_sample(
    faces: np.ndarray, labels: np.ndarray | None = None, n: int = 500, seed: int = 0
) -> np.ndarray:
    """``n`` faces drawn without replacement (stratified by label when labels are given, so rare
    classes such as disgust shape the activation ranges too)."""
    rng = np.random.default_rng(seed)
    if len(faces) <= n:
        return np.asarray(faces)
    if labels is None:
        return np.asarray(faces)[np.sort(rng.choice(len(faces), n, replace=False))]
    labels = np.asarray(labels)
    picked: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, round(n * len(members) / len(labels)))
        picked.append(rng.choice(members, min(k, len(members)), replace=False))
    return np.asarray(faces)[np.sort(np.concatenate(picked))[:n]]


def export_tflite_int8(model: Any, file: str | Path, representative_faces: np.ndarray) -> Path:
    """Full-integer .tflite: int8 weights and activations, calibrated on ``representative_faces``
    ((n, 48, 48) uint8 training faces, ~500).

    Input and output stay float32 (a QUANTIZE op after the input, a DEQUANTIZE op before the
    output): any backend feeds it exactly like the float model. Quantizing 48×48 pixels in the
    graph is no slower than in NumPy before the call, and with an input scale of 1 it loses
    nothing: one calibration face gets a 0 and a 255 pixel so the input range is exactly 0–255,
    and every integer pixel value is represented exactly.
    """
    import tensorflow as tf

    faces = np.array(representative_faces, dtype=np.uint8)
    if faces.ndim != 3 or faces.shape[1:] != (48, 48) or len(faces) == 0:
        raise ValueError(f"representative faces must be (n, 48, 48) uint8 with n ≥ 1, got {faces.shape}")
    faces[0, 0, 0], faces[0, 0, 1] = 0, 255
    x = faces.astype(np.float32)[..., None]

    def samples():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    file = Path(file)
    file.write_bytes(_convert(converter))
    return file


def export_all(
    source: str | Path,
    out_dir: str | Path,
    check: bool = True,
    check_inputs: np.ndarray | None = None,
    int8_faces: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write every format of ``source`` (.keras or model.json) into ``out_dir``.

    A model trained under mixed precision is converted to float32 first (same weights): every
    format is float32. With ``check``, each format is reloaded and its outputs compared with the
    (float32) source model's on ``check_inputs`` ((n, 48, 48) uint8 faces; random faces if None).
    With ``int8_faces`` (training faces to calibrate on) ``model_int8.tflite`` is written too and
    its agreement with the float model reported under ``int8``. Returns paths and max diffs.
    """
    from fercore.models.architectures import load_keras_model, read_model_config, save_model, to_float32

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = to_float32(load_keras_model(source))  # a mixed-precision model is exported in float32
    config = read_model_config(source) if str(source).endswith(".keras") else None
    paths = {k: out / v for k, v in EXPORT_NAMES.items()}
    save_model(model, paths["keras"], config)
    paths["json"].write_text(model.to_json())
    model.save_weights(paths["weights"])
    export_tflite(model, paths["tflite"])
    result: dict[str, Any] = {k: str(v) for k, v in paths.items()}
    if check:
        result["max_abs_diff"] = check_exports(model, out, check_inputs)
    if int8_faces is not None:
        int8 = export_tflite_int8(model, out / INT8_NAME, int8_faces)
        result["int8"] = {"path": str(int8), **compare_int8(out / EXPORT_NAMES["tflite"], int8, check_inputs)}
    if config is not None:
        (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return result


def compare_int8(float_file: str | Path, int8_file: str | Path, faces: np.ndarray | None = None) -> dict[str, float]:
    """How far the int8 model strays from the float one on the same faces: max |Δp| and the
    fraction of faces whose top class agrees (int8 is never bit-exact, so no 1e-4 threshold)."""
    from fercore.inference.classify import TFLiteBackend
    from fercore.inference.preprocess import to_model_input

    if faces is None:
        faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    x = to_model_input(faces)
    ref, q = TFLiteBackend(float_file).predict(x), TFLiteBackend(int8_file).predict(x)
    return {
        "max_abs_diff": float(np.abs(q - ref).max()),
        "top1_agreement": float((q.argmax(axis=1) == ref.argmax(axis=1)).mean()),
    }


def check_exports(model: Any, out_dir: str | Path, faces: np.ndarray | None = None) -> dict[str, float]:
    """Max |difference| between the source model and each exported format on the same faces."""
    from fercore.inference.classify import TFLiteBackend
    from fercore.inference.preprocess import to_model_input
    from fercore.models.architectures import load_keras_model

    out = Path(out_dir)
    if faces is None:
        faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    x = to_model_input(faces)
    ref = np.asarray(model(x, training=False))
    diffs = {}
    for fmt, name in (("keras", EXPORT_NAMES["keras"]), ("json", EXPORT_NAMES["json"])):
        other = load_keras_model(out / name)
        diffs[fmt] = float(np.abs(np.asarray(other(x, training=False)) - ref).max())
    diffs["tflite"] = float(np.abs(TFLiteBackend(out / EXPORT_NAMES["tflite"]).predict(x) - ref).max())
    return diffs
