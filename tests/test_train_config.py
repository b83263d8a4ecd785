"""fercore.train.config: the config, its choices declared once, and what the CLI and form make of them."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fercore.models.architectures import list_models
from fercore.train import EXPORT_CHECKPOINTS, OPTIMIZERS, SCHEDULES, STRATEGIES, Augment, TrainConfig
from fercore.train.config import architecture, form_config, options, takes_any_side
from tests.conftest import TINY


def test_config_rejects_unknown_keys_and_choices():
    with pytest.raises(ValueError, match="unknown config keys: epochz"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="unknown augment keys"):
        TrainConfig.from_dict({"augment": {"spin": 1}})
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of sgd, adam, adamw"):
        TrainConfig.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="JSON object"):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]
    cfg = TrainConfig.from_dict({"epochs": 3, "augment": {"flip": False}})
    assert cfg.epochs == 3 and cfg.augment.flip is False and cfg.augment.rotation == 10.0


def test_export_defaults_to_the_last_epoch():
    """val_split defaults to PublicTest: picking the best epoch on it would select on the test set."""
    assert TrainConfig().val_split == "test" and TrainConfig().export_checkpoint == "last"
    assert TrainConfig(export_checkpoint="best").export_checkpoint == "best"
    assert TrainConfig.from_dict({"model": "coursera"}).export_checkpoint == "last"  # configs from before


def test_choices_are_declared_once():
    opts = options()
    assert opts["model"].choices == list_models() == ("coursera", "fernet")
    assert opts["optimizer"].choices == OPTIMIZERS and opts["schedule"].choices == SCHEDULES
    assert opts["strategy"].choices == STRATEGIES and opts["export_checkpoint"].choices == EXPORT_CHECKPOINTS
    assert "augment" not in opts and "model_params" not in opts  # not scalar: config file only


def test_cli_flags_are_generated_from_the_config():
    from fercore.train.__main__ import parse_args, resolve_config

    scalar = options()
    args = parse_args(["--optimizer", "adam", "--export-checkpoint", "best", "--no-class-weights", "--epochs", "4"])
    cfg = resolve_config(args)
    assert cfg == {"optimizer": "adam", "export_checkpoint": "best", "class_weights": False, "epochs": 4}
    for name in scalar:
        assert hasattr(args, name), f"--{name.replace('_', '-')} missing"
    with pytest.raises(SystemExit):
        parse_args(["--schedule", "staircase"])
    off = resolve_config(parse_args(["--no-augment"]))["augment"]
    assert not any(dataclasses.asdict(off).values())


def test_form_config_switches_augmentations_and_sets_a_log_interval():
    cfg = form_config({"data": "x", "epochs": 2, "batch_size": 64, "subset": 3000}, {"flip": True, "mixup": True})
    assert cfg.augment.flip is True and cfg.augment.mixup == 0.2 and cfg.augment.rotation == 0.0
    assert cfg.log_every == 4 and cfg.epochs == 2
    on = Augment.from_switches({f.name: True for f in dataclasses.fields(Augment)})
    assert on.rotation == Augment().rotation and on.mixup == 0.2
    with pytest.raises(ValueError):
        form_config({"optimizer": "nope"}, {})
    with pytest.raises(ValueError, match="^epochs must be between 1 and 1000, got 0$"):
        form_config({"epochs": 0}, {})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 1001, "epochs must be between 1 and 1000, got 1001"),
        ("lr", 0.0, "lr must be between 1e-06 and 1, got 0.0"),
        ("label_smoothing", 0.6, "label_smoothing must be between 0 and 0.5, got 0.6"),
        ("teacher_weight", -0.1, "teacher_weight must be between 0 and 1, got -0.1"),
        ("batch_size", "big", "batch_size must be a number, got 'big'"),
    ],
)
def test_declared_bounds_are_enforced_at_construction(field, value, message):
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict({field: value})
    assert str(err.value) == message
    for opt in options().values():  # every declared bound admits the default
        assert opt.minimum is None or opt.minimum <= opt.default
        assert opt.maximum is None or opt.default <= opt.maximum


@pytest.mark.parametrize(
    "augment, message",
    [
        ({"crop": 8}, "augment.crop must be between 16 and 48 (0 = off), got 8"),
        ({"crop": 49}, "augment.crop must be between 16 and 48 (0 = off), got 49"),
        ({"erasing": 1.5}, "augment.erasing must be between 0 and 1, got 1.5"),
        ({"rotation": -5.0}, "augment.rotation must be between 0 and 180, got -5.0"),
        ({"shift": "lots"}, "augment.shift must be a number, got 'lots'"),
    ],
)
def test_augmentation_bounds_are_enforced_with_their_off_value(augment, message):
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict({"augment": augment})
    assert str(err.value) == message
    assert TrainConfig.from_dict({"augment": {"crop": 0}}).augment.crop == 0  # off, below the minimum
    assert TrainConfig.from_dict({"augment": {"crop": 16}}).augment.crop == 16
    for f in dataclasses.fields(Augment):  # every declared bound admits the default, or it is the off value
        low, high, default = f.metadata.get("minimum"), f.metadata.get("maximum"), f.default
        assert default == f.metadata.get("off") or (low is None or low <= default) and (high is None or default <= high)


def test_crop_epochs_limit_the_crops_to_the_first_epochs():
    cfg = TrainConfig.from_dict({"epochs": 5, "augment": {"crop": 40}, "crop_epochs": 3})
    assert [cfg.crop_of_epoch(e) for e in range(5)] == [40, 40, 40, 0, 0]
    assert cfg.augment_of_epoch(4).crop == 0 and cfg.augment_of_epoch(4).shift == cfg.augment.shift
    assert cfg.augment_of_epoch(0) is cfg.augment
    every = TrainConfig.from_dict({"epochs": 5, "augment": {"crop": 40}})
    assert [every.crop_of_epoch(e) for e in range(5)] == [40] * 5
    with pytest.raises(ValueError, match="crop_epochs limits augment.crop to the first epochs: set augment.crop"):
        TrainConfig.from_dict({"crop_epochs": 3})
    with pytest.raises(ValueError, match="crop_epochs must be between 0 and 1000"):
        TrainConfig.from_dict({"augment": {"crop": 40}, "crop_epochs": -1})


def test_crops_need_a_builder_with_an_open_input_side(tmp_path):
    assert takes_any_side("fernet") and not takes_any_side("coursera") and not takes_any_side("nope")
    assert TrainConfig.from_dict({"model": "fernet", "augment": {"crop": 40}}).augment.crop == 40
    with pytest.raises(ValueError, match=r"takes any side \(fernet\), not init_from"):
        TrainConfig.from_dict({"model": "coursera", "augment": {"crop": 40}})
    with pytest.raises(ValueError, match="not init_from"):
        TrainConfig.from_dict({"model": "fernet", "init_from": str(tmp_path / "m.keras"), "augment": {"crop": 40}})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ema": 0.999, "swa_epochs": 3}, "choose one weight average: ema or swa_epochs, not both"),
        ({"ema": 0.999, "strategy": "mirrored"}, "ema needs the default strategy"),
        ({"ema": 1.0}, "ema must be between 0 and 0.99999, got 1.0"),
    ],
)
def test_weight_averages_are_one_at_a_time_and_on_one_machine(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(change)
    assert TrainConfig.from_dict({"ema": 0.999}).ema == 0.999


def test_architecture_of_a_fine_tune_is_the_stored_one(tmp_path):
    from fercore.models.architectures import build_model, save_model

    file = save_model(build_model("fernet", **TINY), tmp_path / "m.keras", {"model": "fernet", "model_params": TINY})
    assert architecture("coursera", {}, str(file)) == ("fernet", TINY)
    assert architecture("coursera", {"dropout": 0.1}) == ("coursera", {"dropout": 0.1})
    bare = tmp_path / "bare.keras"
    bare.write_bytes(b"not a zip")  # no stored config: the form's choice
    assert architecture("coursera", {}, str(bare)) == ("coursera", {})


def test_with_init_architecture_takes_the_source_models(tmp_path):
    from fercore.models.architectures import build_model, save_model
    from fercore.train.config import with_init_architecture

    file = save_model(build_model("fernet", **TINY), tmp_path / "m.keras", {"model": "fernet", "model_params": TINY})
    plain = TrainConfig(model="coursera")
    assert with_init_architecture(plain) is plain
    tuned = with_init_architecture(TrainConfig(model="coursera", init_from=str(file)))
    assert (tuned.model, tuned.model_params) == ("fernet", TINY)
    assert tuned.init_from_config == {"model": "fernet", "model_params": TINY}


def test_the_cli_refuses_an_out_of_range_value_in_one_line_before_writing(tmp_path, capsys):
    from fercore.train.__main__ import main

    assert main(["--data", "x", "--epochs", "0", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: epochs must be between 1 and 1000, got 0"]
    assert not (tmp_path / "run").exists()


def test_every_recipe_in_training_configs_loads_and_builds():
    """Each committed recipe is a valid config whose network builds: a reproduce command in the model
    card must not fail on a key or a parameter renamed since. Files a recipe reads that derive from
    FER2013 (a teacher's cached probabilities) live under runs/, never in the project."""
    import json

    from fercore.models.architectures import build_model
    from fercore.train.presets import CONFIGS_DIR, PRESETS_FILE

    recipes = sorted(p for p in CONFIGS_DIR.glob("*.json") if p != PRESETS_FILE)
    assert len(recipes) >= 3
    params_of: dict[str, int] = {}
    for path in recipes:
        config = TrainConfig.from_dict(json.loads(path.read_text()))
        assert not config.teacher or config.teacher.startswith("runs/"), path.name
        key = json.dumps([config.model, config.model_params], sort_keys=True)
        if key not in params_of:  # raises on a parameter the builder no longer takes
            params_of[key] = build_model(config.model, **config.model_params).count_params()
        assert params_of[key] > 0, path.name
