"""Start ``python -m training.train`` as a detached process that owns a run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fercore.runs.files import LOCK_FD_ENV, LOG, PROJECT_ROOT, default_runs_dir, new_run_id, update_status, write_config
from fercore.runs.owner import owner, record_holder, take_lock


def launch_training(
    config: dict[str, Any],
    runs_dir: str | Path | None = None,
    python: str | None = None,
    resume: str | Path | None = None,
) -> Path:
    """Start a training of ``config`` in a new run directory (or continue the run ``resume``)
    in the background and return the run directory, whose status.json says ``starting`` at once.

    The runs folder's lock is taken here, atomically, and handed to the training process, so of
    two simultaneous launches exactly one starts; the other raises
    :class:`fercore.runs.TrainingBusyError`. Console output goes to the run's ``log.txt``.
    """
    root = Path(runs_dir or default_runs_dir())
    fd = take_lock(root)
    run_dir = Path(resume) if resume else root / new_run_id()
    try:
        run_dir.mkdir(parents=True, exist_ok=bool(resume))
        record_holder(fd, run_dir.name)
        if resume:
            args = ["--resume", str(run_dir.resolve())]
        else:
            cfg_file = run_dir / "requested_config.json"
            cfg_file.write_text(json.dumps(config, indent=2))
            write_config(run_dir, config)
            args = ["--config", str(cfg_file.resolve()), "--run-dir", str(run_dir.resolve())]
        # until the child runs, the launcher owns the run (a launcher that dies leaves it "failed")
        update_status(run_dir, state="starting", started=time.time(), error=None, finished=None, **owner())
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", LOCK_FD_ENV: str(fd)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        with open(run_dir / LOG, "ab") as log:
            proc = subprocess.Popen(
                [python or sys.executable, "-m", "training.train", *args, "--quiet"],
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
