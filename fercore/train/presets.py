"""Training presets: named recipes (``quick``, ``standard``, ``best``) with what each is expected to give.

The presets are listed in ``training/configs/presets.json``: per name, the recipe file beside it
(a plain :class:`~fercore.train.config.TrainConfig` JSON, so a preset is also a reproducible
``--config``), its expected PublicTest top-1, and the wall minutes and training images/s measured
together on the reference machine (``bench/time_to_accuracy.py``). A figure is ``null`` until it
has been measured.

The expected wall time *here* scales the reference minutes by the throughput ratio: reference
images/s ÷ this machine's images/s. The reference images/s is the training images of the run's
epochs divided by their wall time (training steps, data loading and the run's validation passes;
a recipe that trains on crops first counts both kinds of epoch), so this machine's figure is
counted the same way from the model preview's probe (one probe per input side):
``n_train × epochs / preview.run_estimate(...)`` with FER2013's split sizes (the recipes' data).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fercore.paths import PROJECT_ROOT
from fercore.train.config import TrainConfig

CONFIGS_DIR: Path = PROJECT_ROOT / "training" / "configs"
PRESETS_FILE: Path = CONFIGS_DIR / "presets.json"
CUSTOM = "custom"  # what a form calls settings that are no preset
FER2013_TRAIN = 28_709  # the Training split: the presets' reference figures are measured on it
FER2013_VAL = 3_589  # PublicTest, each epoch's validation pass
_FIGURES = ("top1", "wall_minutes", "train_images_per_s")

# probe(model, model_params, batch_size, precision, training=...) -> seconds per step, like
# fercore.train.preview.probe_seconds_per_step (tests pass a fake)
Probe = Callable[..., float]


@dataclass(frozen=True)
class Preset:
    """One named recipe and its reference figures (None = not measured yet)."""

    name: str
    label: str
    config_file: Path
    top1: float | None  # expected PublicTest top-1, 0–1
    wall_minutes: float | None  # wall time of the whole run on the reference machine
    train_images_per_s: float | None  # measured in the same run: training images / epoch wall seconds
    reference: str = ""  # where the figures come from (machine, date, card row)

    @property
    def measured(self) -> bool:
        """True when the reference time and throughput are known (the time can be scaled)."""
        return self.wall_minutes is not None and self.train_images_per_s is not None

    def raw_config(self) -> dict[str, Any]:
        """The recipe file as written (a JSON object)."""
        raw = json.loads(self.config_file.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{self.config_file.name}: a training config is a JSON object")
        return raw

    def config(self, data: str | None = None) -> TrainConfig:
        """The preset's :class:`TrainConfig`; relative paths are the project's (as when run from its root).

        ``data`` replaces the recipe's dataset; the FER+ votes then follow the new data (the
        ``ferplus_votes.csv`` inside or beside it, else none): votes are matched to faces by row
        number, so another dataset's votes would label the wrong faces."""
        raw = self.raw_config()
        for key in ("data", "ferplus", "relabel", "teacher", "init_from"):
            if raw.get(key) and not Path(raw[key]).is_absolute():
                raw[key] = str((PROJECT_ROOT / raw[key]).resolve())
        config = TrainConfig.from_dict(raw)
        if data is None or data == config.data:
            return config
        from fercore.data.ferplus import find_votes

        votes = find_votes(data) if config.ferplus and data else None
        return replace(config, data=data, ferplus=str(votes) if votes else "")

    def expected_minutes(self, images_per_s_here: float) -> float | None:
        """The reference wall minutes scaled to a machine that trains ``images_per_s_here``
        (counted like :func:`images_per_second`); None while the reference is not measured."""
        if not self.measured:
            return None
        if not images_per_s_here > 0:
            raise ValueError("images_per_s_here must be > 0")
        assert self.wall_minutes is not None and self.train_images_per_s is not None
        return self.wall_minutes * self.train_images_per_s / images_per_s_here


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    """Every preset of ``path`` (default :data:`PRESETS_FILE`) by name, in the file's order (keys
    starting with ``_`` are comments)."""
    path = Path(path or PRESETS_FILE)
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: presets are a JSON object of name → preset")
    out = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), str):
            raise ValueError(f"{path}: preset {name!r} needs a 'config' file name")
        figures = {k: _figure(name, k, entry.get(k)) for k in _FIGURES}
        label = str(entry.get("label") or name.capitalize())
        reference = str(entry.get("reference") or "")
        out[name] = Preset(name, label, path.parent / entry["config"], **figures, reference=reference)
    return out


def _figure(name: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"preset {name!r}: {key} must be a positive number or null, not {value!r}")
    return float(value)


def preset_names(path: Path | None = None) -> tuple[str, ...]:
    """The presets' names (the CLI's choices and the form's options)."""
    return tuple(load_presets(path))


def load_preset(name: str, path: Path | None = None) -> Preset:
    """One preset by name; ValueError naming the choices for an unknown one."""
    presets = load_presets(path)
    try:
        return presets[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}") from None


def images_per_second(
    config: TrainConfig,
    seconds_per_step: dict[int, float],
    seconds_per_val_step: float,
    n_train: int = FER2013_TRAIN,
    n_val: int = FER2013_VAL,
) -> float:
    """Training images per wall second of ``config``'s whole run, validation included (as the reference
    counts it), from probed step times per input side (``{0: s}`` for whole faces; a run with
    ``crop_epochs`` needs its crop side too): ``n_train`` × epochs / :func:`fercore.train.preview.run_estimate`."""
    from fercore.train.preview import run_estimate

    seconds = run_estimate(config, seconds_per_step, n_train, n_val, seconds_per_val_step)
    if not seconds > 0:
        raise ValueError("the probed step times must be > 0")
    return n_train * config.epochs / seconds


def measure_images_per_second(config: TrainConfig, probe: Probe | None = None) -> float:
    """This machine's :func:`images_per_second` for ``config``'s model, batch, precision and
    augmentation (each input side it trains on), timed by ``probe`` (default: the model preview's
    probe, a few seconds after TensorFlow has loaded)."""
    from fercore.train import preview

    probe = probe or preview.probe_seconds_per_step
    steps = preview.probe_sides(config, probe=probe)
    val = probe(config.model, config.model_params, preview.EVAL_BATCH, config.precision, training=False)
    return images_per_second(config, steps, val)


def matching_preset(config: TrainConfig, presets: dict[str, Preset] | None = None) -> str:
    """The name of the preset whose recipe ``config`` is (its dataset, subset and log interval aside),
    else :data:`CUSTOM`."""
    ignore = {"data": "", "ferplus": "", "subset": 0, "log_every": 1}
    mine = replace(config, **ignore)  # type: ignore[arg-type]
    for name, preset in (load_presets() if presets is None else presets).items():
        if replace(preset.config(), **ignore) == mine:  # type: ignore[arg-type]
            return name
    return CUSTOM
