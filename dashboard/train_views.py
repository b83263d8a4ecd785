"""Layout blocks of the Train page: the presets (expected top-1 and time here) and the form's advanced
fields, a run's curves, the model preview (layers, size, measured time per epoch), the overlay of several
runs' curves and the fine-tune action (the page stays a short script)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import common
import streamlit as st

from fercore import runs
from fercore.data import locations
from fercore.models.architectures import list_models
from fercore.train import Augment, TrainConfig, options, preview, steps_per_epoch
from fercore.train import presets as recipes
from fercore.train.config import architecture, form_config, log_interval
from fercore.train.precision import auto_rule, resolve_precision

PROBED = "train_probed"  # session state: the probe keys this session asked for
PREFILLED = "train_prefilled"  # session state: the start a "Fine-tune" click filled in
PRESET = "train_preset"  # session state: the chosen preset (or "custom")
DEFAULT_PRESET = "standard"
OPTIONS = options(TrainConfig)
# the recipe settings of the form, under "Advanced" (the dataset and subset size are above it: they choose
# what a preset trains on, not how)
FIELDS = ["model", "epochs", "batch_size", "lr", "optimizer", "schedule", "label_smoothing", "warmup_epochs"]
FIELDS += ["weight_decay", "export_checkpoint", "class_weights", "precision", "swa_epochs", "lr_floor", "ema"]
FIELDS += ["crop_epochs"]
RANDOM_INIT = "(random initialisation)"
PARAMS_HELP = "Keyword arguments of the architecture (a JSON object); defaults: " + "; ".join(
    f"{m}: `{json.dumps(preview.builder_params(m))}`" for m in OPTIONS["model"].choices
)


# ----------------------------------------------------------------------------------------------
# Presets and the form


def presets() -> dict[str, recipes.Preset]:
    """The presets of training/configs/presets.json (read again when the file changes: figures get filled in)."""
    path = recipes.PRESETS_FILE
    return _presets(str(path), path.stat().st_mtime_ns)


@st.cache_data(show_spinner=False, max_entries=4)
def _presets(path: str, mtime_ns: int) -> dict[str, recipes.Preset]:
    return recipes.load_presets(Path(path))


def _fill(config: TrainConfig) -> dict[str, Any]:
    """The form's widget values (session-state keys) that show ``config``'s recipe."""
    out: dict[str, Any] = {f"train_{name}": getattr(config, name) for name in FIELDS}
    out |= {"train_params": json.dumps(config.model_params), "train_init": RANDOM_INIT, "train_relabel": ""}
    out |= {f"train_aug_{f.name}": bool(getattr(config.augment, f.name)) for f in fields(Augment)}
    return out


def init_form(data_default: str) -> None:
    """First visit: the form shows the default preset (the shipped model's recipe)."""
    st.session_state.setdefault(PRESET, DEFAULT_PRESET)
    name = st.session_state[PRESET]
    base = presets()[name].config() if name in presets() else TrainConfig()
    for key, value in {**_fill(base), "train_data": data_default, "train_subset": 0}.items():
        st.session_state.setdefault(key, value)


def apply_preset() -> None:
    """The preset choice's callback: fill the form with the chosen recipe (custom keeps the fields)."""
    name = st.session_state[PRESET]
    if name in presets():
        st.session_state.update(_fill(presets()[name].config()))


def mark_custom() -> None:
    """The submit buttons' callback: fields edited away from the chosen preset make the settings custom;
    a preset's architecture parameters left as filled in follow a change of architecture (its defaults)."""
    name = st.session_state.get(PRESET)
    if name in presets():
        wanted = _fill(presets()[name].config())
        if any(st.session_state.get(key) != value for key, value in wanted.items()):
            st.session_state[PRESET] = recipes.CUSTOM
    filled = {_fill(p.config())["train_params"] for p in presets().values() if p.config_file.is_file()}
    params, model = str(st.session_state.get("train_params")), st.session_state.get("train_model")
    if params in filled and model in list_models() and set(json.loads(params)) - set(preview.builder_params(model)):
        st.session_state["train_params"] = "{}"


def preset_choice() -> str:
    """The first choice of the form: a preset or custom settings."""
    names = [*presets(), recipes.CUSTOM]
    labels = {n: p.label for n, p in presets().items()} | {recipes.CUSTOM: "Custom"}
    tip = "a tested recipe (training/configs/*.json); editing a field under Advanced makes it custom"
    return st.radio(
        "Preset", names, format_func=labels.get, key=PRESET, horizontal=True, on_change=apply_preset, help=tip
    )


def run_config(values: dict[str, Any], augment: dict[str, bool]) -> TrainConfig:
    """The config to launch: the chosen preset's recipe on the form's dataset and subset, or the fields."""
    name = st.session_state.get(PRESET)
    if name not in presets():
        return form_config(values, augment)
    config = presets()[name].config(data=values["data"])
    config = replace(config, subset=int(values["subset"]))
    return replace(config, log_every=log_interval(config.subset, config.batch_size))


def field_widget(where: Any, name: str) -> Any:
    """The widget of one config setting, from its type, choices, bounds and help (its value is in the
    session state, set by :func:`init_form` and the presets)."""
    o, key = OPTIONS[name], f"train_{name}"
    label = o.label or name.replace("_", " ").capitalize()
    if o.choices:
        return where.selectbox(label, o.choices, key=key, help=o.help)
    if o.type is bool:
        return where.checkbox(label, key=key, help=o.help)
    fmt = "%g" if o.type is float else None  # 0.0005, not 0.00
    return where.number_input(label, o.minimum, o.maximum, key=key, help=o.help, format=fmt)


def advanced_fields(starts: dict[str, str]) -> tuple[dict[str, Any], str, str, str, dict[str, bool]]:
    """The raw settings (a preset fills them): (values, start-from label, params JSON, relabel file, augment)."""
    cols = [c for _ in FIELDS[::4] for c in st.columns(4)]  # four settings per row
    values = {name: field_widget(col, name) for col, name in zip(cols, FIELDS, strict=False)}
    st.caption(f"Precision {auto_rule()}.")
    left, mid, right = st.columns([1, 2, 1])  # the parameters' JSON is the longest value
    start = left.selectbox(OPTIONS["init_from"].label, list(starts), key="train_init", help=OPTIONS["init_from"].help)
    params = mid.text_input("Architecture parameters (JSON)", key="train_params", help=PARAMS_HELP)
    relabel = right.text_input("Relabel file (optional)", key="train_relabel", help=OPTIONS["relabel"].help)
    st.caption("Augmentation (on: the recipe's strength, or the default one)")
    augs = fields(Augment)
    cols = [c for _ in augs[::4] for c in st.columns(4)][: len(augs)]  # four per row: the labels fit at 1280 px
    augment = {f.name: col.checkbox(f.metadata["label"], key=f"train_aug_{f.name}", help=f.metadata["help"])
               for col, f in zip(cols, augs, strict=True)}  # fmt: skip
    return values, start, params, relabel, augment


@st.cache_resource
def _speeds() -> dict[str, tuple[float, float, float]]:
    """Probe results of this server by probe key (both the preview's and the presets' probes fill it)."""
    return {}


def _probe_key(name: str, params_json: str, batch: int, precision: str, augment_json: str) -> str:
    return f"{name}|{params_json}|{batch}|{precision}|{augment_json}"


def probe(name: str, params_json: str, batch: int, precision: str, augment_json: str) -> tuple[float, float, float]:
    """The cached probe of a model at a batch size, precision and augmentation (the input pipeline is
    timed too), remembered for the preset estimates."""
    result = _probe(name, params_json, batch, precision, augment_json)
    _speeds()[_probe_key(name, params_json, batch, precision, augment_json)] = result
    return result


def _augment_json(augment: Any) -> str:
    """A config's augmentation (an :class:`Augment` or its dict) as a probe key: every strength."""
    values = asdict(augment) if isinstance(augment, Augment) else asdict(Augment(**(augment or {})))
    return json.dumps(values, sort_keys=True)


ProbeArgs = tuple[str, str, int, str, str]  # architecture, its parameters (JSON), batch, precision, augmentation (JSON)


def side_probes(config: TrainConfig, name: str = "", params_json: str = "") -> dict[int, ProbeArgs]:
    """The probe arguments of each input side ``config`` trains on (crop px, 0 = whole faces: a recipe with
    ``crop_epochs`` has two); ``name``/``params_json``: the architecture if not the config's own."""
    params_json = params_json or json.dumps(config.model_params, sort_keys=True)
    precision = resolve_precision(config.precision)
    return {
        side: (name or config.model, params_json, config.batch_size, precision,
               _augment_json(replace(config.augment, crop=side)))
        for side in config.epochs_per_crop()
    }  # fmt: skip


def preset_cards() -> None:
    """Per preset, before the start: its expected PublicTest top-1 and wall time on this machine (the
    reference time scaled by this machine's measured throughput), with a button that measures it."""
    shown = presets()
    cols = st.columns(len(shown))
    for col, preset in zip(cols, shown.values(), strict=True):
        try:
            config = preset.config()
        except (OSError, ValueError) as exc:  # a recipe file missing or invalid: say so, keep the page
            col.error(f"{preset.label}: {preset.config_file.name} is unreadable ({exc})", icon=":material/error:")
            continue
        top1 = f"{preset.top1:.2%}" if preset.top1 is not None else "not measured yet"
        speeds = {side: _speeds().get(_probe_key(*args)) for side, args in side_probes(config).items()}
        if not preset.measured:
            time_text = "not measured yet"
        elif any(speed is None for speed in speeds.values()):
            time_text = f"{runs.fmt_duration(preset.wall_minutes * 60)} on the reference machine; measure this one"  # type: ignore[operator]
        else:
            steps = {side: speed[0] for side, speed in speeds.items()}  # type: ignore[index]
            val_step = next(iter(speeds.values()))[1]  # type: ignore[index]
            here = recipes.images_per_second(config, steps, val_step)
            minutes = preset.expected_minutes(here) or 0.0
            time_text = f"≈ {runs.fmt_duration(minutes * 60)} here ({here:,.0f} images/s)"
        with col.container(border=True):
            st.markdown(f"**{preset.label}** · {config.epochs} epochs · `{config.model}`")
            st.markdown(f"Expected top-1: **{top1}**  \nWall time: **{time_text}**")
            if preset.reference:
                st.caption(preset.reference)
    waiting = [p for p in shown.values() if p.measured and p.config_file.is_file()]
    waiting = [
        p for p in waiting if any(_speeds().get(_probe_key(*a)) is None for a in side_probes(p.config()).values())
    ]
    tip = "times a few training steps of each preset's model, now (loads TensorFlow once)"
    if waiting and st.button("Measure this machine's speed", key="train_measure_presets", help=tip):
        for preset in waiting:
            try:
                for args in side_probes(preset.config()).values():
                    probe(*args)
            except common.USER_ERRORS as exc:
                common.show_error(exc, f"{preset.label}: not measured")
        st.rerun()


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
def _probe(
    name: str, params_json: str, batch_size: int, precision: str, augment_json: str
) -> tuple[float, float, float]:
    """(seconds per training step, seconds per validation step, the load average then), measured once
    per server."""
    params, augment = json.loads(params_json), Augment(**json.loads(augment_json))
    train = preview.probe_seconds_per_step(name, params, batch_size, precision, augment=augment)
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
    cfg = TrainConfig.from_dict(config)
    sides = side_probes(cfg, name, params_json)
    key = " + ".join(_probe_key(*args) for args in sides.values())
    probed: set[str] = st.session_state.setdefault(PROBED, set())
    if cols[3].button(
        "Measure time per epoch",
        key="train_probe",
        help="times a few training steps of this model at this batch size and precision, now, on this machine "
        "(a training running at the same time slows both down)",
    ):
        probed.add(key)
    if key in probed:
        _estimate(cols[3], cfg, sides)
    st.dataframe(summary.rows(), hide_index=True, height=min(400, 38 + 35 * len(summary.layers)))


def _estimate(where: Any, cfg: TrainConfig, sides: dict[int, ProbeArgs]) -> None:
    """Time per epoch (and for the whole run) from the probes (one per input side the run trains on),
    scaled to the config's training images."""
    try:
        probes = {side: probe(*args) for side, args in sides.items()}
    except common.USER_ERRORS as exc:
        common.show_error(exc, "Not measured")
        return
    images = None
    if cfg.data:
        try:
            images = _images(json.dumps(cfg.to_dict(), sort_keys=True), common.file_key(Path(cfg.data)))
        except common.USER_ERRORS as exc:
            common.show_error(exc, "Dataset")
    *_, (step, val_step, load) = probes.values()  # the last side: what the run ends on (whole faces)
    batch, precision = cfg.batch_size, next(iter(sides.values()))[3]
    when = f"Measured at a load average of {load:.1f} on {os.cpu_count()} cores (other work slows training alike)"
    if images is None:
        where.metric("Per 1,000 training images", runs.fmt_duration(step * 1000 / batch))
        st.caption(f"{step:.3f} s per step of {batch} ({precision}); no readable dataset to count the images. {when}.")
        return
    n_train, n_val = images
    epoch = preview.epoch_estimate(step, n_train, batch, n_val, val_step)
    total = preview.run_estimate(cfg, {side: p[0] for side, p in probes.items()}, n_train, n_val, val_step)
    where.metric("Time per epoch", f"≈ {runs.fmt_duration(epoch)}", help="training steps + validation")
    crops = "".join(
        f" The first {'epoch trains' if n == 1 else f'{n} epochs train'} on {side}×{side} crops: "
        f"{probes[side][0]:.3f} s per step."
        for side, n in cfg.epochs_per_crop().items()
        if side
    )
    st.caption(
        f"{n_train:,} training images → {steps_per_epoch(n_train, batch):,} steps × {step:.3f} s ({batch} per step, "
        f"{precision}) + validation of {n_val:,} images; {cfg.epochs} epochs ≈ {runs.fmt_duration(total)}."
        f"{crops} {when}, on generated faces held in memory through the run's augmentation: reading the dataset "
        "is not timed."
    )


# ----------------------------------------------------------------------------------------------
# Runs: fine-tune from one, compare several


def finetune_button(run: runs.RunView, starts: dict[str, str], where: Any, key: str) -> None:
    """Prefill the form's "Start from" with this run's model (and its architecture, so that the new
    run's config names the model it really trains)."""
    label = next((lbl for lbl, file in starts.items() if file and run.path in Path(file).parents), None)
    if where.button(
        "Fine-tune",  # the help says from what: the full phrase is cut off in a third of the panel
        key=f"finetune_{key}",
        disabled=label is None,
        help="start a new run from this run's model" if label else "this run has no Keras model yet",
        on_click=_prefill,
        args=(label, run.config),
    ):
        st.rerun()  # from the live panel's fragment too: the form outside it shows the new values


def _prefill(label: str, config: dict[str, Any]) -> None:
    st.session_state["train_init"] = label
    if config.get("model") in list_models():
        st.session_state["train_model"] = config["model"]
    if isinstance(config.get("model_params"), dict):
        st.session_state["train_params"] = json.dumps(config["model_params"])
    st.session_state[PREFILLED] = label
    st.session_state[PRESET] = recipes.CUSTOM


def prefill_note() -> None:
    """Say above the form what "Fine-tune" filled in (while that start stays chosen)."""
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
