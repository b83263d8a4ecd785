"""Train: a preset (quick / standard / best, each with its expected top-1 and time here) or custom settings
under Advanced, in a form that starts ``python -m training.train`` (or previews the model: layers, size,
measured time per epoch), the live run (Stop, Resume, Restart, curves) and the runs table (fine-tune from a run, compare
runs). Layout only: fields and choices come from fercore.train's config; states, progress and the table from
fercore.runs, which reads run directories defensively (a damaged run never breaks the page)."""

from pathlib import Path

import common
import streamlit as st
import train_views as views

from fercore import runs
from fercore.data import locations
from fercore.train import TrainConfig, init_from_choices, preview
from fercore.train import launch as launcher

st.title("Train")
RUNS = runs.default_runs_dir()


def launch(config: TrainConfig | dict | None, resume: Path | None = None) -> bool:
    """Start a run (a form's config, a past run's dict, or resume one); say why not when it cannot start."""
    try:
        config = TrainConfig.from_dict(config) if isinstance(config, dict) else config
        run_dir = launcher.launch_training(config, RUNS, resume=resume)
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
    views.finetune_button(run, init_from_choices(RUNS), a, key)
    resumable = run.state in ("stopped", "failed") and (run.path / runs.LAST).exists()
    resume = b.button("Resume", key=f"resume_{key}", disabled=not resumable, help="continue at the step it stopped")
    restart = c.button("Restart", key=f"restart_{key}", disabled=not run.config, help="a new run, same config")
    if (resume and launch(None, resume=run.path)) or (restart and launch(run.config)):
        st.rerun()


active = runs.active_run(RUNS)
with st.expander("New training run", expanded=active is None):
    if active is not None:
        st.info(f"A training is running ({active.name}). One training at a time: stop it or wait for it.")
    starts = init_from_choices(RUNS)
    views.init_form(str(locations.find_dataset() or ""))
    views.preset_choice()
    views.preset_cards()
    views.prefill_note()
    with st.form("train_form"):
        where, size = st.columns([3, 1])
        data = where.text_input("Dataset", key="train_data", help=common.ROOTS_HELP)
        subset = views.field_widget(size, "subset")
        with st.expander("Advanced: the preset's settings (editing one makes it custom)"):
            values, start, params, relabel, augment = views.advanced_fields(starts)
        go, look = st.columns([1, 4])
        submitted = go.form_submit_button("Start training", type="primary", on_click=views.mark_custom)
        previewed = look.form_submit_button("Preview the model", help="layers, size and time per epoch; trains nothing",
                                            on_click=views.mark_custom)  # fmt: skip
if submitted or previewed:
    try:
        values |= {"init_from": starts[start], "model_params": preview.check_params(values["model"], params)}
        values |= {"data": views.data_path(data, required=submitted), "relabel": views.relabel_path(relabel)}
        config = views.run_config(values | {"subset": subset}, augment)
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Not started" if submitted else "No preview")
    else:
        if submitted:
            launch(config)
            active = runs.active_run(RUNS) or active
        else:
            st.session_state["train_preview"] = config.to_dict()
if "train_preview" in st.session_state:
    with st.container(border=True):
        views.model_preview(st.session_state["train_preview"])

# The current run (or this session's last one), refreshed every 2 s while it trains
current = active or (RUNS / st.session_state["train_run"] if "train_run" in st.session_state else None)


def live(run_dir: Path, was_active: bool) -> None:
    run = runs.view(run_dir)
    st.subheader(f"{run.name} — {run.state}")
    st.progress(*runs.progress(run))
    cols, best = st.columns([1, 1, 1, 3]), runs.best_val(run)
    cols[0].metric("State", run.state)
    averaged = runs.averaged_val_accuracy(run.status)
    cols[1].metric(
        "Best val. accuracy",
        f"{best:.1%}" if best is not None else "–",
        f"{averaged[0]} {averaged[1]:.1%}" if averaged else None,
        delta_color="off",
    )
    cols[2].metric("Elapsed", runs.fmt_duration(runs.elapsed(run)))
    run_actions(run, cols[3], f"live_{run.name}")
    views.show_problem(run)
    views.curves(run_dir, f"live_{run.name}")
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
    st.dataframe(rows, hide_index=True, column_config={"best val. accuracy": percent, runs.AVERAGED_COLUMN: percent})
    run = runs.view(RUNS / st.selectbox("Show run", [r["run"] for r in rows], key="train_pick"))
    if current is not None and run.name == current.name:
        st.caption("Its curves are shown above.")
    else:
        run_actions(run, st, f"hist_{run.name}")
        views.show_problem(run)
        views.curves(run.path, f"hist_{run.name}")
    views.compare(RUNS, st.multiselect("Compare runs", [r["run"] for r in rows], key="train_compare"))
    with st.expander("Config and status"):
        st.json({"config": run.config, "status": run.status, "problems": list(run.problems)}, expanded=False)
        st.code(runs.log_tail(run.path, 30) or "(empty log)", language="text")
