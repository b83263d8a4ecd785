"""What defines a training run: :class:`TrainConfig` and :class:`Augment`.

Every choice (architectures, optimizers, schedules, strategies, which checkpoint to export) is
declared once here, in the field's metadata; ``python -m training.train``'s flags and the Train
page's form are generated from it, so a new choice shows up everywhere at once.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fercore.inference.preprocess import FACE_SIZE
from fercore.models.architectures import get_model_builder, list_models, read_model_config
from fercore.train.precision import PRECISIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "linear", "constant", "plateau")
STRATEGIES = ("default", "mirrored", "multiworker")
EXPORT_CHECKPOINTS = ("last", "best")


def _opt(
    default: Any,
    help: str,
    label: str = "",
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = (),
    **extra: Any,
) -> Any:
    """A dataclass field whose metadata carries what a CLI flag or a form widget needs. ``choices`` is
    a tuple or a function asked each time (a registry, e.g. :func:`list_models`)."""
    meta = {"help": help, "label": label, "choices": choices, **extra}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Augment:
    """On-graph augmentation switches and strengths (0 turns one off)."""

    flip: bool = _opt(True, "random horizontal mirror", "Horizontal flip")
    rotation: float = _opt(10.0, "± degrees", "Rotation", minimum=0.0, maximum=180.0)
    shift: float = _opt(0.1, "± fraction of the side", "Shift", minimum=0.0, maximum=0.5)
    zoom: float = _opt(0.1, "± scale fraction", "Zoom", minimum=0.0, maximum=0.9)
    brightness: float = _opt(0.2, "± fraction of full scale", "Brightness", minimum=0.0, maximum=1.0)
    contrast: float = _opt(0.2, "± contrast factor", "Contrast", minimum=0.0, maximum=0.9)
    erasing: float = _opt(
        0.5, "probability of one random noise rectangle per image", "Random erasing", minimum=0.0, maximum=1.0
    )
    mixup: float = _opt(0.0, "Beta(a, a) mixing of pairs; 0 = off", "Mixup", on_value=0.2, minimum=0.0, maximum=10.0)
    crop: int = _opt(
        0,
        "train on the centre N×N px of each shifted face (random crops: ~(N/48)² of the compute per image); "
        "the model still sees whole 48×48 faces at test; 0 = off",
        "Random crop",
        on_value=40,
        minimum=16,
        maximum=FACE_SIZE,
        off=0,
    )

    @classmethod
    def off(cls) -> Augment:
        """Every augmentation off."""
        return cls(
            flip=False, rotation=0.0, shift=0.0, zoom=0.0, brightness=0.0, contrast=0.0, erasing=0.0, mixup=0.0, crop=0
        )

    @classmethod
    def from_switches(cls, switches: dict[str, bool]) -> Augment:
        """On/off per augmentation (a form's checkboxes): on = the default strength (or ``on_value``)."""
        on, off = cls(), cls.off()
        values = {}
        for f in fields(cls):
            default = f.metadata.get("on_value") or getattr(on, f.name)
            values[f.name] = default if switches.get(f.name) else getattr(off, f.name)
        return cls(**values)


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run's config.json and in the model."""

    data: str = _opt("", "FER2013 CSV, Kaggle folder layout or class-folder image set", "Dataset")
    model: str = _opt("fernet", "architecture", "Architecture", list_models)
    model_params: dict[str, Any] = _opt({}, "keyword arguments of the architecture's builder")
    epochs: int = _opt(30, "epochs to train", "Epochs", minimum=1, maximum=1000)
    batch_size: int = _opt(128, "images per step", "Batch size", minimum=1, maximum=4096)
    optimizer: str = _opt("sgd", "sgd is Nesterov momentum 0.9", "Optimizer", OPTIMIZERS)
    lr: float = _opt(0.04, "peak learning rate", "Learning rate", minimum=1e-6, maximum=1.0)
    weight_decay: float = _opt(5e-4, "decoupled weight decay (sgd, adamw)", "Weight decay", minimum=0.0, maximum=1.0)
    schedule: str = _opt(
        "onecycle",
        "onecycle/cosine: warm-up then cosine to 1e-3/1e-2 of lr; linear: warm-up then straight to 0 "
        "(budgeted training); plateau: halve on a val_loss plateau",
        "LR schedule",
        SCHEDULES,
    )
    warmup_epochs: float = _opt(2.0, "linear warm-up from lr/10", "Warm-up epochs", minimum=0.0, maximum=100.0)
    lr_floor: float = _opt(
        0.0,
        "linear only: the rate falls to this fraction of lr (at the first SWA epoch, else at the end) "
        "and holds it; 0 = straight to zero",
        "LR floor",
        minimum=0.0,
        maximum=0.99,
    )
    label_smoothing: float = _opt(
        0.1, "label smoothing of the cross-entropy", "Label smoothing", minimum=0.0, maximum=0.5
    )
    class_weights: bool = _opt(False, "weigh rare classes (disgust) up", "Class weights")
    ferplus: str = _opt("", "ferplus_votes.csv for soft labels")
    ferplus_weight: float = _opt(0.0, "0 = FER2013 labels only, 1 = FER+ vote shares only", minimum=0.0, maximum=1.0)
    teacher: str = _opt("", "teacher probabilities to distil from: a CSV from python -m training.evaluate --proba-out")
    teacher_weight: float = _opt(
        0.0, "share of the target taken from the teacher; 0 = no distillation", minimum=0.0, maximum=1.0
    )
    teacher_temperature: float = _opt(
        1.0, "softens the teacher's probabilities (p^(1/T)); 1 = as cached", minimum=0.1, maximum=20.0
    )
    relabel: str = _opt("", "row,old_label,new_label CSV from python -m training.audit", "Relabel file")
    augment: Augment = field(default_factory=Augment)
    crop_epochs: int = _opt(
        0,
        "with augment.crop: train on the crops for the first N epochs only, then on whole faces "
        "(progressive resizing: the cheap epochs first, the last ones at the size the model is tested at); "
        "0 = crops every epoch",
        "Crop epochs",
        minimum=0,
        maximum=1000,
    )
    subset: int = _opt(
        0, "train on N images (stratified by class); 0 = all", "Subset size (0 = all)", minimum=0, maximum=10_000_000
    )
    val_split: str = _opt("test", "split used for validation (PublicTest by default)")
    val_fraction: float = _opt(0.1, "held out from train when the data has no val_split", minimum=0.0, maximum=0.9)
    early_stopping: int = _opt(0, "patience in epochs on val_accuracy; 0 = off", minimum=0, maximum=1000)
    seed: int = _opt(1, "seeds the weights, the data order and the augmentation")
    init_from: str = _opt("", "a .keras model to fine-tune (its architecture is used)", "Start from")
    swa_epochs: int = _opt(
        0,
        "average the weights of the last N epochs (SWA) and recompute BatchNorm statistics; the export "
        "uses the mean (default strategy only); 0 = off",
        "SWA epochs",
        minimum=0,
        maximum=1000,
    )
    strategy: str = _opt("default", "tf.distribute strategy (multiworker reads TF_CONFIG)", "Strategy", STRATEGIES)
    log_every: int = _opt(20, "batches between metrics.csv rows", minimum=1, maximum=1_000_000)
    precision: str = _opt(
        "auto",
        "compute precision; auto = bfloat16 where the hardware runs it natively (AMX/AVX512-BF16 CPUs, "
        "GPUs >= sm80), float16 on older GPUs, else float32 (AVX2-only CPUs emulate bfloat16, many times slower)",
        "Precision",
        PRECISIONS,
    )
    ema: float = _opt(
        0.0,
        "keep an exponential moving average of the weights (momentum per step, e.g. 0.999); at the end its "
        "BatchNorm statistics are recomputed and the run exports it (default strategy only); 0 = off",
        "Weight EMA",
        minimum=0.0,
        maximum=0.99999,
    )
    init_from_config: dict[str, Any] = _opt({}, "the training config stored in init_from, if any")
    export_checkpoint: str = _opt(
        "last",
        "weights the final export uses: the last epoch's, or the best on val_split — which "
        "is PublicTest by default, so 'best' selects the model on the test set",
        "Export",
        EXPORT_CHECKPOINTS,
    )

    def __post_init__(self) -> None:
        """The one validation of a config (the CLI, the Train form and a run's config.json all build
        one): declared choices and bounds (the augmentation's too), then the rules between options.
        ValueError, one line."""
        _check_declared(self)
        _check_declared(self.augment, "augment.")
        if self.augment.crop and (self.init_from or not takes_any_side(self.model)):
            raise ValueError(
                f"augment.crop needs an architecture built by the run whose input takes any side "
                f"({', '.join(m for m in list_models() if takes_any_side(m))}), not init_from"
            )
        if self.crop_epochs and not self.augment.crop:
            raise ValueError("crop_epochs limits augment.crop to the first epochs: set augment.crop too")
        if self.swa_epochs and self.strategy != "default":
            raise ValueError("swa_epochs needs the default strategy (the mean is kept on one machine)")
        if self.ema and self.strategy != "default":
            raise ValueError("ema needs the default strategy (the average is finished on one machine)")
        if self.lr_floor and self.schedule != "linear":
            raise ValueError(f"lr_floor shapes the linear schedule, not {self.schedule!r}")
        if self.ema and self.swa_epochs:
            raise ValueError("choose one weight average: ema or swa_epochs, not both")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) dict; unknown keys or choices raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"a training config is a JSON object, not {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)} - {"mixed_precision"}
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        if "mixed_precision" in d:  # configs before the precision rule: true meant "bfloat16 here"
            legacy = d.pop("mixed_precision")
            d.setdefault("precision", "auto" if legacy else "float32")
        aug = d.pop("augment", None) or {}
        if isinstance(aug, Augment):
            aug = asdict(aug)
        if not isinstance(aug, dict):
            raise ValueError("augment: expected an object of augmentation strengths")
        bad = set(aug) - {f.name for f in fields(Augment)}
        if bad:
            raise ValueError(f"unknown augment keys: {', '.join(sorted(bad))}")
        return cls(augment=Augment(**aug), **d)

    def crop_of_epoch(self, epoch: int) -> int:
        """The crop side the (0-based) ``epoch`` trains on: ``augment.crop``, or 0 (whole faces) once
        ``crop_epochs`` have passed."""
        if self.crop_epochs and epoch >= self.crop_epochs:
            return 0
        return self.augment.crop

    def augment_of_epoch(self, epoch: int) -> Augment:
        """The augmentation of the (0-based) ``epoch``: :attr:`augment` with its crop for that epoch."""
        crop = self.crop_of_epoch(epoch)
        return self.augment if crop == self.augment.crop else replace(self.augment, crop=crop)

    def epochs_per_crop(self) -> dict[int, int]:
        """How many epochs train on each input side, in training order: {crop px: epochs}, 0 = whole faces."""
        out: dict[int, int] = {}
        for epoch in range(self.epochs):
            side = self.crop_of_epoch(epoch)
            out[side] = out.get(side, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able values (what config.json holds)."""
        return asdict(self)


def _check_declared(config: Any, prefix: str = "") -> None:
    """Each field of a config dataclass against its declared choices and bounds (a field's ``off``
    value, e.g. 0, is allowed outside them)."""
    for f in fields(config):
        value, choices = getattr(config, f.name), _choices(f)
        if choices and value not in choices:
            raise ValueError(f"unknown {prefix}{f.name} {value!r}; choose one of {', '.join(choices)}")
        low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
        if low is None and high is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{prefix}{f.name} must be a number, got {value!r}")
        if "off" in f.metadata and value == f.metadata["off"]:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            off = f" ({f.metadata['off']} = off)" if "off" in f.metadata else ""
            raise ValueError(f"{prefix}{f.name} must be between {low:g} and {high:g}{off}, got {value!r}")


def takes_any_side(model_name: str) -> bool:
    """Whether the architecture's builder can open its input side (``input_size=None``), which
    training on random crops needs."""
    try:
        builder = get_model_builder(model_name)
    except ValueError:
        return False
    return "input_size" in inspect.signature(builder).parameters


def architecture(model_name: str, params: dict[str, Any], init_from: str = "") -> tuple[str, dict[str, Any]]:
    """The architecture a run will train: the one recorded in ``init_from`` when fine-tuning (the run
    loads that model whatever the form says), else ``model_name`` with ``params``."""
    if init_from:
        stored = read_model_config(init_from) or {}
        name, stored_params = stored.get("model"), stored.get("model_params")
        if isinstance(name, str) and name in list_models() and isinstance(stored_params, dict):
            return name, stored_params
    return model_name, params


def with_init_architecture(config: TrainConfig) -> TrainConfig:
    """``config`` as a fine-tuning run really trains it: the architecture recorded in ``init_from``
    (the run loads that model, whatever ``model`` says) and that model's own training config in
    ``init_from_config`` (without its ancestors'). Unchanged without ``init_from``."""
    if not config.init_from:
        return config
    name, params = architecture(config.model, config.model_params, config.init_from)
    stored = {k: v for k, v in (read_model_config(config.init_from) or {}).items() if k != "init_from_config"}
    return replace(config, model=name, model_params=dict(params), init_from_config=stored)


@dataclass(frozen=True)
class Option:
    """One scalar setting of a config class, as a CLI flag or a form widget sees it."""

    name: str
    type: type
    default: Any
    help: str
    label: str
    choices: tuple[str, ...]
    minimum: float | None
    maximum: float | None


def options(cls: type = TrainConfig) -> dict[str, Option]:
    """The scalar (str/int/float/bool) fields of a config class with their metadata, by name."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        kind = hints[f.name]
        if kind not in (str, int, float, bool):
            continue
        out[f.name] = Option(
            f.name,
            kind,
            _default(f),
            f.metadata.get("help", ""),
            f.metadata.get("label", ""),
            _choices(f),
            f.metadata.get("minimum"),
            f.metadata.get("maximum"),
        )
    return out


def _choices(f: Field[Any]) -> tuple[str, ...]:
    choices = f.metadata.get("choices", ())
    return tuple(choices() if callable(choices) else choices)


def _default(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def init_from_choices(runs_dir: str | Path | None = None) -> dict[str, str]:
    """What a run can start from, label → .keras file: the models of :mod:`fercore.models.catalog` that
    have a Keras twin (TFLite files cannot be trained further)."""
    from fercore.models import catalog

    out = {"(random initialisation)": ""}
    for label, model in catalog.available_models(runs_dir).items():
        keras_file = catalog.keras_model_for(model)
        if keras_file is not None and keras_file.suffix == ".keras":
            out[label] = str(keras_file)
    return out


def form_config(values: dict[str, Any], augment: dict[str, bool]) -> TrainConfig:
    """The config a form submits, validated once (ValueError, one line): its ``values``, on/off
    ``augment`` switches, and a log interval that gives ~10 metrics rows per epoch (so short runs
    still draw a curve)."""
    every = log_interval(int(values.get("subset") or 0), int(values.get("batch_size") or 128))
    return TrainConfig.from_dict({**values, "log_every": every, "augment": Augment.from_switches(augment)})


def log_interval(subset: int, batch_size: int) -> int:
    """Batches between metrics.csv rows for ~10 rows per epoch (at most 20), so short runs still draw a curve."""
    steps = max(1, (subset or 28_000) // max(1, batch_size))
    return max(1, min(20, steps // 10))
