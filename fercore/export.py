"""Export a trained model as model.json + weights, .keras and .tflite, each checked against the source."""

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


def export_tflite(model, file: str | Path) -> Path:
    """Convert a Keras model to a float32 .tflite file (LiteRT resizes the batch at run time)."""
    import tensorflow as tf

    import contextlib
    import sys

    file = Path(file)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints its saved signature
        data = converter.convert()
    file.write_bytes(data)
    return file


def export_all(source: str | Path, out_dir: str | Path, check: bool = True,
               check_inputs: np.ndarray | None = None) -> dict[str, Any]:
    """Write every format of ``source`` (.keras or model.json) into ``out_dir``.

    A model trained under mixed precision is converted to float32 first (same weights): every
    format is float32. With ``check``, each format is reloaded and its outputs compared with the
    (float32) source model's on
    ``check_inputs`` ((n, 48, 48) uint8 faces; random faces if None). Returns paths and max diffs.
    """
    from fercore.model import load_keras_model, read_model_config, save_model, to_float32

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
    if config is not None:
        (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return result


def check_exports(model, out_dir: str | Path, faces: np.ndarray | None = None) -> dict[str, float]:
    """Max |difference| between the source model and each exported format on the same faces."""
    from fercore.classify import TFLiteBackend
    from fercore.model import load_keras_model
    from fercore.preprocess import to_model_input

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
