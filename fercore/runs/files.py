"""The files of a run directory: the only module that knows their names.

A run lives in ``<runs root>/<id>/``::

    config.json       resolved training config
    status.json       state (starting|running|stopping|stopped|finished|failed), owner pid and its
                      start time, epoch, step, eta, error
    metrics.csv       one row every few batches (kind=batch) and one per epoch (kind=epoch)
    log.txt           the training process's console output (written by whoever launches it)
    STOP              present = a stop was requested
    checkpoints/best.keras, checkpoints/last.keras
    export/           the final model in every format
    tb/               TensorBoard logs

and the root holds ``.training.lock`` (see :mod:`fercore.runs.owner`). Readers trust nothing they
read: a damaged file reads as "missing" or "damaged" (see :func:`read_object`), never an exception.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fercore.paths import PROJECT_ROOT, RUNS_DIR

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.csv"
LOG = "log.txt"
STOP = "STOP"
BEST = "checkpoints/best.keras"
LAST = "checkpoints/last.keras"
SWA = "checkpoints/swa.keras"  # the averaged weights of an SWA run (fercore.train.swa)
SWA_STATE = "checkpoints/swa.npz"  # its running mean while it trains
EMA = "checkpoints/ema.keras"  # the moving average of the weights of an EMA run (fercore.train.fit)
EXPORT = "export"
TENSORBOARD = "tb"
LOCK = ".training.lock"
LOCK_FD_ENV = "FER_TRAINING_LOCK_FD"  # a launcher hands its lock to the training process by fd

METRIC_FIELDS = ["time", "kind", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
ACTIVE_STATES = {"starting", "running", "stopping", "averaging"}  # averaging: SWA's final pass
STATES = ACTIVE_STATES | {"stopped", "finished", "failed"}
# status.json fields and the type a reader may rely on (None = unset is always allowed)
STATUS_TYPES: dict[str, type] = {
    "state": str,
    "pid": int,
    "pid_start": int,
    "started": float,
    "finished": float,
    "updated": float,
    "epoch": int,
    "epochs": int,
    "step": int,
    "steps_per_epoch": int,
    "eta": float,
    "completed_epochs": int,
    "checkpoint_step": int,
    "best_val_accuracy": float,
    "swa_epochs_averaged": int,
    "swa_val_accuracy": float,
    "ema_val_accuracy": float,
    "n_train": int,
    "n_val": int,
    "params": int,
    "error": str,
    "export_error": str,
    "traceback": str,
}


def default_runs_dir() -> Path:
    """``$FER_RUNS``, else ``runs/`` in the project (whatever the current directory)."""
    env = os.environ.get("FER_RUNS")
    return Path(env).expanduser() if env else RUNS_DIR


def new_run_id(prefix: str = "run") -> str:
    """A sortable id that two launches in the same second never share: ``run-20261123-235959-3fa2c1``."""
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def path(run_dir: str | Path, name: str) -> Path:
    """A file of a run (one of the names above)."""
    return Path(run_dir) / name


# ----------------------------------------------------------------------------------------------
# Files


def write_json_atomic(file: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers never see half a file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.{secrets.token_hex(2)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, file)


def read_object(file: Path) -> tuple[dict[str, Any], str | None]:
    """A JSON object file as (dict, None), or ({}, why it is not one) — never raises."""
    try:
        data = json.loads(Path(file).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return {}, "missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"not valid JSON ({type(exc).__name__})"
    if not isinstance(data, dict):
        return {}, f"holds a JSON {type(data).__name__}, not an object"
    return data, None


def read_json(file: Path) -> dict[str, Any]:
    """A JSON object file as a dict; {} when missing or unreadable."""
    return read_object(file)[0]


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Write ``config`` (a ``TrainConfig`` as a dict) as ``run_dir``'s config.json, atomically."""
    write_json_atomic(path(run_dir, CONFIG), config)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The config.json of ``run_dir`` as a dict."""
    return read_json(path(run_dir, CONFIG))


def exported_checkpoint(run_dir: str | Path) -> tuple[Path, str]:
    """(checkpoint file, "swa", "ema", "best" or "last") of the weights a run exports: the averaged
    model of an SWA or EMA run, else ``best`` when its config asks for it and the file exists, else
    ``last`` (also for a config from before these settings, or none). FileNotFoundError when that
    file is missing."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("swa_epochs") and (run_dir / SWA).exists():
        return run_dir / SWA, "swa"
    if config.get("ema") and (run_dir / EMA).exists():
        return run_dir / EMA, "ema"
    if config.get("export_checkpoint") == "best" and (run_dir / BEST).exists():
        return run_dir / BEST, "best"
    if not (run_dir / LAST).exists():
        raise FileNotFoundError(f"{run_dir}: no {LAST} (not a trained run directory?)")
    return run_dir / LAST, "last"


def averaged_val_accuracy(status: dict[str, Any]) -> tuple[str, float] | None:
    """("SWA" or "EMA", validation accuracy) of a run's averaged weights, or None when it has none."""
    for kind in ("swa", "ema"):
        value = status.get(f"{kind}_val_accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return kind.upper(), float(value)
    return None


def clean_status(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """status.json fields of the right type (others dropped) and the names of those dropped."""
    out, bad = {}, []
    for key, value in raw.items():
        kind = STATUS_TYPES.get(key)
        ok = (
            kind is None
            or value is None
            or (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (kind is int and isinstance(value, int) and not isinstance(value, bool))
            or (kind is str and isinstance(value, str))
        )
        if ok:
            out[key] = float(value) if kind is float and value is not None else value
        else:
            bad.append(key)
    if isinstance(out.get("state"), str) and out["state"] not in STATES:
        bad.append("state")
        del out["state"]
    return out, bad


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """status.json as a dict whose known fields have the documented types ({} when unreadable)."""
    return clean_status(read_json(path(run_dir, STATUS)))[0]


def update_status(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (and stamp ``updated``)."""
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    write_json_atomic(path(run_dir, STATUS), status)
    return status


def append_metrics(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one row to metrics.csv (header on first use; after a cut-off line, a new line)."""
    file = path(run_dir, METRICS)
    with open(file, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        lines = [METRIC_FIELDS] if size == 0 else []
        lines.append(["" if row.get(k) is None else str(row[k]) for k in METRIC_FIELDS])
        fh.write("".join(",".join(cells) + "\n" for cells in lines).encode())


def _metric_lines(file: Path) -> list[str]:
    """Complete lines of metrics.csv, any bytes decoded (bad UTF-8 becomes U+FFFD)."""
    try:
        text = file.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text[: text.rfind("\n") + 1].splitlines()


def read_metrics(run_dir: str | Path) -> Any:
    """metrics.csv as a pandas DataFrame with numeric columns; damaged lines are skipped, a
    missing header is assumed; an empty frame when nothing is readable."""
    import pandas as pd

    lines = _metric_lines(path(run_dir, METRICS))
    if lines and lines[0].split(",") == METRIC_FIELDS:
        lines = lines[1:]
    rows = [cells for cells in csv.reader(lines) if len(cells) == len(METRIC_FIELDS)]
    df = pd.DataFrame(rows, columns=METRIC_FIELDS)
    for col in METRIC_FIELDS:
        if col != "kind":
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df[df["kind"].isin(["batch", "epoch"]) & df["step"].notna()].reset_index(drop=True)


def truncate_metrics(run_dir: str | Path, max_step: int) -> None:
    """Drop rows after ``max_step`` (logged past the checkpoint a resume starts from) and any
    damaged line, so that the resumed run appends to a clean file."""
    file = path(run_dir, METRICS)
    if not file.exists():
        return
    lines = _metric_lines(file)
    if lines and lines[0].split(",") == METRIC_FIELDS:
        lines = lines[1:]
    keep = [",".join(METRIC_FIELDS)]
    for line, cells in zip(lines, csv.reader(lines), strict=True):
        try:
            if len(cells) == len(METRIC_FIELDS) and float(cells[3]) <= max_step:
                keep.append(line)
        except ValueError:
            continue
    tmp = file.with_name(f".{METRICS}.{os.getpid()}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, file)


def request_stop(run_dir: str | Path) -> None:
    """Ask a running training to stop after its current batch."""
    path(run_dir, STOP).write_text(str(time.time()))


def stop_requested(run_dir: str | Path) -> bool:
    """Whether someone asked the training in ``run_dir`` to stop (the STOP file exists)."""
    return path(run_dir, STOP).exists()


def clear_stop(run_dir: str | Path) -> None:
    """Forget a stop request of ``run_dir`` (a resumed run starts without one)."""
    path(run_dir, STOP).unlink(missing_ok=True)


def log_tail(run_dir: str | Path, lines: int = 30) -> str:
    """The last lines of a run's console log."""
    try:
        text = path(run_dir, LOG).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])
