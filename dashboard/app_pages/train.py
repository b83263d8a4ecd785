"""Train: a form that starts ``python -m training.train`` in the background, live curves, Stop, runs table.

Everything shown is read from the run directories, so a reload or a closed tab loses nothing.
"""

import time
from pathlib import Path

import streamlit as st

import common
from fercore import runs
from fercore.data import DataError
from fercore.train import Augment

st.title("Train")
RUNS = common.runs_dir()
AUG_LABELS = {"flip": "Horizontal flip", "rotation": "Rotation", "shift": "Shift", "zoom": "Zoom",
              "brightness": "Brightness", "contrast": "Contrast", "erasing": "Random erasing",
              "mixup": "Mixup"}
AUG_ON = {**Augment().__dict__, "flip": True, "mixup": Augment().mixup or 0.2}
AUG_OFF = {k: (False if k == "flip" else 0.0) for k in AUG_ON}


def fmt_seconds(s) -> str:
    if s is None or s != s:
        return "–"
    s = int(s)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def curves(run_dir: Path, key: str) -> None:
    """Per-epoch loss/accuracy (train and validation) and per-batch loss of one run."""
    import plotly.express as px

    m = runs.read_metrics(run_dir)
    if m.empty:
        st.caption("No metrics yet.")
        return
    epochs = m[m["kind"] == "epoch"]
    batches = m[m["kind"] == "batch"]
    c1, c2, c3 = st.columns(3)
    if not epochs.empty:
        loss = epochs.melt(id_vars="epoch", value_vars=["loss", "val_loss"], var_name="series")
        acc = epochs.melt(id_vars="epoch", value_vars=["accuracy", "val_accuracy"], var_name="series")
        c1.plotly_chart(px.line(loss, x="epoch", y="value", color="series", markers=True,
                                title="Loss per epoch"), key=f"{key}_eloss")
        fig = px.line(acc, x="epoch", y="value", color="series", markers=True, title="Accuracy per epoch")
        fig.update_layout(yaxis_tickformat=".0%")
        c2.plotly_chart(fig, key=f"{key}_eacc")
    else:
        c1.caption("Epoch curves appear after the first epoch.")
    if not batches.empty:
        c3.plotly_chart(px.line(batches, x="step", y="loss", title="Loss per batch"), key=f"{key}_bloss")


def best_val(run_dir: Path, status: dict) -> float | None:
    best = status.get("best_val_accuracy")
    if isinstance(best, (int, float)) and best >= 0:
        return float(best)
    m = runs.read_metrics(run_dir)
    if "val_accuracy" in m and m["val_accuracy"].notna().any():
        return float(m["val_accuracy"].max())
    return None


def show_failure(run_dir: Path, status: dict) -> None:
    error = status.get("error") or "the training process ended without reporting why (killed?)"
    st.error(f"Run {run_dir.name} failed: {error}", icon=":material/error:")
    tail = runs.log_tail(run_dir, 40)
    st.code(tail or "(empty log)", language="text")


# ----------------------------------------------------------------------------------------------
# The form

active = runs.active_run(RUNS)
with st.expander("New training run", expanded=active is None):
    if active is not None:
        st.info(f"A training is running ({active.name}). One training at a time: stop it or wait "
                "for it to finish before starting another.", icon=":material/hourglass_top:")
    init_choices = {"(random initialisation)": ""}
    for label, p in common.available_models().items():
        keras_file = common.keras_model_for(p)
        if keras_file is not None and keras_file.suffix == ".keras":
            init_choices[label.replace(p.name, keras_file.name)] = str(keras_file)
    with st.form("train_form"):
        default_data = common.find_dataset()
        data = st.text_input("Dataset", value=str(default_data or ""), key="train_data",
                             help="FER2013 CSV, Kaggle folder layout or a folder of class folders")
        a, b, c, d = st.columns(4)
        model = a.selectbox("Architecture", ["fernet", "coursera"], key="train_model",
                            help="fernet: our residual CNN (fast on CPU); coursera: the seed VGG-like baseline")
        epochs = b.number_input("Epochs", 1, 500, 10, key="train_epochs")
        batch = c.number_input("Batch size", 1, 1024, 64, key="train_batch")
        lr = d.number_input("Learning rate", 1e-6, 1.0, 0.01, format="%.5f", key="train_lr")
        a, b, c, d = st.columns(4)
        optimizer = a.selectbox("Optimizer", ["sgd", "adam", "adamw"], key="train_opt")
        schedule = b.selectbox("LR schedule", ["onecycle", "cosine", "constant", "plateau"],
                               key="train_schedule")
        smoothing = c.number_input("Label smoothing", 0.0, 0.5, 0.1, step=0.05, key="train_smooth")
        subset = d.number_input("Subset size (0 = all)", 0, 1_000_000, 0, step=100, key="train_subset",
                                help="train on N images (stratified by class) for a quick try")
        a, b = st.columns([1, 3])
        class_weights = a.checkbox("Class weights", key="train_cw",
                                   help="weigh rare classes (disgust) up")
        init_label = b.selectbox("Start from", list(init_choices), key="train_init",
                                 help="fine-tune an existing model (its architecture is used)")
        st.caption("Augmentation")
        aug_cols = st.columns(len(AUG_LABELS))
        aug = {}
        for col, (name, label) in zip(aug_cols, AUG_LABELS.items()):
            aug[name] = col.checkbox(label, value=name != "mixup", key=f"train_aug_{name}")
        submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    try:
        data_path = common.check_dataset_path(data).resolve()
        steps = max(1, (int(subset) or 28_000) // int(batch))
        config = {
            "data": str(data_path), "model": model, "epochs": int(epochs), "batch_size": int(batch),
            "lr": float(lr), "optimizer": optimizer, "schedule": schedule,
            "label_smoothing": float(smoothing), "class_weights": bool(class_weights),
            "subset": int(subset), "init_from": init_choices[init_label],
            "augment": {k: (AUG_ON[k] if on else AUG_OFF[k]) for k, on in aug.items()},
            "log_every": max(1, min(20, steps // 10)),
        }
        run_dir = runs.launch_training(config, RUNS)
    except runs.TrainingBusyError as exc:
        st.error(f"Not started: {exc}. One training at a time — stop it first.", icon=":material/block:")
    except (DataError, FileNotFoundError, ValueError) as exc:
        common.show_error(exc, "Not started")
    else:
        st.session_state["train_run"] = run_dir.name
        st.success(f"Started {run_dir.name}.", icon=":material/rocket_launch:")
        active = run_dir

# ----------------------------------------------------------------------------------------------
# Live view of the current (or this session's last) run

current = active
if current is None and st.session_state.get("train_run"):
    cand = RUNS / st.session_state["train_run"]
    current = cand if cand.exists() else None


def live(run_dir: Path, was_active: bool) -> None:
    status = runs.read_status(run_dir)
    state = runs.effective_state(run_dir)
    if state == "running" and runs.stop_requested(run_dir):
        state = "stopping"
    st.subheader(f"{run_dir.name} — {state}")
    epochs = int(status.get("epochs") or runs.read_config(run_dir).get("epochs") or 1)
    spe = int(status.get("steps_per_epoch") or 0)
    step = int(status.get("step") or 0)
    total = epochs * spe
    done = state == "finished"
    frac = 1.0 if done else (min(1.0, step / total) if total else 0.0)
    text = (f"epoch {status.get('epoch', 0)}/{epochs} · step {step}/{total or '?'} · "
            f"ETA {fmt_seconds(status.get('eta')) if state in runs.ACTIVE_STATES else '–'}")
    st.progress(frac, text=text)
    cols = st.columns([1, 1, 1, 2])
    cols[0].metric("State", state)
    bv = best_val(run_dir, status)
    cols[1].metric("Best val. accuracy", f"{bv:.1%}" if bv is not None else "–")
    started = status.get("started")
    end = status.get("finished") or time.time()
    cols[2].metric("Elapsed", fmt_seconds(end - started) if started else "–")
    if state in runs.ACTIVE_STATES:
        # a stop request made before training has started is not seen by the trainer: wait for it
        if cols[3].button("Stop", key=f"stop_{run_dir.name}", type="primary", icon=":material/stop:",
                          disabled=state != "running",
                          help="stops after the current batch, keeping the last checkpoint"):
            runs.request_stop(run_dir)
            st.toast(f"Stop requested for {run_dir.name}: it stops after the current batch.")
        if state == "starting":
            st.info("Starting: loading TensorFlow and the data… (Stop is available once training runs)",
                    icon=":material/hourglass_top:")
    if state == "failed":
        show_failure(run_dir, status)
    curves(run_dir, f"live_{run_dir.name}")
    if was_active and state not in runs.ACTIVE_STATES:
        st.rerun()  # the run ended: refresh the whole page (runs table, no more timer)


if current is not None:
    is_active = runs.effective_state(current) in runs.ACTIVE_STATES
    st.fragment(live, run_every=2.0 if is_active else None)(current, is_active)

# ----------------------------------------------------------------------------------------------
# All runs

st.header("Runs")
all_runs = runs.list_runs(RUNS)
if not all_runs:
    st.caption(f"No runs yet in `{RUNS}`.")
else:
    rows = []
    for r in all_runs:
        s = runs.read_status(r)
        cfg = runs.read_config(r)
        started = s.get("started")
        end = s.get("finished") or (time.time() if runs.effective_state(r) in runs.ACTIVE_STATES else
                                     s.get("updated"))
        bv = best_val(r, s)
        rows.append({
            "run": r.name, "state": runs.effective_state(r), "model": cfg.get("model", ""),
            "epochs": f"{s.get('completed_epochs', 0)}/{cfg.get('epochs', '?')}",
            "best val. accuracy": round(bv, 4) if bv is not None else None,
            "duration": fmt_seconds(end - started) if started and end else "–",
            "subset": cfg.get("subset") or "all",
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
        })
    st.dataframe(rows, hide_index=True, column_config={
        "best val. accuracy": st.column_config.NumberColumn(format="percent")})
    pick = st.selectbox("Show run", [r.name for r in all_runs], key="train_pick")
    run_dir = RUNS / pick
    status = runs.read_status(run_dir)
    if current is not None and run_dir.name == current.name:
        st.caption("Its curves are shown above.")
    else:
        if runs.effective_state(run_dir) == "failed":
            show_failure(run_dir, status)
        curves(run_dir, f"hist_{pick}")
    with st.expander("Config and status"):
        st.json({"config": runs.read_config(run_dir), "status": status}, expanded=False)
        st.code(runs.log_tail(run_dir, 30) or "(empty log)", language="text")
