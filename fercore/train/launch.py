"""Start the training entry point (:mod:`fercore.train.__main__`) as a detached process that owns a run
directory. The entry point is imported here, so the import graph sees what the launcher starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import fercore.train.__main__ as train_entry
from fercore.runs.files import LOCK_FD_ENV, LOG, PROJECT_ROOT, default_runs_dir, new_run_id, update_status
from fercore.runs.owner import owner, record_holder, take_lock
from fercore.train.config import TrainConfig
from fercore.train.fit import begin_run

ENTRY_MODULE = train_entry.__name__.removesuffix(".__main__")  # python -m fercore.train


def launch_training(
    config: TrainConfig | None,
    runs_dir: str | Path | None = None,
    python: str | None = None,
    resume: str | Path | None = None,
) -> Path:
    """Start a training of ``config`` (validated when it was built) in a new run directory, or continue
    the run ``resume`` (``config`` is then unused), in the background; return the run directory, whose
    status.json says ``starting`` at once. ``python``: the interpreter (this one by default).

    The runs folder's lock is taken here, atomically, and handed to the training process, so of
    two simultaneous launches exactly one starts; the other raises
    :class:`fercore.runs.TrainingBusyError`. Console output goes to the run's ``log.txt``.
    """
    fresh = None if resume else config
    if fresh is None and not resume:
        raise ValueError("a new run needs a training config")
    root = Path(runs_dir or default_runs_dir())
    fd = take_lock(root)
    run_dir = Path(resume) if resume else root / new_run_id()
    try:
        run_dir.mkdir(parents=True, exist_ok=bool(resume))
        record_holder(fd, run_dir.name)
        # until the child runs, the launcher owns the run (a launcher that dies leaves it "failed")
        if fresh is None:
            args = ["--resume", str(run_dir.resolve())]
            update_status(run_dir, state="starting", started=time.time(), error=None, finished=None, **owner())
        else:
            begin_run(fresh, run_dir)
            args = ["--launched", "--run-dir", str(run_dir.resolve())]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", LOCK_FD_ENV: str(fd)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        with open(run_dir / LOG, "ab") as log:
            proc = subprocess.Popen(
                [python or sys.executable, "-m", ENTRY_MODULE, *args, "--quiet"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(PROJECT_ROOT),
                env=env,
                start_new_session=True,
                pass_fds=(fd,),
            )
        record_holder(fd, run_dir.name, proc.pid)
        update_status(run_dir, **owner(proc.pid))
    except BaseException as exc:
        if run_dir.exists():
            update_status(run_dir, state="failed", error=f"not started: {type(exc).__name__}: {exc}")
        raise
    finally:
        os.close(fd)  # the child holds the lock now (same open file), or nobody does
    return run_dir
