"""fercore.train and python -m training.train: config, augmentation, schedule, run directory,
stop/resume, distribution strategy, bad input."""

from __future__ import annotations

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
from fercore.train import Augment, TrainConfig, class_weight_vector, lr_at, stratified_subset
from tests.conftest import ROOT, TINY

OFF = {k: (False if isinstance(v, bool) else 0.0) for k, v in Augment().__dict__.items()}


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config keys: epochz"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="unknown augment keys"):
        TrainConfig.from_dict({"augment": {"spin": 1}})
    cfg = TrainConfig.from_dict({"epochs": 3, "augment": {"flip": False}})
    assert cfg.epochs == 3 and cfg.augment.flip is False and cfg.augment.rotation == 10.0


def test_augment_off_is_identity_and_flip_only_mirrors():
    import tensorflow as tf

    from fercore.train import augment_batch

    x = np.random.default_rng(0).integers(0, 255, (16, 48, 48, 1)).astype(np.float32)
    same = augment_batch(tf.constant(x), Augment(**OFF)).numpy()
    np.testing.assert_array_equal(same, x)
    flipped = augment_batch(tf.constant(x), Augment(**{**OFF, "flip": True})).numpy()
    mirrored = [np.array_equal(f, o[:, ::-1]) for f, o in zip(flipped, x)]
    unchanged = [np.array_equal(f, o) for f, o in zip(flipped, x)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)
    full = augment_batch(tf.constant(x), Augment()).numpy()
    assert full.shape == x.shape and full.min() >= 0 and full.max() <= 255
    assert not np.array_equal(full, x)


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(epochs=10, lr=0.1, warmup_epochs=1, schedule="onecycle")
    lrs = [lr_at(s, 100, cfg) for s in range(0, 1000, 10)]
    assert lrs[0] < 0.02 and max(lrs) == pytest.approx(0.1, rel=0.02)
    assert lrs[-1] < 0.001 and np.argmax(lrs) == 10
    assert lr_at(500, 100, TrainConfig(schedule="constant", lr=0.3)) == 0.3


def test_class_weights_and_subset_keep_proportions():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    w = class_weight_vector(labels)
    assert w[2] > w[1] > w[0]
    idx = stratified_subset(labels, 50, seed=0)
    assert np.bincount(labels[idx]).tolist() == [35, 10, 5]


def _train_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "training.train", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=900, **kw)


def _tiny_config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = {"data": str(data), "model": "fernet", "model_params": TINY, "epochs": 2, "batch_size": 32,
           "lr": 0.01, "log_every": 2, **extra}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_fit_writes_a_complete_run_directory(tmp_path, class_folder):
    run = tmp_path / "run"
    res = _train_cli("--config", str(_tiny_config(tmp_path, class_folder)), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    status = runs.read_status(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 2
    assert runs.read_config(run)["model_params"]["widths"] == TINY["widths"]
    metrics = runs.read_metrics(run)
    assert set(metrics["kind"]) == {"batch", "epoch"}
    assert metrics[metrics.kind == "epoch"]["epoch"].tolist() == [1, 2]
    assert metrics[metrics.kind == "epoch"]["val_accuracy"].notna().all()
    for name in (runs.BEST, runs.LAST, "export/model.tflite", "export/model.json",
                 "export/model.weights.h5", "export/model.keras"):
        assert (run / name).exists(), name
    assert any((run / runs.TENSORBOARD).rglob("events.out.tfevents.*"))
    from fercore.model import read_model_config

    stored = read_model_config(run / runs.BEST)
    assert stored["model"] == "fernet" and stored["epoch"] >= 1


def test_mirrored_strategy_over_two_logical_cpus(tmp_path, class_folder):
    run = tmp_path / "run"
    res = _train_cli("--config", str(_tiny_config(tmp_path, class_folder, epochs=1)),
                     "--run-dir", str(run), "--strategy", "mirrored", "--logical-cpus", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert runs.read_status(run)["state"] == "finished"


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/fer"], "no such file or folder"),
    (["--data", "{tmp}"], "no class folders found"),
    (["--data", "{csv}"], "wrong header"),
    (["--model", "fernet"], "no data"),
])
def test_cli_bad_input_one_line_no_traceback(tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    args = [a.format(tmp=tmp_path, csv=tmp_path / "bad.csv") for a in args]
    res = _train_cli(*args, "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_sigterm_mid_epoch_stops_cleanly_and_resume_finishes(tmp_path, fer_dir):
    """The acceptance recipe: coursera, subset 2000 of FER2013; SIGTERM mid-epoch; --resume."""
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"log_every": 2}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.train", "--config", str(cfg), "--data", str(fer_dir),
         "--model", "coursera", "--epochs", "1", "--subset", "2000", "--run-dir", str(run), "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    metrics = runs.read_metrics(run)
    assert metrics["step"].max() > steps_before  # the optimizer's step count carried over
    assert (run / "export" / "model.tflite").exists()
