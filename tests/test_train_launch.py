"""Starting a training in the background (:mod:`fercore.train.launch`): one training at a time, the lock
handed to the training process, a resume of a run with nothing to resume."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fercore import runs
from fercore.train.config import TrainConfig
from fercore.train.launch import launch_training
from tests.conftest import ROOT, TINY

# ----------------------------------------------------------------------------------------------
# One training at a time


@pytest.fixture
def fake_python(tmp_path) -> str:
    """Stands in for ``python -m training.train``: holds the inherited lock for a moment, then exits."""
    stub = tmp_path / "fake-python"
    stub.write_text("#!/bin/sh\nsleep 0.4\n")
    stub.chmod(0o755)
    return str(stub)


def _wait_free(root: Path, timeout: float = 10) -> None:
    """Until the lock handed to the fake trainer is released (the fake has exited)."""
    deadline = time.time() + timeout
    while True:
        try:
            fd = runs.take_lock(root)
        except runs.TrainingBusyError:
            assert time.time() < deadline, "the lock was never released"
            time.sleep(0.05)
            continue
        os.close(fd)
        return


def _launch(root: Path, python: str, barrier: threading.Barrier, outcome: list[str]) -> None:
    barrier.wait()
    try:
        launch_training(TrainConfig(data="x"), root, python=python)
        outcome.append("started")
    except runs.TrainingBusyError as exc:
        assert "already running" in str(exc)
        outcome.append("busy")


def test_two_launches_in_threads_exactly_one_starts_20_of_20(tmp_path, fake_python):
    root = tmp_path / "runs"
    for trial in range(20):
        barrier, outcome = threading.Barrier(2), []
        threads = [threading.Thread(target=_launch, args=(root, fake_python, barrier, outcome)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome) == ["busy", "started"], (trial, outcome)
        assert len(runs.list_runs(root)) == trial + 1  # the loser left nothing behind
        _wait_free(root)


LAUNCHER = """
import sys, time
from fercore import runs
from fercore.train.launch import launch_training
from fercore.train.config import TrainConfig
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
try:
    launch_training(TrainConfig(data="x"), sys.argv[2], python=sys.argv[3])
    print("started")
except runs.TrainingBusyError as exc:
    print("busy", exc)
"""


@pytest.mark.slow
def test_two_launches_in_processes_exactly_one_starts_20_of_20(tmp_path, fake_python):
    root = tmp_path / "runs"
    for trial in range(20):
        at = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(at), str(root), fake_python], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
        outs = sorted(p.communicate(timeout=60)[0].split()[0] for p in procs)
        assert outs == ["busy", "started"], (trial, outs)
        _wait_free(root)
    assert len(runs.list_runs(root)) == 20


@pytest.mark.slow
def test_launch_hands_the_lock_to_a_real_training(tmp_path, class_folder):
    """The launcher's lock passes to the training process (inherited fd): while it trains no other
    launch starts; when it ends the lock is free and the run says why it ended."""
    root = tmp_path / "runs"
    config = {"data": str(class_folder), "model_params": TINY, "epochs": 1, "batch_size": 32, "log_every": 1}
    config = TrainConfig.from_dict(config)
    run = launch_training(config, root)
    assert runs.read_status(run)["state"] == "starting"  # at once: the launcher began the run
    assert runs.view(run).config == config.to_dict() and not (run / "requested_config.json").exists()
    with pytest.raises(runs.TrainingBusyError, match=run.name):
        launch_training(config, root)
    deadline = time.time() + 600
    while runs.view(run).active and time.time() < deadline:
        time.sleep(0.5)
    status = runs.read_status(run)
    assert status["state"] == "finished", runs.log_tail(run)
    assert runs.lock_holder(root) == {}
    runs.write_config(root / "run-nothing", config.to_dict())
    missing = launch_training(None, root, resume=root / "run-nothing")  # no checkpoint to resume from
    deadline = time.time() + 120
    while runs.view(missing).active and time.time() < deadline:
        time.sleep(0.2)
    assert runs.view(missing).state == "failed" and "nothing to resume" in runs.view(missing).reason
    os.close(runs.take_lock(root))
