"""fercore.runs: one training at a time (flock lock shared by the CLI and the launcher), owners
identified by pid + start time, and run directories that tell the truth after any death or damage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fercore import runs
from fercore.train.config import TrainConfig
from tests.conftest import ROOT, TINY


def test_begin_run_writes_the_config_and_the_first_status(tmp_path):
    """The one writer of a fresh run's config.json and first status.json (the launcher's or the CLI's)."""
    from fercore.train.fit import begin_run

    run = tmp_path / "runs" / "run-1"
    recorded = begin_run(TrainConfig(data="x", epochs=3), run)
    assert runs.read_config(run) == recorded.to_dict() and recorded.epochs == 3
    status = runs.read_status(run)
    assert status["state"] == "starting" and status["epochs"] == 3 and status["error"] is None
    assert status["pid"] == os.getpid() and status["pid_start"] and runs.view(run).active


def test_cli_loses_to_a_held_lock_with_one_line_and_exit_2(tmp_path, class_folder):
    root = tmp_path / "runs"
    with runs.training_lock(root, "run-holder"):
        res = subprocess.run([sys.executable, "-m", "training.train", "--data", str(class_folder), "--run-dir",
                              str(root / "new")], cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: a training is already running: run-holder (pid {os.getpid()}); one training at a time"
    ]
    assert not (root / "new").exists()


def test_a_lock_file_left_by_a_dead_or_reused_pid_is_no_obstacle(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    for holder in ({"pid": 2**22 + 7, "pid_start": 1, "run": "ghost"}, {**runs.owner(), "run": "reused"}):
        (root / runs.LOCK).write_text(json.dumps(holder))
        with runs.training_lock(root, "mine"):
            assert runs.lock_holder(root)["run"] == "mine" and runs.lock_holder(root)["pid"] == os.getpid()
        assert runs.lock_holder(root) == {}


def test_a_live_run_of_code_without_the_lock_still_counts(tmp_path):
    """runs/member_b-style runs (started before the lock existed) make the folder busy while they live."""
    root = tmp_path / "runs"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        run = root / "run-legacy"
        run.mkdir(parents=True)
        runs.write_config(run, {"model": "fernet"})
        runs.write_json_atomic(run / runs.STATUS, {"state": "running", "pid": sleeper.pid, "started": time.time()})
        with pytest.raises(runs.TrainingBusyError, match="run-legacy"):
            runs.take_lock(root)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert runs.view(run).state == "failed"
    os.close(runs.take_lock(root))


# ----------------------------------------------------------------------------------------------
# Owners: pid + start time


def test_elsewhere_than_linux_the_lock_and_owner_are_one_clear_error(tmp_path, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("fercore.runs.owner"), "SUPPORTED", False)
    with pytest.raises(runs.UnsupportedPlatformError, match="lock needs Linux/POSIX"):
        runs.take_lock(tmp_path)
    with pytest.raises(runs.UnsupportedPlatformError, match="needs Linux/POSIX"):
        runs.owner()
    assert not (tmp_path / runs.LOCK).exists()


def test_owner_is_pid_plus_start_time(tmp_path):
    me = runs.owner()
    assert runs.owner_alive({**me, "state": "running"})
    assert not runs.owner_alive({**me, "pid_start": me["pid_start"] + 1})  # the pid now names another process
    assert not runs.owner_alive({"pid": 2**22 + 7, "pid_start": 1})
    assert not runs.owner_alive({})
    # recorded before pid_start existed: a process younger than the run cannot be its owner
    assert runs.owner_alive({"pid": os.getpid(), "started": time.time()})
    assert not runs.owner_alive({"pid": os.getpid(), "started": time.time() - 3600 * 24 * 365})


# ----------------------------------------------------------------------------------------------
# Readers survive any damage


def _run(root: Path, name: str, status: bytes | str | None, config: bytes | str = '{"model": "fernet"}') -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / runs.CONFIG).write_bytes(config.encode() if isinstance(config, str) else config)
    if status is not None:
        (run / runs.STATUS).write_bytes(status.encode() if isinstance(status, str) else status)
    return run


@pytest.mark.parametrize("status, state, why", [
    ("[1, 2]", "unreadable", "holds a JSON list, not an object"),
    ('"running"', "unreadable", "holds a JSON str"),
    (b'{"state": "runn\xff\xfe"}', "unreadable", "not valid JSON"),
    ("{truncated", "unreadable", "not valid JSON"),
    ('{"state": 5}', "unreadable", "'state' has the wrong type"),
    ('{"state": "dancing"}', "unreadable", "'state' has the wrong type"),
    ('{"state": "running", "pid": "12", "epoch": "x", "started": "yesterday"}', "failed", runs.KILLED),
    ('{"state": "running"}', "failed", runs.KILLED),
    ('{"state": "finished", "best_val_accuracy": "high", "completed_epochs": true}', "finished", ""),
    (None, "unknown", "no status.json"),
])  # fmt: skip
def test_damaged_status_is_reported_not_raised(tmp_path, status, state, why):
    run = _run(tmp_path, "run-x", status)
    view = runs.view(run)
    assert view.state == state and why in view.reason
    assert all(isinstance(view.status.get(k), (t, type(None))) for k, t in runs.STATUS_TYPES.items())
    assert isinstance(runs.read_status(run), dict)
    [row] = runs.summary_rows(tmp_path)
    assert row["state"] == state


def test_damaged_config_and_metrics_show_what_can_be_read(tmp_path):
    run = _run(tmp_path, "run-y", '{"state": "stopped", "started": 1.0, "finished": 61.0}', config="[]")
    assert runs.view(run).config == {} and "config.json: holds a JSON list" in runs.view(run).problems[0]
    rows = "1.0,batch,1,2,2.5,0.3,,,0.01\n2.0,epoch,1,4,2.0,0.4,1.9,0.5,0.01\n"
    (run / runs.METRICS).write_text(rows)  # no header
    m = runs.read_metrics(run)
    assert m["step"].tolist() == [2, 4] and m["val_accuracy"].iloc[1] == 0.5
    (run / runs.METRICS).write_bytes(b"time,kind\xff,epoch\n\xfe\xff\n" + rows.encode() + b"3.0,bat")
    assert runs.read_metrics(run)["step"].tolist() == [2, 4]
    (run / runs.METRICS).write_bytes(b"\xff\xfe\x00garbage")
    assert runs.read_metrics(run).empty
    [row] = runs.summary_rows(tmp_path)
    assert row["state"] == "stopped" and row["duration"] == "1m00s" and row["model"] == ""
    assert runs.AVERAGED_COLUMN not in row  # no run averaged weights: no column of "None"s


def test_metrics_after_a_cut_off_line_and_truncation_for_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.METRICS).write_bytes(b"")  # killed right after creating it: still gets its header
    runs.append_metrics(run, {"kind": "batch", "epoch": 1, "step": 2, "lr": 0.1})
    with open(run / runs.METRICS, "a") as fh:
        fh.write("9.9,batch,1,3,0.")  # killed mid-row
    runs.append_metrics(run, {"kind": "batch", "epoch": 1, "step": 4, "lr": 0.1})
    runs.append_metrics(run, {"kind": "epoch", "epoch": 1, "step": 4, "lr": 0.1})
    runs.append_metrics(run, {"kind": "batch", "epoch": 2, "step": 6, "lr": 0.1})
    assert runs.read_metrics(run)["step"].tolist() == [2, 4, 4, 6]
    runs.truncate_metrics(run, 4)
    assert runs.read_metrics(run)["step"].tolist() == [2, 4, 4]
    assert (run / runs.METRICS).read_text().splitlines()[0] == ",".join(runs.METRIC_FIELDS)


# ----------------------------------------------------------------------------------------------
# Real SIGKILLs on a tiny run


KILLER = """
import os, signal, sys
import fercore.models.architectures
from fercore.train import callbacks
from fercore.train.__main__ import main

mode, at = sys.argv[1], int(sys.argv[2])
if mode == "step":  # die right after global step `at` was logged
    logged = callbacks.RunLogger.on_train_batch_end

    def on_end(self, batch, logs=None):
        logged(self, batch, logs)
        if self.step == at:
            os.kill(os.getpid(), signal.SIGKILL)

    callbacks.RunLogger.on_train_batch_end = on_end
else:  # die halfway through writing last.keras for the `at`-th time
    save, count = fercore.models.architectures.save_model, [0]

    def dying_save(model, path, config=None):
        if path.name == "last.keras":
            count[0] += 1
            if count[0] == at:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_name("last.tmp.keras").write_bytes(b"PK\\x03\\x04 half a zip")
                os.kill(os.getpid(), signal.SIGKILL)
        return save(model, path, config)

    fercore.models.architectures.save_model = dying_save
sys.exit(main(sys.argv[3:]))
"""


def _killed_run(tmp_path: Path, data: Path, mode: str, at: int) -> Path:
    run = tmp_path / "runs" / "run-killed"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"data": str(data), "model_params": TINY, "epochs": 3, "batch_size": 32,
                               "log_every": 1, "lr": 0.01}))  # fmt: skip
    res = subprocess.run([sys.executable, "-c", KILLER, mode, str(at), "--config", str(cfg), "--run-dir", str(run),
                          "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    view = runs.view(run)
    assert runs.read_status(run)["state"] in runs.ACTIVE_STATES  # what the dead process left behind …
    assert view.state == "failed" and view.reason == runs.KILLED  # … is not what readers are told
    assert runs.active_run(run.parent) is None
    return run


def _resume(run: Path) -> dict:
    from fercore.train import TrainConfig, fit

    return fit(TrainConfig.from_dict(runs.read_config(run)), run, resume=True, verbose=0)


@pytest.mark.slow
def test_sigkill_before_the_first_checkpoint(tmp_path, class_folder):
    run = _killed_run(tmp_path, class_folder, "step", 2)
    assert not (run / runs.LAST).exists()
    res = subprocess.run([sys.executable, "-m", "training.train", "--resume", str(run)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "nothing to resume" in res.stderr
    assert runs.view(run).state == "failed"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes_without_duplicate_rows(tmp_path, class_folder, no_export):
    run = _killed_run(tmp_path, class_folder, "step", 6)  # 4 steps per epoch: after the epoch-1 checkpoint
    assert runs.read_status(run)["checkpoint_step"] == 4
    status = _resume(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 3 and status["step"] == 12
    m = runs.read_metrics(run)
    assert m[m.kind == "batch"]["step"].tolist() == list(range(1, 13))
    assert m[m.kind == "epoch"]["step"].tolist() == [4, 8, 12]


@pytest.mark.slow
def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path, class_folder, no_export):
    run = _killed_run(tmp_path, class_folder, "save", 2)  # the epoch-2 save of last.keras
    from fercore.models.architectures import read_model_config

    assert read_model_config(run / runs.LAST)["step"] == 4  # epoch 1's, intact
    status = _resume(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 3
    m = runs.read_metrics(run)
    assert m[m.kind == "epoch"]["epoch"].tolist() == [1, 2, 3]
