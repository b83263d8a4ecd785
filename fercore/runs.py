"""Run directories: the only module that knows their file names.

A run lives in ``runs/<id>/``::

    config.json       resolved training config
    status.json       state (starting|running|stopping|stopped|finished|failed), epoch, step, eta, error
    metrics.csv       one row every few batches (kind=batch) and one per epoch (kind=epoch)
    log.txt           the training process's console output (written by whoever launches it)
    STOP              present = a stop was requested
    checkpoints/best.keras, checkpoints/last.keras
    export/           the final model in every format
    tb/               TensorBoard logs
"""

from __future__ import annotations

import csv
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.csv"
LOG = "log.txt"
STOP = "STOP"
BEST = "checkpoints/best.keras"
LAST = "checkpoints/last.keras"
EXPORT = "export"
TENSORBOARD = "tb"

METRIC_FIELDS = ["time", "kind", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
ACTIVE_STATES = {"starting", "running", "stopping"}


def default_runs_dir() -> Path:
    """``$FER_RUNS`` or ``runs/`` under the current directory."""
    return Path(os.environ.get("FER_RUNS", "runs"))


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique-enough id such as ``run-20261123-235959``."""
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def path(run_dir: str | Path, name: str) -> Path:
    """A file of a run (one of the names above)."""
    return Path(run_dir) / name


def write_json_atomic(file: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers never see half a file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, file)


def read_json(file: Path) -> dict[str, Any]:
    """A JSON file as a dict; {} when missing or unreadable."""
    try:
        return json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return {}


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    write_json_atomic(path(run_dir, CONFIG), config)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return read_json(path(run_dir, CONFIG))


def read_status(run_dir: str | Path) -> dict[str, Any]:
    return read_json(path(run_dir, STATUS))


def update_status(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (and stamp ``updated``)."""
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    write_json_atomic(path(run_dir, STATUS), status)
    return status


def append_metrics(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one row to metrics.csv (header written on first use); flushed at once."""
    file = path(run_dir, METRICS)
    new = not file.exists()
    with open(file, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})


def read_metrics(run_dir: str | Path):
    """metrics.csv as a pandas DataFrame (complete lines only; empty frame when none)."""
    import pandas as pd

    file = path(run_dir, METRICS)
    if not file.exists():
        return pd.DataFrame(columns=METRIC_FIELDS)
    text = file.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    from io import StringIO

    try:
        df = pd.read_csv(StringIO(text), on_bad_lines="skip")
    except (ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=METRIC_FIELDS)
    return df


def request_stop(run_dir: str | Path) -> None:
    """Ask a running training to stop after its current batch."""
    path(run_dir, STOP).write_text(str(time.time()))


def stop_requested(run_dir: str | Path) -> bool:
    return path(run_dir, STOP).exists()


def clear_stop(run_dir: str | Path) -> None:
    try:
        path(run_dir, STOP).unlink()
    except FileNotFoundError:
        pass


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def effective_state(run_dir: str | Path) -> str:
    """status.json's state, but ``failed`` for an active run whose process is gone."""
    status = read_status(run_dir)
    state = status.get("state", "unknown")
    if state in ACTIVE_STATES and status.get("pid") and not pid_alive(status.get("pid")):
        return "failed"
    return state


def list_runs(runs_dir: str | Path | None = None) -> list[Path]:
    """Run directories (those with a config.json), newest first."""
    root = Path(runs_dir or default_runs_dir())
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / CONFIG).exists()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def active_run(runs_dir: str | Path | None = None) -> Path | None:
    """The run that is training now, if any."""
    for run in list_runs(runs_dir):
        if effective_state(run) in ACTIVE_STATES:
            return run
    return None


def log_tail(run_dir: str | Path, lines: int = 30) -> str:
    """The last lines of a run's console log."""
    try:
        text = path(run_dir, LOG).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


class TrainingBusyError(RuntimeError):
    """Raised when a training is already running (one at a time)."""


def launch_training(config: dict[str, Any], runs_dir: str | Path | None = None,
                    python: str | None = None) -> Path:
    """Start ``python -m training.train`` for ``config`` as a detached background process.

    Returns the new run directory (its status.json says ``starting`` at once). Its console output
    goes to ``log.txt``. Only one training at a time: raises :class:`TrainingBusyError` otherwise.
    """
    import subprocess
    import sys

    root = Path(runs_dir or default_runs_dir())
    busy = active_run(root)
    if busy is not None:
        raise TrainingBusyError(f"a training is already running: {busy.name}")
    run_dir = root / new_run_id()
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{new_run_id()}-{n}"
    run_dir.mkdir(parents=True)
    cfg_file = run_dir / "requested_config.json"
    cfg_file.write_text(json.dumps(config, indent=2))
    write_config(run_dir, config)
    project_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_root), env.get("PYTHONPATH")]))
    with open(run_dir / LOG, "ab") as log:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "training.train", "--config", str(cfg_file.resolve()),
             "--run-dir", str(run_dir.resolve()), "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(project_root),
            env=env, start_new_session=True,
        )
    update_status(run_dir, state="starting", pid=proc.pid, started=time.time())
    return run_dir
