"""Train: a form that starts ``python -m training.train``, the live run (Stop, Resume, Restart, curves) and
the runs table. Layout only: fields and choices come from fercore.train's config; states, progress and the
table from fercore.runs, which reads run directories defensively (a damaged run never breaks the page)."""

from dataclasses import fields
from pathlib import Path

import common
import streamlit as st

from fercore import locations, runs
from fercore.train import Augment, TrainConfig, form_config, init_from_choices, options

st.title("Train")
RUNS = common.runs_dir()
OPTIONS = options(TrainConfig)
FORM = ["model", "epochs", "batch_size", "lr", "optimizer", "schedule", "label_smoothing", "subset"]
FORM += ["warmup_epochs", "weight_decay", "export_checkpoint", "class_weights"]


def field_widget(where, name: str):
    """The widget of one config setting, from its type, choices, bounds and help."""
    o, key = OPTIONS[name], f"train_{name}"
    if o.choices:
        return where.selectbox(o.label, o.choices, index=o.choices.index(o.default), key=key, help=o.help)
    if o.type is bool:
        return where.checkbox(o.label, value=o.default, key=key, help=o.help)
    fmt = "%g" if o.type is float else None  # 0.0005, not 0.00
    return where.number_input(o.label, o.minimum, o.maximum, o.default, key=key, help=o.help, format=fmt)


def launch(config: dict | None, resume: Path | None = None) -> bool:
    """Start a run (or resume one); say why not when it cannot start."""
    try:
        run_dir = runs.launch_training(TrainConfig.from_dict(config).to_dict() if config else {}, RUNS, resume=resume)
    except (runs.TrainingBusyError, *common.USER_ERRORS) as exc:
        common.show_error(exc, "Not started")
    else:
        st.session_state["train_run"] = run_dir.name
        st.toast(f"{'Resumed' if resume else 'Started'} {run_dir.name}.", icon=":material/rocket_launch:")
        return True
    return False


def run_actions(run: runs.RunView, where, key: str) -> None:
    """Stop while it trains; then Resume (from its last checkpoint) and Restart (a new run, same config)."""
    a, b, c = where.columns(3)
    if run.active:  # a stop request made before training has started is not seen: Stop waits for it
        if a.button("Stop", key=f"stop_{key}", type="primary", disabled=run.state != "running",
                    help="stops after the current batch, keeping the last checkpoint"):  # fmt: skip
            runs.request_stop(run.path)
            st.toast(f"Stop requested for {run.name}: it stops after the current batch.")
        return
    resumable = run.state in ("stopped", "failed") and (run.path / runs.LAST).exists()
    resume = b.button("Resume", key=f"resume_{key}", disabled=not resumable, help="continue at the step it stopped")
    restart = c.button("Restart", key=f"restart_{key}", disabled=not run.config, help="a new run, same config")
    if (resume and launch(None, resume=run.path)) or (restart and launch(run.config)):
        st.rerun()


def show_problem(run: runs.RunView) -> None:
    if run.state in ("failed", "unreadable"):
        st.error(f"Run {run.name} {run.state}: {run.reason}", icon=":material/error:")
        st.code(runs.log_tail(run.path, 40) or "(empty log)", language="text")


def curves(run_dir: Path, key: str) -> None:
    """Loss and accuracy per epoch (train and validation), loss per batch."""
    import plotly.express as px

    m = runs.read_metrics(run_dir)
    epochs, batches, cols = m[m["kind"] == "epoch"], m[m["kind"] == "batch"], st.columns(3)
    if m.empty:
        cols[0].caption("No metrics yet.")
    for col, name in zip(cols, ["loss", "accuracy"], strict=False):
        if not epochs.empty:
            long = epochs.melt(id_vars="epoch", value_vars=[name, f"val_{name}"], var_name="series")
            fig = px.line(long, x="epoch", y="value", color="series", markers=True, title=f"{name} per epoch")
            col.plotly_chart(fig, key=f"{key}_{name}")
    if not batches.empty:
        cols[2].plotly_chart(px.line(batches, x="step", y="loss", title="loss per batch"), key=f"{key}_batch")


active = runs.active_run(RUNS)
with st.expander("New training run", expanded=active is None):
    if active is not None:
        st.info(f"A training is running ({active.name}). One training at a time: stop it or wait for it.")
    starts = init_from_choices(RUNS)
    with st.form("train_form"):
        data = st.text_input("Dataset", str(locations.find_dataset() or ""), key="train_data", help=common.ROOTS_HELP)
        cols = [c for _ in FORM[::4] for c in st.columns(4)]  # four settings per row
        values = {name: field_widget(col, name) for col, name in zip(cols, FORM, strict=True)}
        start = st.selectbox(OPTIONS["init_from"].label, list(starts), key="train_init", help=OPTIONS["init_from"].help)
        st.caption("Augmentation")
        augment = {
            f.name: col.checkbox(f.metadata["label"], f.name != "mixup", key=f"train_aug_{f.name}")
            for col, f in zip(st.columns(len(fields(Augment))), fields(Augment), strict=True)
        }
        submitted = st.form_submit_button("Start training", type="primary")
if submitted:
    try:
        values |= {"data": str(locations.check_dataset_path(data)), "init_from": starts[start]}
        config = form_config(values, augment)
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Not started")
    else:
        launch(config)
        active = runs.active_run(RUNS) or active

# The current run (or this session's last one), refreshed every 2 s while it trains
current = active or (RUNS / st.session_state["train_run"] if "train_run" in st.session_state else None)


def live(run_dir: Path, was_active: bool) -> None:
    run = runs.view(run_dir)
    st.subheader(f"{run.name} — {run.state}")
    st.progress(*runs.progress(run))
    cols, best = st.columns([1, 1, 1, 3]), runs.best_val(run)
    cols[0].metric("State", run.state)
    cols[1].metric("Best val. accuracy", f"{best:.1%}" if best is not None else "–")
    cols[2].metric("Elapsed", runs.fmt_duration(runs.elapsed(run)))
    run_actions(run, cols[3], f"live_{run.name}")
    show_problem(run)
    curves(run_dir, f"live_{run.name}")
    if was_active and not run.active:
        st.rerun()  # the run ended: refresh the whole page (runs table, no more timer)


if current is not None and current.is_dir():
    is_active = runs.view(current).active
    st.fragment(live, run_every=2.0 if is_active else None)(current, is_active)

st.header("Runs")
rows = runs.summary_rows(RUNS)
if not rows:
    st.caption(f"No runs yet in `{RUNS}`.")
else:
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, column_config={"best val. accuracy": percent})
    run = runs.view(RUNS / st.selectbox("Show run", [r["run"] for r in rows], key="train_pick"))
    if current is not None and run.name == current.name:
        st.caption("Its curves are shown above.")
    else:
        run_actions(run, st, f"hist_{run.name}")
        show_problem(run)
        curves(run.path, f"hist_{run.name}")
    with st.expander("Config and status"):
        st.json({"config": run.config, "status": run.status, "problems": list(run.problems)}, expanded=False)
        st.code(runs.log_tail(run.path, 30) or "(empty log)", language="text")
