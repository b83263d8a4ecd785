"""fercore.evaluation.evaluate and python -m training.evaluate: JSON contract (accuracy = manual count),
ECE, FER+ labels, temperature fitting, tiers."""

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
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


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
    from fercore.data.loader import load_dataset
    from fercore.inference.classify import KerasBackend
    from fercore.inference.preprocess import to_model_input
    from fercore.models.architectures import load_keras_model

    ds = load_dataset(small_real_set)
    keras_model = load_keras_model(tiny_model_dir / "model.keras")
    pred = KerasBackend(keras_model).predict(to_model_input(ds.images)).argmax(axis=1)
    assert out["accuracy"] == pytest.approx(float((pred == ds.labels).mean()), abs=1 / 70 + 1e-9)
    assert np.trace(conf) / 70 == pytest.approx(out["accuracy"])


def test_evaluate_csv_split_and_tta(tmp_path, fer_dir, tiny_model_dir):
    res = _run(
        "training.evaluate",
        "--data",
        str(fer_dir / "fer2013_sample.csv"),
        "--split",
        "PublicTest",
        "--model",
        str(tiny_model_dir / "model.tflite"),
        "--tta",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n"] == 200 and out["tta"] is True and out["split"] == "test"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/dir"], "no such file or folder"),
        (["--data", "{csv}"], "header"),
        (["--data", "{empty}"], "file is empty"),
        (["--data", "{fer}", "--split", "validation2"], "no split"),
        (["--data", "{fer}", "--model", "/no/model.tflite"], "model file not found"),
    ],
)
def test_evaluate_bad_input(tmp_path, class_folder, args, message):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    (tmp_path / "empty.csv").write_text("")
    args = [a.format(csv=tmp_path / "bad.csv", empty=tmp_path / "empty.csv", fer=class_folder) for a in args]
    res = _run("training.evaluate", *args, "--json")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_predict_proba_batches_and_progress(tiny_model_dir):
    from fercore.evaluation.evaluate import predict_proba
    from fercore.inference.classify import load_backend

    faces = np.random.default_rng(3).integers(0, 255, (37, 48, 48), dtype=np.uint8)
    backend = load_backend(tiny_model_dir / "model.tflite")
    seen: list[float] = []
    small = predict_proba(backend, faces, tta=True, batch_size=80, progress=seen.append)  # 8 faces × 10 views a call
    whole = predict_proba(tiny_model_dir / "model.tflite", faces, tta=True, batch_size=512)
    np.testing.assert_allclose(small, whole, atol=1e-6)
    np.testing.assert_allclose(small.sum(axis=1), 1.0, atol=1e-5)
    assert len(seen) == 5 and seen[-1] == 1.0 and seen == sorted(seen)


def test_json_reports_ece_and_the_models_temperature(small_real_set, tiny_model_dir, tmp_path):
    import shutil

    from fercore.data.loader import load_dataset
    from fercore.evaluation.calibration import ece
    from fercore.evaluation.evaluate import evaluate
    from fercore.inference.temperature import apply_temperature, save_temperature

    model = tmp_path / "model.tflite"
    shutil.copy(tiny_model_dir / "model.tflite", model)
    res = _run("training.evaluate", "--data", str(small_real_set), "--model", str(model), "--json")
    out = json.loads(res.stdout)
    assert out["temperature"] == 1.0 and out["ece"] == out["ece_uncalibrated"] and 0 <= out["ece"] <= 1
    bins = out["reliability"]
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 70
    assert out["ece"] == pytest.approx(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / 70)
    save_temperature(model, 2.0, fitted_on="test", tta=False)
    calibrated = json.loads(
        _run("training.evaluate", "--data", str(small_real_set), "--model", str(model), "--json").stdout
    )
    assert calibrated["temperature"] == 2.0 and calibrated["accuracy"] == out["accuracy"]
    assert calibrated["ece_uncalibrated"] == pytest.approx(out["ece"])
    ds = load_dataset(small_real_set)
    result = evaluate(model, ds)
    assert result.temperature == 2.0
    # fitted without TTA: TTA-averaged probabilities are already softer, so it is not applied to them
    assert evaluate(model, ds, tta=True).temperature == 1.0
    save_temperature(model, 1.5, tta=True)
    assert evaluate(model, ds, tta=True).temperature == 1.5 and evaluate(model, ds).temperature == 1.0
    assert calibrated["ece"] == pytest.approx(ece(apply_temperature(result.proba, 2.0), ds.labels), abs=1e-6)


def _votes_csv(path, rows_votes: dict[int, list[int]]) -> None:
    """A FER+ vote file in the real layout (FER+ column order, contempt/unknown/NF columns)."""
    # FER2013 order angry, disgust, fear, happy, sad, surprise, neutral → FER+ column order
    lines = ["row,Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for row, (an, di, fe, ha, sa, su, ne) in rows_votes.items():
        lines.append(f"{row},PublicTest,fer{row:07d}.png,{ne},{ha},{su},{sa},{an},{di},{fe},1,1,0")
    path.write_text("\n".join(lines) + "\n")


def test_ferplus_labels_replace_fer2013_and_unclear_faces_are_counted(small_real_set, tiny_model_dir):
    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate, ferplus_relabel

    ds = load_dataset(small_real_set)
    rows = ds.rows().tolist()
    assert min(rows) >= 0
    votes = {}
    for i, r in enumerate(rows):
        if i % 10 == 0:
            continue  # absent from the vote file
        v = [0] * 7
        if i % 10 == 1:
            v[2] = v[5] = 4  # a tie: no clear majority
        else:
            v[(ds.labels[i] + i) % 7] = 6  # a clear majority, often not the FER2013 label
            v[(ds.labels[i] + i + 1) % 7] = 3
        votes[r] = v
    _votes_csv(small_real_set / "ferplus_votes.csv", votes)  # the default place: inside --data
    res = _run(
        "training.evaluate",
        "--data",
        str(small_real_set),
        "--model",
        str(tiny_model_dir / "model.tflite"),
        "--labels",
        "ferplus",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["label_source"] == "ferplus"
    assert (out["n"], out["excluded_no_majority"], out["excluded_tie"], out["excluded_no_votes"]) == (56, 14, 7, 7)
    conf = np.array(out["confusion"])
    relabelled, _ = ferplus_relabel(ds, small_real_set / "ferplus_votes.csv")
    expected = np.array([(ds.labels[i] + i) % 7 for i in range(len(ds)) if i % 10 > 1])
    np.testing.assert_array_equal(relabelled.labels, expected)
    assert conf.sum(axis=1).tolist() == np.bincount(expected, minlength=7).tolist()
    manual = evaluate(tiny_model_dir / "model.tflite", relabelled)
    assert out["accuracy"] == pytest.approx(float((manual.y_pred == expected).mean()))


def test_ferplus_votes_path_errors(small_real_set, tiny_model_dir):
    res = _run(
        "training.evaluate",
        "--data",
        str(small_real_set),
        "--model",
        str(tiny_model_dir / "model.tflite"),
        "--labels",
        "ferplus",
        "--json",
    )
    assert res.returncode == 2 and "ferplus_votes.csv" in res.stderr and "--ferplus" in res.stderr


def test_ferplus_on_the_real_votes(small_real_set, tiny_model_dir, fer_dir):
    res = _run(
        "training.evaluate",
        "--data",
        str(small_real_set),
        "--model",
        str(tiny_model_dir / "model.tflite"),
        "--labels",
        "ferplus",
        "--ferplus",
        str(fer_dir / "ferplus_votes.csv"),
        "--json",
    )
    out = json.loads(res.stdout)
    assert out["n"] + out["excluded_no_majority"] == 70 and out["excluded_no_votes"] == 0
    assert np.array(out["confusion"]).sum() == out["n"]


def test_stratified_folds_partition_each_class(class_folder):
    from fercore.data.dataset import stratified_subset
    from fercore.data.loader import load_dataset

    ds = load_dataset(class_folder).split("train")
    a, b = stratified_subset(ds, fold=(1, 2)), stratified_subset(ds, fold=(2, 2))
    assert sorted(a.ids.tolist() + b.ids.tolist()) == sorted(ds.ids.tolist())
    assert np.bincount(a.labels).tolist() == np.bincount(b.labels).tolist() == [10] * 7
    small = stratified_subset(ds, limit=35)
    assert len(small) == 35 and np.bincount(small.labels).tolist() == [5] * 7
    assert stratified_subset(ds, limit=35).ids.tolist() == small.ids.tolist()  # reproducible
    with pytest.raises(ValueError, match="fold"):
        stratified_subset(ds, fold=(3, 2))


def test_fit_temperature_cli_writes_the_side_file(class_folder, tiny_model_dir, tmp_path):
    import shutil

    from fercore.inference.temperature import saved_temperature

    model = tmp_path / "m" / "model.tflite"
    model.parent.mkdir()
    shutil.copy(tiny_model_dir / "model.tflite", model)
    res = _run(
        "training.evaluate",
        "--data",
        str(class_folder),
        "--model",
        str(model),
        "--split",
        "train",
        "--fold",
        "1/2",
        "--fit-temperature",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    fitted = json.loads(res.stdout)["fitted"]
    side = json.loads((model.parent / "calibration.json").read_text())
    assert side["temperature"] == fitted["temperature"] == saved_temperature(model) > 0
    assert side["fitted_on"] == "fer split train fold 1/2, fer2013 labels, seed 0" and side["n"] == 70
    assert side["nll_after"] <= side["nll_before"] + 1e-9  # NLL is what the fit minimises
    assert str(tmp_path) not in (model.parent / "calibration.json").read_text()
    res = _run("training.evaluate", "--data", str(class_folder), "--model", str(model), "--fold", "2", "--json")
    assert res.returncode == 2 and "K/N" in res.stderr
