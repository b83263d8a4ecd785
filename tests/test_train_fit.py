"""fercore.train.fit and python -m training.train: a complete run directory, exact resume after a
stop (also of a run written by the pre-split code), strategies, export choice, bad input."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fercore import runs
from fercore.train import TrainConfig, fit
from tests.conftest import FIXTURES, ROOT, TINY, model_weights, stop_at

pytestmark = pytest.mark.slow  # every test here trains a model for real


def runs_config(run: Path) -> TrainConfig:
    """The config a run recorded."""
    return TrainConfig.from_dict(runs.read_config(run))


PRE_SPLIT_TRAIN = FIXTURES / "pre_split_train.py"  # the single-file fercore/train.py of commit 4ea4fb0


def _train_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "training.train", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=900, **kw)  # fmt: skip


def _tiny_config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = {"data": str(data), "model": "fernet", "model_params": TINY, "epochs": 2, "batch_size": 32,
           "lr": 0.01, "log_every": 2, **extra}  # fmt: skip
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_fit_writes_a_complete_run_directory(tmp_path, class_folder):
    run = tmp_path / "run"
    res = _train_cli("--config", str(_tiny_config(tmp_path, class_folder)), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    status = runs.read_status(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 2
    assert status["pid_start"] and status["checkpoint_step"] == 8
    assert runs.read_config(run)["model_params"]["widths"] == TINY["widths"]
    metrics = runs.read_metrics(run)
    assert set(metrics["kind"]) == {"batch", "epoch"}
    assert metrics[metrics.kind == "epoch"]["epoch"].tolist() == [1, 2]
    assert metrics[metrics.kind == "epoch"]["val_accuracy"].notna().all()
    for name in (runs.BEST, runs.LAST, "export/model.tflite", "export/model.json",
                 "export/model.weights.h5", "export/model.keras"):  # fmt: skip
        assert (run / name).exists(), name
    assert any((run / runs.TENSORBOARD).rglob("events.out.tfevents.*"))
    from fercore.models.architectures import read_model_config

    stored = read_model_config(run / runs.BEST)
    assert stored["model"] == "fernet" and stored["epoch"] >= 1
    # the export is the last epoch's weights (export_checkpoint="last"), not the best on PublicTest
    for a, b in zip(model_weights(run / "export" / "model.keras"), model_weights(run / runs.LAST), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_on_crops_validates_and_exports_whole_faces(tmp_path, class_folder):
    """Trained on 40×40 crops, validated on whole 48×48 faces; every exported format takes 48×48 in
    float32 and gives the checkpoint's predictions (to bfloat16's rounding where training used it)."""
    from fercore.inference.classify import TFLiteBackend
    from fercore.models.architectures import load_keras_model

    run = tmp_path / "run"
    cfg = _tiny_config(tmp_path, class_folder, augment={"flip": True, "shift": 0.1, "crop": 40})
    res = _train_cli("--config", str(cfg), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    assert runs.read_status(run)["state"] == "finished" and runs.read_status(run)["export_error"] is None
    assert runs.read_metrics(run).query("kind == 'epoch'")["val_accuracy"].notna().all()
    checkpoint = load_keras_model(run / runs.LAST)
    assert tuple(checkpoint.inputs[0].shape)[1:] == (None, None, 1)
    exported = load_keras_model(run / "export" / "model.keras")
    assert tuple(exported.inputs[0].shape)[1:] == (48, 48, 1)
    faces = np.random.default_rng(0).integers(0, 255, (6, 48, 48, 1)).astype(np.float32)
    want = exported.predict(faces, verbose=0)  # the checkpoint's weights, computed in float32
    np.testing.assert_allclose(checkpoint.predict(faces, verbose=0), want, atol=5e-3)  # bfloat16 where native
    lite = TFLiteBackend(run / "export" / "model.tflite")
    np.testing.assert_allclose(lite.predict(faces), want, atol=1e-4)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path, class_folder):
    run = tmp_path / "run"
    res = _train_cli("--config", str(_tiny_config(tmp_path, class_folder, epochs=1)),
                     "--run-dir", str(run), "--strategy", "mirrored", "--logical-cpus", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert runs.read_status(run)["state"] == "finished"


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/fer"], "no such file or folder"),
    (["--data", "{tmp}"], "no class folders found"),
    (["--data", "{csv}"], "header"),
    (["--model", "fernet"], "no data"),
    (["--resume", "{tmp}"], "not a resumable run"),
])  # fmt: skip
def test_cli_bad_input_one_line_no_traceback(tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    args = [a.format(tmp=tmp_path, csv=tmp_path / "bad.csv") for a in args]
    res = _train_cli(*args, "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------
# Exact resume (in-process: one TensorFlow import for all)


def _trace(run: Path):
    """What must match an uninterrupted run: (kind, epoch, step) and the learning rate per row."""
    m = runs.read_metrics(run)
    return list(zip(m["kind"], m["epoch"].astype(int), m["step"].astype(int), strict=True)), m["lr"].to_numpy()


def test_resume_after_a_stop_mid_epoch_continues_exactly(tmp_path, trained_tiny_run, no_export):
    config, whole = runs_config(trained_tiny_run), trained_tiny_run
    parts = tmp_path / "parts"
    status = fit(config, parts, verbose=0, callbacks=[stop_at(parts, 6)])  # 4 steps per epoch: mid-epoch 2
    assert status["state"] == "stopped"
    assert (status["step"], status["completed_epochs"], status["checkpoint_step"]) == (6, 1, 6)
    final = fit(config, parts, resume=True, verbose=0)
    assert final["state"] == "finished" and final["completed_epochs"] == 3 and final["step"] == 12
    rows_whole, lr_whole = _trace(whole)
    rows_parts, lr_parts = _trace(parts)
    assert rows_parts == rows_whole
    np.testing.assert_array_equal(lr_parts, lr_whole)
    for a, b in zip(model_weights(parts / runs.LAST), model_weights(whole / runs.LAST), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_on_crops_then_whole_faces_resumes_exactly(tmp_path, class_folder, no_export):
    """crop_epochs: the first epoch on 40×40 crops, the second on whole faces (a fit call each, the
    step traced afresh for the new side). A run stopped in the crop epoch and resumed ends with the
    weights of the uninterrupted run."""
    config = TrainConfig.from_dict({
        "data": str(class_folder), "model_params": TINY, "epochs": 2, "batch_size": 32, "lr": 0.02,
        "precision": "float32", "log_every": 1, "augment": {"flip": True, "shift": 0.1, "crop": 40},
        "crop_epochs": 1,
    })  # fmt: skip
    whole = fit(config, tmp_path / "whole", verbose=0)
    assert whole["state"] == "finished" and whole["step"] == 8
    parts = tmp_path / "parts"
    assert fit(config, parts, verbose=0, callbacks=[stop_at(parts, 2)])["state"] == "stopped"
    assert fit(config, parts, resume=True, verbose=0)["state"] == "finished"
    assert _trace(parts)[0] == _trace(tmp_path / "whole")[0]
    for a, b in zip(model_weights(parts / runs.LAST), model_weights(tmp_path / "whole" / runs.LAST), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _pre_split_train(monkeypatch):
    """fercore/train.py as it was before the split (a stored copy, its library imports mapped)."""
    spec = importlib.util.spec_from_file_location("pre_split_train", PRE_SPLIT_TRAIN)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pre_split_train", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_run_stopped_by_the_pre_split_code_resumes_on_the_same_curve(
    tmp_path, trained_tiny_run, no_export, monkeypatch
):
    """Its checkpoint holds a float learning rate that a callback used to set; the new code attaches
    the schedule, so steps, epochs and learning rates continue as in an uninterrupted run (weights
    differ: the old augmentation drew from a stateful generator)."""
    old = _pre_split_train(monkeypatch)
    config, whole = runs_config(trained_tiny_run), trained_tiny_run
    legacy = tmp_path / "legacy"
    make_callbacks = old._make_callbacks
    old._make_callbacks = lambda run_dir, *a: [stop_at(run_dir, 6), *make_callbacks(run_dir, *a)]
    known = {f.name for f in dataclasses.fields(old.TrainConfig)}  # later fields are at their defaults
    cfg = {k: v for k, v in config.to_dict().items() if k in known}
    old_augment = {f.name for f in dataclasses.fields(old.Augment)}
    cfg["augment"] = {k: v for k, v in cfg["augment"].items() if k in old_augment}
    assert old.fit(old.TrainConfig.from_dict(cfg), legacy, verbose=0)["state"] == "stopped"
    assert "pid_start" not in runs.read_status(legacy)
    final = fit(config, legacy, resume=True, verbose=0)
    assert final["state"] == "finished" and final["completed_epochs"] == 3
    rows_whole, lr_whole = _trace(whole)
    rows_legacy, lr_legacy = _trace(legacy)
    assert rows_legacy == rows_whole
    np.testing.assert_allclose(lr_legacy, lr_whole, rtol=1e-6)


@pytest.mark.data
@pytest.mark.slow
def test_sigterm_mid_epoch_stops_cleanly_and_resume_finishes(tmp_path, fer_dir):
    """The acceptance recipe: coursera, subset 2000 of FER2013; SIGTERM mid-epoch; --resume."""
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"log_every": 2}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.train", "--config", str(cfg), "--data", str(fer_dir),
         "--model", "coursera", "--epochs", "1", "--subset", "2000", "--run-dir", str(run), "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline:
        m = runs.read_metrics(run)
        if len(m) and (m["kind"] == "batch").sum() >= 2:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    status = runs.read_status(run)
    assert status["state"] == "stopped"
    assert status["completed_epochs"] == 0 and status["step"] < status["steps_per_epoch"]
    assert (run / runs.LAST).exists()
    steps_before = int(runs.read_metrics(run)["step"].max())
    res = _train_cli("--resume", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    status = runs.read_status(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 1
    assert status["step"] == status["steps_per_epoch"]  # the stopped epoch was finished, not restarted
    metrics = runs.read_metrics(run)
    assert metrics["step"].max() > steps_before
    assert metrics["step"][metrics.kind == "batch"].is_monotonic_increasing
    assert (run / "export" / "model.tflite").exists()


def test_a_fine_tuning_run_records_the_architecture_it_loads(tmp_path, class_folder):
    """--init-from loads that model whatever --model says; config.json must say what was trained."""
    from fercore.models.architectures import build_model, save_model

    src = save_model(build_model("fernet", **TINY), tmp_path / "src.keras", {"model": "fernet", "model_params": TINY})
    run = tmp_path / "ft"
    cfg = _tiny_config(tmp_path, class_folder, epochs=1, model="coursera", model_params={}, init_from=str(src))
    res = _train_cli("--config", str(cfg), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    recorded = runs.read_config(run)
    assert recorded["model"] == "fernet" and recorded["model_params"] == TINY
    assert recorded["init_from_config"] == {"model": "fernet", "model_params": TINY}  # the source's own config
    from fercore.models.architectures import read_model_config

    assert read_model_config(run / "export" / "model.keras")["model"] == "fernet"
