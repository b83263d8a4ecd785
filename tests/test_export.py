"""fercore.models.export and python -m training.export: formats agree, float32 twins of mixed-precision models, int8."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


def test_export_formats_agree_on_real_faces(tmp_path, fer_dir, tiny_model_dir):
    out = tmp_path / "exp"
    res = _run(
        "training.export",
        "--model",
        str(tiny_model_dir / "model.keras"),
        "--out",
        str(out),
        "--data",
        str(fer_dir / "fer2013_sample.csv"),
        "--int8",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert set(report["max_abs_diff"]) == {"keras", "json", "tflite"}
    assert max(report["max_abs_diff"].values()) < 1e-4
    assert report["int8"]["path"] == str(out / "model_int8.tflite") and (out / "model_int8.tflite").exists()
    assert report["int8"]["top1_agreement"] >= 0.9
    import keras

    model = keras.models.model_from_json((out / "model.json").read_text())
    model.load_weights(out / "model.weights.h5")
    assert model.output_shape == (None, 7)


def test_a_mixed_precision_model_is_exported_in_float32(tmp_path):
    """A model trained under bfloat16 mixed precision (TFLite has no bf16 kernels) exports as a
    float32 twin with the same weights: every format float32, all agreeing."""
    code = (
        "import json, sys, keras\n"
        "from fercore.models.architectures import build_model, save_model\n"
        "from fercore.models.export import export_all\n"
        "keras.mixed_precision.set_global_policy('mixed_bfloat16')\n"
        "m = build_model('fernet', widths=(8, 8, 8, 8), stem_width=4)\n"
        f"save_model(m, {str(tmp_path / 'bf16.keras')!r})\n"
        "keras.mixed_precision.set_global_policy('float32')\n"
        f"r = export_all({str(tmp_path / 'bf16.keras')!r}, {str(tmp_path / 'out')!r})\n"
        "print(json.dumps(r['max_abs_diff']))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert max(diffs.values()) < 1e-4
    from fercore.models.architectures import load_keras_model

    exported = load_keras_model(tmp_path / "out" / "model.keras")
    assert {layer.compute_dtype for layer in exported.layers} == {"float32"}


def test_int8_export_is_full_integer_with_float_io(tmp_path, tiny_model_dir):
    """int8 weights and activations inside, float32 in and out: any backend feeds it like the float
    model, and on faces it agrees with the float model."""
    from ai_edge_litert.interpreter import Interpreter

    from fercore.inference.classify import TFLiteBackend
    from fercore.models.architectures import load_keras_model
    from fercore.models.export import export_tflite_int8, representative_sample
    from tests.conftest import synthetic_faces

    images, labels = synthetic_faces(140)
    rep = representative_sample(images, labels, n=70)
    assert len(rep) == 70 and rep.dtype == np.uint8
    file = export_tflite_int8(load_keras_model(tiny_model_dir / "model.keras"), tmp_path / "q.tflite", rep)
    interp = Interpreter(model_path=str(file))
    assert interp.get_input_details()[0]["dtype"] == np.float32
    assert interp.get_output_details()[0]["dtype"] == np.float32
    kinds = {d["dtype"] for d in interp.get_tensor_details()}
    assert np.int8 in kinds and np.float32 in kinds
    quantize = [
        d for d in interp.get_tensor_details() if d["dtype"] == np.int8 and d["shape"].tolist()[1:] == [48, 48, 1]
    ]
    assert quantize and quantize[0]["quantization"] == (1.0, -128)  # 0–255 pixels stay exact
    faces = images[:32].astype(np.float32)[..., None]
    q = TFLiteBackend(file).predict(faces)
    ref = TFLiteBackend(tiny_model_dir / "model.tflite").predict(faces)
    assert q.shape == (32, 7) and np.abs(q - ref).max() < 0.05
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=0.03)
    with pytest.raises(ValueError, match=r"\(n, 48, 48\)"):
        export_tflite_int8(None, tmp_path / "x.tflite", np.zeros((0, 48, 48), np.uint8))


def test_int8_needs_data(tmp_path, tiny_model_dir):
    res = _run("training.export", "--model", str(tiny_model_dir / "model.keras"), "--out", str(tmp_path), "--int8")
    assert res.returncode == 2 and "--int8 needs --data" in res.stderr
