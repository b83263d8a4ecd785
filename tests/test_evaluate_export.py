"""python -m training.evaluate (JSON contract, accuracy = manual count) and training.export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture
def small_real_set(tmp_path, fer_dir):
    """70 real PublicTest faces (10 per class) copied into a class-folder set."""
    root = tmp_path / "small"
    for cls_dir in sorted((fer_dir / "test").iterdir()):
        (root / cls_dir.name).mkdir(parents=True)
        for f in sorted(cls_dir.glob("*.png"))[:10]:
            shutil.copy(f, root / cls_dir.name / f.name)
    return root


@pytest.mark.parametrize("fmt", ["model.tflite", "model.keras", "model.json"])
def test_evaluate_json_contract_and_manual_count(small_real_set, tiny_model_dir, fmt):
    model = tiny_model_dir / fmt
    res = _run("training.evaluate", "--data", str(small_real_set), "--model", str(model), "--json")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert {"accuracy", "n", "per_class", "confusion"} <= set(out)
    assert out["n"] == 70
    assert list(out["per_class"]) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert all(set(v) == {"precision", "recall", "f1", "support"} for v in out["per_class"].values())
    conf = np.array(out["confusion"])
    assert conf.shape == (7, 7) and conf.sum() == 70 and conf.sum(axis=1).tolist() == [10] * 7
    # manual count with the model itself
    from fercore.classify import KerasBackend
    from fercore.data import load_dataset
    from fercore.model import load_keras_model
    from fercore.preprocess import to_model_input

    ds = load_dataset(small_real_set)
    keras_model = load_keras_model(tiny_model_dir / "model.keras")
    pred = KerasBackend(keras_model).predict(to_model_input(ds.images)).argmax(axis=1)
    assert out["accuracy"] == pytest.approx(float((pred == ds.labels).mean()), abs=1 / 70 + 1e-9)
    assert np.trace(conf) / 70 == pytest.approx(out["accuracy"])


def test_evaluate_csv_split_and_tta(tmp_path, fer_dir, tiny_model_dir):
    res = _run("training.evaluate", "--data", str(fer_dir / "fer2013_sample.csv"), "--split",
               "PublicTest", "--model", str(tiny_model_dir / "model.tflite"), "--tta", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n"] == 200 and out["tta"] is True and out["split"] == "test"


def test_tta_views():
    from fercore.evaluate import tta_views

    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    views = tta_views(faces)
    assert len(views) == 10 and all(v.shape == faces.shape for v in views)
    np.testing.assert_array_equal(views[1], views[0][:, :, ::-1])


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such/dir"], "no such file or folder"),
    (["--data", "{csv}"], "wrong header"),
    (["--data", "{empty}"], "file is empty"),
    (["--data", "{fer}", "--split", "validation2"], "no split"),
    (["--data", "{fer}", "--model", "/no/model.tflite"], "model file not found"),
])
def test_evaluate_bad_input(tmp_path, class_folder, args, message):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    (tmp_path / "empty.csv").write_text("")
    args = [a.format(csv=tmp_path / "bad.csv", empty=tmp_path / "empty.csv", fer=class_folder)
            for a in args]
    res = _run("training.evaluate", *args, "--json")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_export_formats_agree_on_real_faces(tmp_path, fer_dir, tiny_model_dir):
    out = tmp_path / "exp"
    res = _run("training.export", "--model", str(tiny_model_dir / "model.keras"), "--out", str(out),
               "--data", str(fer_dir / "fer2013_sample.csv"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert set(report["max_abs_diff"]) == {"keras", "json", "tflite"}
    assert max(report["max_abs_diff"].values()) < 1e-4
    import keras

    model = keras.models.model_from_json((out / "model.json").read_text())
    model.load_weights(out / "model.weights.h5")
    assert model.output_shape == (None, 7)


def test_predict_proba_batches_and_progress(tiny_model_dir):
    from fercore.classify import load_backend
    from fercore.evaluate import predict_proba

    faces = np.random.default_rng(3).integers(0, 255, (37, 48, 48), dtype=np.uint8)
    backend = load_backend(tiny_model_dir / "model.tflite")
    seen: list[float] = []
    small = predict_proba(backend, faces, tta=True, batch_size=8, progress=seen.append)
    whole = predict_proba(tiny_model_dir / "model.tflite", faces, tta=True, batch_size=512)
    np.testing.assert_allclose(small, whole, atol=1e-6)
    np.testing.assert_allclose(small.sum(axis=1), 1.0, atol=1e-5)
    assert len(seen) == 5 and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_mixed_precision_model_is_exported_in_float32(tmp_path):
    """A model trained under bfloat16 mixed precision (TFLite has no bf16 kernels) exports as a
    float32 twin with the same weights: every format float32, all agreeing."""
    code = (
        "import json, sys, keras\n"
        "from fercore.model import build_model, save_model\n"
        "from fercore.export import export_all\n"
        "keras.mixed_precision.set_global_policy('mixed_bfloat16')\n"
        "m = build_model('fernet', widths=(8, 8, 8, 8), stem_width=4)\n"
        f"save_model(m, {str(tmp_path / 'bf16.keras')!r})\n"
        "keras.mixed_precision.set_global_policy('float32')\n"
        f"r = export_all({str(tmp_path / 'bf16.keras')!r}, {str(tmp_path / 'out')!r})\n"
        "print(json.dumps(r['max_abs_diff']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert max(diffs.values()) < 1e-4
    from fercore.model import load_keras_model

    exported = load_keras_model(tmp_path / "out" / "model.keras")
    assert {layer.compute_dtype for layer in exported.layers} == {"float32"}
