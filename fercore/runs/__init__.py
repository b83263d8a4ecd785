"""Run directories: their files (:mod:`.files`, the only place that knows their names), who owns
a run and the one-training-at-a-time lock (:mod:`.owner`), what a run says to readers
(:mod:`.view`) and starting a training in the background (:mod:`.launch`)."""

from fercore.runs.files import (
    ACTIVE_STATES,
    BEST,
    CONFIG,
    EXPORT,
    LAST,
    LOCK,
    LOG,
    METRIC_FIELDS,
    METRICS,
    STATES,
    STATUS,
    STATUS_TYPES,
    STOP,
    TENSORBOARD,
    append_metrics,
    clean_status,
    clear_stop,
    default_runs_dir,
    log_tail,
    new_run_id,
    path,
    read_config,
    read_json,
    read_metrics,
    read_object,
    read_status,
    request_stop,
    stop_requested,
    truncate_metrics,
    update_status,
    write_config,
    write_json_atomic,
)
from fercore.runs.launch import launch_training
from fercore.runs.owner import (
    TrainingBusyError,
    lock_holder,
    owner,
    owner_alive,
    pid_alive,
    process_start,
    take_lock,
    training_lock,
)
from fercore.runs.view import (
    KILLED,
    RunView,
    active_run,
    best_val,
    effective_state,
    elapsed,
    fmt_duration,
    list_runs,
    progress,
    summary_rows,
    view,
)

__all__ = [
    "ACTIVE_STATES", "BEST", "CONFIG", "EXPORT", "KILLED", "LAST", "LOCK", "LOG", "METRICS", "METRIC_FIELDS",
    "STATES", "STATUS", "STATUS_TYPES", "STOP", "TENSORBOARD", "RunView", "TrainingBusyError", "active_run", "append_metrics",
    "best_val", "clean_status", "clear_stop", "default_runs_dir", "effective_state", "elapsed", "fmt_duration",
    "launch_training", "list_runs", "lock_holder", "log_tail", "new_run_id", "owner", "owner_alive", "path",
    "pid_alive", "process_start", "progress", "read_config", "read_json", "read_metrics", "read_object",
    "read_status", "request_stop", "stop_requested", "summary_rows", "take_lock", "training_lock",
    "truncate_metrics", "update_status", "view", "write_config", "write_json_atomic",
]  # fmt: skip
