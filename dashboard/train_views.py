"""Layout blocks of the Train page: a run's curves, the model preview (layers, size, measured time per
epoch), the overlay of several runs' curves and the fine-tune action (the page stays a short script)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import common
import streamlit as st

from fercore import runs
from fercore.data import locations
from fercore.train import MODELS, TrainConfig, preview, steps_per_epoch
from fercore.train.config import architecture
from fercore.train.precision import resolve_precision

PROBED = "train_probed"  # session state: the probe keys this session asked for
PREFILLED = "train_prefilled"  # session state: the start a "Fine-tune from this run" click filled in


def show_problem(run: runs.RunView) -> None:
    """A failed or unreadable run: why, and the end of its log."""
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


# ----------------------------------------------------------------------------------------------
# Model preview


@st.cache_data(show_spinner="Building the model (loads TensorFlow the first time)…", max_entries=16)
def _describe(name: str, params_json: str) -> preview.ModelSummary:
    return preview.describe(name, json.loads(params_json))


@st.cache_data(show_spinner="Timing a few training and validation steps on this machine…", max_entries=32)
def _probe(name: str, params_json: str, batch_size: int, precision: str) -> tuple[float, float, float]:
    """(seconds per training step, seconds per validation step, the load average then), measured once
    per server."""
    params = json.loads(params_json)
    train = preview.probe_seconds_per_step(name, params, batch_size, precision)
    val = preview.probe_seconds_per_step(name, params, preview.EVAL_BATCH, precision, training=False)
    return train, val, os.getloadavg()[0]


@st.cache_data(show_spinner="Counting the training images…", max_entries=8)
def _images(config_json: str, data_key: str) -> tuple[int, int]:
    return preview.training_images(TrainConfig.from_dict(json.loads(config_json)))


def data_path(text: str, required: bool) -> str:
    """The checked dataset path; a preview goes on without one (it then gives the time per 1,000 images)."""
    try:
        return str(locations.check_dataset_path(text))
    except common.USER_ERRORS:
        if required:
            raise
        return ""


def relabel_path(text: str) -> str:
    """A relabel CSV (from the Dataset page's label-noise tab or ``training.audit``) inside the data roots."""
    return str(locations.check_data_file(text, "relabel file")) if text.strip() else ""


def model_preview(config: dict[str, Any]) -> None:
    """The architecture a config will train: its size, its layer table and, on request, a measured
    time per epoch on this machine."""
    name, params = architecture(config["model"], config["model_params"], config["init_from"])
    params_json = json.dumps(params, sort_keys=True)
    shown = f"`{name}` {params_json if params else '(default parameters)'}"
    if config["init_from"]:
        shown += f" — the architecture of `{Path(config['init_from']).name}`, which the run starts from"
    st.markdown(f"**Model preview:** {shown}")
    try:
        summary = _describe(name, params_json)
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Cannot build this model")
        return
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{summary.total_params:,}", help=f"{summary.trainable_params:,} trainable")
    cols[1].metric("FLOPs per face", f"{summary.flops / 1e6:,.1f} M", help="multiply-adds × 2, forward pass")
    cols[2].metric("Layers", len(summary.layers))
    batch, bf16 = int(config["batch_size"]), resolve_precision(config["precision"])
    key = f"{name}|{params_json}|{batch}|{bf16}"
    probed: set[str] = st.session_state.setdefault(PROBED, set())
    if cols[3].button(
        "Measure time per epoch",
        key="train_probe",
        help="times a few training steps of this model at this batch size and precision, now, on this machine "
        "(a training running at the same time slows both down)",
    ):
        probed.add(key)
    if key in probed:
        _estimate(cols[3], config, name, params_json, batch, bf16)
    st.dataframe(summary.rows(), hide_index=True, height=min(400, 38 + 35 * len(summary.layers)))


def _estimate(where: Any, config: dict[str, Any], name: str, params_json: str, batch: int, bf16: str) -> None:
    """Time per epoch (and for the whole run) from the probe, scaled to the config's training images."""
    try:
        step, val_step, load = _probe(name, params_json, batch, bf16)
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Not measured")
        return
    images = None
    if config["data"]:
        try:
            images = _images(json.dumps(config, sort_keys=True), common.file_key(Path(config["data"])))
        except common.USER_ERRORS as exc:
            common.show_error(exc, "Dataset")
    precision = bf16
    when = f"Measured at a load average of {load:.1f} on {os.cpu_count()} cores (other work slows training alike)"
    if images is None:
        where.metric("Per 1,000 training images", runs.fmt_duration(step * 1000 / batch))
        st.caption(f"{step:.3f} s per step of {batch} ({precision}); no readable dataset to count the images. {when}.")
        return
    n_train, n_val = images
    epoch = preview.epoch_estimate(step, n_train, batch, n_val, val_step)
    where.metric("Time per epoch", f"≈ {runs.fmt_duration(epoch)}", help="training steps + validation")
    st.caption(
        f"{n_train:,} training images → {steps_per_epoch(n_train, batch):,} steps × {step:.3f} s ({batch} per step, "
        f"{precision}) + validation of {n_val:,} images; {config['epochs']} epochs ≈ "
        f"{runs.fmt_duration(epoch * int(config['epochs']))}. {when}, on random inputs held in memory: data "
        "loading and augmentation are not timed."
    )


# ----------------------------------------------------------------------------------------------
# Runs: fine-tune from one, compare several


def finetune_button(run: runs.RunView, starts: dict[str, str], where: Any, key: str) -> None:
    """Prefill the form's "Start from" with this run's model (and its architecture, so that the new
    run's config names the model it really trains)."""
    label = next((lbl for lbl, file in starts.items() if file and run.path in Path(file).parents), None)
    if where.button(
        "Fine-tune from this run",
        key=f"finetune_{key}",
        disabled=label is None,
        help="start a new run from this run's model" if label else "this run has no Keras model yet",
        on_click=_prefill,
        args=(label, run.config),
    ):
        st.rerun()  # from the live panel's fragment too: the form outside it shows the new values


def _prefill(label: str, config: dict[str, Any]) -> None:
    st.session_state["train_init"] = label
    if config.get("model") in MODELS:
        st.session_state["train_model"] = config["model"]
    if isinstance(config.get("model_params"), dict):
        st.session_state["train_params"] = json.dumps(config["model_params"])
    st.session_state[PREFILLED] = label


def prefill_note() -> None:
    """Say above the form what "Fine-tune from this run" filled in (while that start stays chosen)."""
    label = st.session_state.get(PREFILLED)
    if label and st.session_state.get("train_init") == label:
        st.info(f"Starts from {label}, with its architecture. Set the epochs and learning rate (fine-tuning "
                "usually wants a lower one), then start.", icon=":material/tune:")  # fmt: skip


def compare(root: Path, names: list[str]) -> None:
    """Validation accuracy and loss per epoch of several runs, one colour per run; runs without a
    readable validated epoch are skipped with a note."""
    import pandas as pd
    import plotly.express as px

    frames, skipped = [], []
    for name in names:
        m = runs.read_metrics(root / name)
        e = m[m["kind"] == "epoch"].dropna(subset=["epoch", "val_accuracy", "val_loss"], how="any")
        if e.empty:
            skipped.append(name)
            continue
        frames.append(
            e.drop_duplicates("epoch", keep="last").assign(run=name)[["run", "epoch", "val_accuracy", "val_loss"]]
        )
    if skipped:
        st.caption(f"Skipped (no epoch with validation metrics, or unreadable metrics): {', '.join(skipped)}")
    if not frames:
        return
    long = pd.concat(frames, ignore_index=True)
    palette = px.colors.qualitative.Plotly
    colours = {name: palette[i % len(palette)] for i, name in enumerate(long["run"].unique())}
    cols = st.columns(2)
    for col, metric, title in ((cols[0], "val_accuracy", "val. accuracy"), (cols[1], "val_loss", "val. loss")):
        fig = px.line(
            long, x="epoch", y=metric, color="run", markers=True, color_discrete_map=colours, title=f"{title} per epoch"
        )
        if metric == "val_accuracy":
            fig.update_yaxes(tickformat=".0%")
        col.plotly_chart(fig, key=f"train_compare_{metric}")
