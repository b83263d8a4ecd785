"""Who owns a run, and the one-training-at-a-time lock of a runs folder.

A pid alone is no identity (pids are reused), so an owner is a pid plus its start time
(``/proc/<pid>/stat`` field 22). The lock is ``fcntl.flock`` on ``<root>/.training.lock``: the
kernel drops it when its holder dies, however it dies, so a stale lock cannot exist and there is
no check-then-reclaim race; the file also records the holder (pid, start time, run) for messages.
A launcher takes the lock, hands it to the training process it starts (an inherited fd named in
``$FER_TRAINING_LOCK_FD``), then closes its own copy.

Both mechanisms are Linux's (``fcntl.flock`` is POSIX; process start times come from ``/proc``). They
sit behind this module's small interface — :func:`owner`, :func:`owner_alive`, :func:`take_lock`,
:func:`training_lock`, :func:`record_holder`, :func:`release_lock` — which raises
:class:`UnsupportedPlatformError` with a clear message elsewhere, rather than failing somewhere inside.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fercore.runs.files import ACTIVE_STATES, LOCK, LOCK_FD_ENV, read_status


class TrainingBusyError(RuntimeError):
    """Another training holds the runs folder (one at a time)."""


class UnsupportedPlatformError(RuntimeError):
    """Run ownership and the training lock need Linux (fcntl.flock and /proc)."""


SUPPORTED = sys.platform.startswith("linux")


def _require_linux(what: str) -> None:
    if not SUPPORTED:
        raise UnsupportedPlatformError(
            f"{what} needs Linux/POSIX (fcntl.flock and /proc/<pid>/stat); this is {sys.platform}"
        )


def process_start(pid: int) -> int | None:
    """Start time of a live process in clock ticks since boot (/proc/<pid>/stat field 22), else None."""
    _require_linux("telling whether a run's process still lives")
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # the name in (…) may hold spaces
    except (OSError, ValueError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])  # fields[0] is field 3


def owner(pid: int | None = None) -> dict[str, Any]:
    """A process (this one by default) as the ``pid`` and ``pid_start`` fields of status.json."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "pid_start": process_start(pid)}


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    return isinstance(pid, int) and pid > 0 and process_start(pid) is not None


def owner_alive(status: dict[str, Any]) -> bool:
    """Whether the process recorded in ``status`` still runs: same pid and same start time.
    Runs recorded before ``pid_start`` existed: the process must not have started after ``started``."""
    pid = status.get("pid")
    start = process_start(pid) if isinstance(pid, int) and pid > 0 else None
    if start is None:
        return False
    if isinstance(status.get("pid_start"), int):
        return start == status["pid_start"]
    started = status.get("started")
    return not isinstance(started, float) or _ticks_to_time(start) <= started + 5.0


def _ticks_to_time(ticks: int) -> float:
    with open("/proc/stat") as fh:
        btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def lock_holder(root: str | Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} when nothing readable)."""
    try:
        data = json.loads((Path(root) / LOCK).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def take_lock(root: str | Path) -> int:
    """Take the runs folder's lock and return its fd (the lock lives as long as the fd);
    :class:`TrainingBusyError` if another process or thread holds it."""
    _require_linux("the one-training-at-a-time lock")
    import fcntl  # POSIX only: checked above

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = _inherited_lock(root / LOCK)
    if fd is None:
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(root)
        who = f"{holder.get('run', '?')} (pid {holder.get('pid', '?')})" if holder else "another process"
        raise TrainingBusyError(f"a training is already running: {who}; one training at a time") from None
    try:
        _refuse_unlocked_runs(root)
    except TrainingBusyError:
        release_lock(fd)
        raise
    return fd


def _inherited_lock(file: Path) -> int | None:
    """The lock fd a launcher passed down, if it is really this folder's lock file."""
    value = os.environ.pop(LOCK_FD_ENV, None)
    if not value:
        return None
    try:
        fd = int(value)
        mine, given = os.stat(file), os.fstat(fd)
    except (OSError, ValueError):
        return None
    if (mine.st_dev, mine.st_ino) != (given.st_dev, given.st_ino):
        return None
    os.set_inheritable(fd, False)
    return fd


def _refuse_unlocked_runs(root: Path) -> None:
    """Runs started before the lock existed hold no lock: a live owner still makes the folder busy."""
    mine = lock_holder(root).get("run")  # a launcher that handed us the lock wrote our run's status
    for run in root.iterdir():
        status = read_status(run) if run.is_dir() and run.name != mine else {}
        if status.get("state") in ACTIVE_STATES and owner_alive(status):
            raise TrainingBusyError(f"a training is already running: {run.name} (pid {status['pid']})")


def record_holder(fd: int, run: str, pid: int | None = None) -> None:
    """Write the holder (pid, start time, run) into the held lock file."""
    data = json.dumps({**owner(pid), "run": run}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def release_lock(fd: int) -> None:
    """Forget the holder and drop the lock (closing the last fd drops it too)."""
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


@contextmanager
def training_lock(root: str | Path, run: str) -> Iterator[None]:
    """Hold the runs folder's lock for ``run`` while the block runs."""
    fd = take_lock(root)
    try:
        record_holder(fd, run)
        yield
    finally:
        release_lock(fd)
