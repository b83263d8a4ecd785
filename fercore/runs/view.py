"""What a run directory says, read defensively: the state shown to people and the runs table.

A run is shown as ``running`` only while its owner process lives; a damaged status.json makes
it ``unreadable`` with the reason, a damaged config.json shows the run with what can be read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fercore.runs.files import (
    ACTIVE_STATES,
    CONFIG,
    STATUS,
    averaged_val_accuracy,
    clean_status,
    default_runs_dir,
    path,
    read_metrics,
    read_object,
    stop_requested,
)
from fercore.runs.owner import owner_alive

KILLED = "training process ended without recording a result (killed?)"
AVERAGED_COLUMN = "SWA/EMA val. accuracy"  # the runs table's column of averaged weights


@dataclass(frozen=True)
class RunView:
    """One run as readers should see it."""

    path: Path
    state: str  # a status state, or "unreadable" / "unknown"
    reason: str = ""  # why the state was inferred, or the recorded error
    status: dict[str, Any] = field(default_factory=dict)  # fields of the documented types only
    config: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # what could not be read

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def view(run_dir: str | Path) -> RunView:
    """Read a run directory; never raises on damaged files."""
    run_dir = Path(run_dir)
    raw, status_problem = read_object(path(run_dir, STATUS))
    config, config_problem = read_object(path(run_dir, CONFIG))
    status, bad = clean_status(raw)
    problems = [f"{STATUS}: {status_problem}"] if status_problem else []
    problems += [f"{CONFIG}: {config_problem}"] if config_problem else []
    problems += [f"{STATUS}: field {name!r} has the wrong type" for name in bad]
    state = status.get("state")
    reason = status.get("error") or ""
    if status_problem == "missing":
        state, reason = "unknown", f"no {STATUS} yet"
    elif state is None:
        state, reason = "unreadable", "; ".join(problems) or f"{STATUS}: no state"
    elif state in ACTIVE_STATES and not owner_alive(status):
        state, reason = "failed", reason or KILLED
    elif state == "failed":
        reason = reason or KILLED
    if state == "running" and stop_requested(run_dir):
        state = "stopping"
    return RunView(run_dir, state, reason, status, config, tuple(problems))


def effective_state(run_dir: str | Path) -> str:
    """status.json's state, but ``failed`` for an active run whose owner is gone."""
    return view(run_dir).state


def list_runs(runs_dir: str | Path | None = None) -> list[Path]:
    """Run directories (those with a config.json), newest first."""
    root = Path(runs_dir or default_runs_dir())
    try:
        found = [p for p in root.iterdir() if (p / CONFIG).is_file()]
    except OSError:
        return []

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    return sorted(found, key=mtime, reverse=True)


def active_run(runs_dir: str | Path | None = None) -> Path | None:
    """The run that is training now, if any."""
    return next((run for run in list_runs(runs_dir) if view(run).active), None)


def best_val(run: RunView) -> float | None:
    """Best validation accuracy recorded (status, else metrics), or None."""
    best = run.status.get("best_val_accuracy")
    if best is not None and best >= 0:
        return float(best)
    m = read_metrics(run.path)
    vals = m["val_accuracy"].dropna()
    return float(vals.max()) if len(vals) else None


def fmt_duration(seconds: float | None) -> str:
    """``1h02m`` / ``3m05s``; ``–`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def elapsed(run: RunView) -> float | None:
    """Seconds from start to finish (or to now while active, or to the last update)."""
    started = run.status.get("started")
    end = run.status.get("finished") or (time.time() if run.active else run.status.get("updated"))
    return end - started if started and end else None


def progress(run: RunView) -> tuple[float, str]:
    """(fraction done, one line: epoch · step · ETA) for a progress bar."""
    s = run.status
    epochs = s.get("epochs") or _int(run.config.get("epochs")) or 1
    spe, step = s.get("steps_per_epoch") or 0, s.get("step") or 0
    total = epochs * spe
    frac = 1.0 if run.state == "finished" else (min(1.0, step / total) if total else 0.0)
    eta = fmt_duration(s.get("eta")) if run.active else "–"
    return frac, f"epoch {s.get('epoch') or 0}/{epochs} · step {step}/{total or '?'} · ETA {eta}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summary_rows(runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per run for the runs table (whatever state its files are in); the column of averaged
    weights (SWA or EMA) only when some run has a figure for it (an empty column reads as "None" in
    every row)."""
    rows = []
    for run_dir in list_runs(runs_dir):
        run = view(run_dir)
        cfg, s = run.config, run.status
        started = s.get("started")
        averaged = averaged_val_accuracy(s)
        rows.append(
            {
                "run": run.name,
                "state": run.state,
                "model": str(cfg.get("model", "")),
                "epochs": f"{s.get('completed_epochs') or 0}/{_int(cfg.get('epochs')) or '?'}",
                "best val. accuracy": best_val(run),
                AVERAGED_COLUMN: averaged[1] if averaged else None,
                "duration": fmt_duration(elapsed(run)),
                "subset": _int(cfg.get("subset")) or "all",
                "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
                "note": run.reason if run.state in ("failed", "unreadable") else "",
            }
        )
    if all(r[AVERAGED_COLUMN] is None for r in rows):
        for r in rows:
            del r[AVERAGED_COLUMN]
    return rows
