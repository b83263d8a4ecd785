"""Multi-worker training for real: two ``python -m training.train --strategy multiworker`` processes
on loopback, one TF_CONFIG cluster. Only the chief (worker 0) writes the run directory; the other
worker trains in lockstep, takes no lock and leaves nothing behind; a stop reaching either worker
stops both after the same batch, and both resume from the chief's checkpoint.

Each worker gets one thread (OMP / TensorFlow intra- and inter-op) so that two of them share a
2-core machine; the data and the model are the tiny generated ones (140 images, 7k parameters).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fercore import runs
from tests.conftest import ROOT, TINY, synthetic_faces

BOUND_S = 150  # per launch of both workers; one takes ~45 s on a busy 2-core machine


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once, then released for the workers)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """Starts the workers of one job, each in its own process group; ``kill`` ends whatever is
    left of them (the fixture calls it whatever happens in the test)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, *args: str, workers: int = 2) -> list[subprocess.Popen]:
        hosts = [f"127.0.0.1:{p}" for p in _free_ports(workers)]
        procs = []
        for i in range(workers):
            tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
            tmp = self.tmp_path / f"tmp{i}"  # the worker's TMPDIR: where a non-chief's scratch goes
            tmp.mkdir(exist_ok=True)
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2",
                   "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
                   "PYTHONUNBUFFERED": "1"}  # fmt: skip
            log = self.tmp_path / f"worker{i}-{len(self.logs)}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen([sys.executable, "-m", "training.train", *args, "--quiet"], cwd=ROOT, env=env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
            self.procs.append(proc)
            self.logs.append(log)
            procs.append(proc)
        return procs

    def wait(self, procs: list[subprocess.Popen], bound: float = BOUND_S) -> list[int]:
        """Exit codes of ``procs``; fails when one exits non-zero (the others would wait for it
        forever) or when they are not all done within ``bound`` seconds."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes) or all(c is not None for c in codes):
                break
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
        assert codes == [0] * len(procs), f"exit codes {codes} after at most {bound} s\n{self.tails()}"
        return codes

    def tails(self, chars: int = 1500) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable: report, do not hang
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.kill()


def _config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = {"data": str(data), "model": "fernet", "model_params": TINY, "epochs": 1, "batch_size": 32,
           "lr": 0.01, "log_every": 1, **extra}  # fmt: skip
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _tensorboard_pids(run: Path) -> set[int]:
    """The pids in the TensorBoard event file names (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``)."""
    names = [f.name for f in (run / runs.TENSORBOARD).rglob("events.out.tfevents.*")]
    return {int(m.group(1)) for m in (re.search(r"\.(\d+)\.\d+\.v2$", n) for n in names) if m}


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),  # no cluster: a single worker is its own chief
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
])  # fmt: skip
def test_the_chief_is_worker_0_or_the_chief_task(monkeypatch, tf_config, chief):
    from fercore.train.distributed import is_chief

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief("multiworker") is chief
    assert is_chief("default") and is_chief("mirrored")  # TF_CONFIG only matters to multiworker


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path, class_folder):
    res = subprocess.run([sys.executable, "-m", "training.train", "--config", str(_config(tmp_path, class_folder)),
                          "--batch-size", "33", "--strategy", "mirrored", "--logical-cpus", "2",
                          "--run-dir", str(tmp_path / "run"), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)  # fmt: skip
    assert res.returncode == 2 and "batch size 33 does not split evenly over 2 replicas" in res.stderr


@pytest.mark.slow
def test_two_workers_train_one_epoch_and_only_the_chief_writes(tmp_path, class_folder, cluster):
    root = tmp_path / "runs"  # the same runs root and run directory for both, as on shared storage
    run = root / "run"
    t0 = time.monotonic()
    chief, worker = cluster.start("--config", str(_config(tmp_path, class_folder)), "--run-dir", str(run),
                                  "--strategy", "multiworker")  # fmt: skip
    cluster.wait([chief, worker])
    elapsed = time.monotonic() - t0
    print(f"two workers, one epoch, export included: {elapsed:.1f} s")

    status = runs.read_status(run)
    assert status["state"] == "finished", cluster.tails()
    assert status["pid"] == chief.pid and not status.get("export_error")
    assert (status["completed_epochs"], status["checkpoint_step"], status["steps_per_epoch"]) == (1, 4, 4)
    assert status["n_val"] == 34  # 35 validation images trimmed to a multiple of the 2 replicas
    # the non-chief was not refused by the lock, and wrote nothing: not in the run directory (one
    # writer's metrics, TensorBoard files of the chief's pid only), not in its own temp folder
    assert sorted(p.name for p in root.iterdir()) == [runs.LOCK, "run"]
    metrics = runs.read_metrics(run)
    assert metrics["kind"].tolist() == ["batch"] * 4 + ["epoch"]
    assert metrics["step"].tolist() == [1, 2, 3, 4, 4]
    assert _tensorboard_pids(run) == {chief.pid}
    assert not list((tmp_path / "tmp1").iterdir())
    assert not list(run.rglob("*.tmp"))
    for name in (runs.CONFIG, runs.LAST, runs.BEST, "export/model.keras", "export/model.tflite"):
        assert (run / name).exists(), name

    # the exported model loads and predicts, as LiteRT and as Keras, alike
    from fercore.inference.classify import load_backend
    from fercore.models.architectures import load_keras_model

    images, _ = synthetic_faces(8, seed=3)
    x = images[..., None].astype(np.float32)
    lite = load_backend(run / "export" / "model.tflite").predict(x)
    assert lite.shape == (8, 7) and np.isfinite(lite).all()
    np.testing.assert_allclose(lite.sum(axis=1), 1.0, atol=1e-4)
    keras_model = load_keras_model(run / "export" / "model.keras")
    np.testing.assert_allclose(np.asarray(keras_model(x, training=False)), lite, atol=1e-4)


@pytest.mark.slow
def test_a_stop_at_either_worker_stops_both_and_both_resume(tmp_path, class_folder, cluster):
    """SIGTERM to the non-chief: both stop after the same batch, the chief saves the checkpoint;
    ``--resume`` on both finishes the epoch from it."""
    run = tmp_path / "runs" / "run"
    cfg = _config(tmp_path, class_folder, batch_size=4)  # 35 short steps: the stop lands mid-epoch
    chief, worker = cluster.start("--config", str(cfg), "--run-dir", str(run), "--strategy", "multiworker")
    deadline = time.monotonic() + BOUND_S
    while (runs.read_metrics(run)["kind"] == "batch").sum() < 2:
        assert chief.poll() is None and worker.poll() is None, cluster.tails()
        assert time.monotonic() < deadline, cluster.tails()
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    cluster.wait([chief, worker])
    status = runs.read_status(run)
    assert status["state"] == "stopped", cluster.tails()
    assert 2 <= status["step"] < 35 and status["checkpoint_step"] == status["step"]
    assert (run / runs.LAST).exists() and not (run / runs.EXPORT).exists()

    cluster.wait(cluster.start("--resume", str(run)))
    status = runs.read_status(run)
    assert status["state"] == "finished" and status["completed_epochs"] == 1, cluster.tails()
    assert status["step"] == 35 and status["pid"] == cluster.procs[2].pid
    batches = runs.read_metrics(run).query("kind == 'batch'")["step"].tolist()
    assert batches == list(range(1, 36))  # every step once: none lost, none repeated
    assert (run / "export" / "model.tflite").exists()
    assert not list((tmp_path / "tmp1").iterdir())
