"""fercore.train.presets and ``training.train --preset``: the presets file and its recipes agree, each
recipe trains, and the expected time scales with this machine's measured throughput (fake probes)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import fields, replace
from pathlib import Path

import pytest

from fercore import runs
from fercore.train import TrainConfig, preview
from fercore.train import presets as P

NAMES = P.preset_names()


def _presets_copy(tmp_path: Path, **figures: dict) -> Path:
    """training/configs/presets.json and its recipes copied to ``tmp_path``, with ``figures`` per preset."""
    raw = json.loads(P.PRESETS_FILE.read_text())
    for name, entry in raw.items():
        if not name.startswith("_"):
            shutil.copy(P.CONFIGS_DIR / entry["config"], tmp_path / entry["config"])
            entry.update(figures.get(name, {}))
    path = tmp_path / "presets.json"
    path.write_text(json.dumps(raw))
    return path


def test_presets_file_and_recipes_agree():
    raw = json.loads(P.PRESETS_FILE.read_text())
    assert NAMES == ("quick", "standard", "best")
    for name in NAMES:
        entry = raw[name]
        assert set(entry) == {"config", "label", "top1", "wall_minutes", "train_images_per_s", "reference"}, name
        assert (P.CONFIGS_DIR / entry["config"]).is_file(), f"{name}: its recipe file"
        recipe = json.loads((P.CONFIGS_DIR / entry["config"]).read_text())
        assert set(recipe) <= {f.name for f in fields(TrainConfig)}, f"{name}.json has unknown keys"
        config = P.load_preset(name).config()
        assert config == TrainConfig.from_dict({**recipe, "data": config.data, "ferplus": config.ferplus})
        assert Path(config.data).is_absolute(), "relative paths are the project's"
        # the figures are null until measured, else positive numbers measured together
        assert (entry["wall_minutes"] is None) == (entry["train_images_per_s"] is None), name
    quick, standard = P.load_preset("quick").config(), P.load_preset("standard").config()
    # standard is quick's recipe run longer, at batch 64 with the same weight decay per epoch (pilot p8),
    # its rate held at a floor over the last epochs, whose weights it averages (SWA), on quick's net with
    # less BatchNorm work (the stem pooled before its BatchNorm, projections without one: same FLOPs)
    p8 = {"epochs": quick.epochs, "batch_size": quick.batch_size, "weight_decay": quick.weight_decay}
    tail = {"swa_epochs": quick.swa_epochs, "lr_floor": quick.lr_floor}
    lean = {"stem_pool_first": True, "proj_bn": False}
    assert standard.model_params == {**quick.model_params, **lean}
    net = {"model_params": quick.model_params}
    assert standard.epochs > quick.epochs and replace(standard, **p8, **tail, **net) == quick
    assert 0 < standard.swa_epochs < standard.epochs and 0 < standard.lr_floor < 1
    assert standard.batch_size * 2 == quick.batch_size and standard.weight_decay * 2 == quick.weight_decay


def test_unknown_preset_and_bad_figures_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'fast'; choose one of quick, standard, best"):
        P.load_preset("fast")
    bad = _presets_copy(tmp_path, quick={"top1": "high"})
    with pytest.raises(ValueError, match="top1 must be a positive number or null"):
        P.load_presets(bad)
    (tmp_path / "nofile.json").write_text(json.dumps({"x": {"label": "X"}}))
    with pytest.raises(ValueError, match="needs a 'config' file name"):
        P.load_presets(tmp_path / "nofile.json")


def test_not_measured_presets_have_no_expected_time(tmp_path):
    null = {"top1": None, "wall_minutes": None, "train_images_per_s": None}
    presets = P.load_presets(_presets_copy(tmp_path, quick=null))  # as shipped before the measurement
    quick = presets["quick"]
    assert quick.top1 is None and not quick.measured
    assert quick.expected_minutes(500.0) is None


def test_expected_time_scales_with_measured_throughput(tmp_path):
    path = _presets_copy(tmp_path, quick={"top1": 0.64, "wall_minutes": 10, "train_images_per_s": 400})
    quick = P.load_presets(path)["quick"]
    assert quick.measured and quick.top1 == 0.64
    assert quick.expected_minutes(400.0) == pytest.approx(10.0)
    assert quick.expected_minutes(100.0) == pytest.approx(40.0), "4× slower here, 4× longer"
    with pytest.raises(ValueError):
        quick.expected_minutes(0.0)
    # this machine's throughput from a (fake) probe, counted as the reference counts it: training images
    # per epoch wall second, validation included, i.e. consistent with preview.epoch_estimate
    calls = []

    def fake_probe(model, params, batch_size, precision, training=True, augment=None):
        calls.append((model, batch_size, precision, training, augment))
        return 0.5 if training else 0.2

    config = quick.config()
    here = P.measure_images_per_second(config, probe=fake_probe)
    assert calls == [  # the training probe runs the recipe's augmentation too
        (config.model, config.batch_size, "auto", True, config.augment),
        (config.model, preview.EVAL_BATCH, "auto", False, None),
    ]
    epoch = (P.FER2013_TRAIN // config.batch_size) * 0.5 + math.ceil(P.FER2013_VAL / preview.EVAL_BATCH) * 0.2
    assert epoch == pytest.approx(preview.epoch_estimate(0.5, P.FER2013_TRAIN, config.batch_size, P.FER2013_VAL, 0.2))
    assert here == pytest.approx(P.FER2013_TRAIN / epoch)
    assert quick.expected_minutes(here) == pytest.approx(10 * 400 / here)


def test_a_recipe_on_crops_first_is_timed_per_input_side():
    """crop_epochs: the probe times a step on the crops and one on whole faces; the run's images/s
    weighs each side by its epochs, as the reference run's mean over its epochs does."""
    from dataclasses import replace

    config = TrainConfig.from_dict({"epochs": 38, "batch_size": 64, "augment": {"crop": 40}, "crop_epochs": 24})
    calls = []

    def fake_probe(model, params, batch_size, precision, training=True, augment=None):
        calls.append((training, augment.crop if augment else None))
        return {40: 0.3, 0: 0.5}[augment.crop] if training else 0.2

    here = P.measure_images_per_second(config, probe=fake_probe)
    assert calls == [(True, 40), (True, 0), (False, None)]

    def epoch(step):
        return preview.epoch_estimate(step, P.FER2013_TRAIN, 64, P.FER2013_VAL, 0.2)

    assert here == pytest.approx(P.FER2013_TRAIN * 38 / (24 * epoch(0.3) + 14 * epoch(0.5)))
    assert P.FER2013_TRAIN / epoch(0.5) < here < P.FER2013_TRAIN / epoch(0.3)
    every = replace(config, crop_epochs=0)
    assert P.images_per_second(every, {40: 0.3}, 0.2) == pytest.approx(P.FER2013_TRAIN / epoch(0.3))
    with pytest.raises(ValueError, match=r"no probed step time for input side\(s\) \[0\]"):
        P.images_per_second(config, {40: 0.3}, 0.2)


def test_overridden_data_takes_its_own_ferplus_votes(tmp_path, class_folder):
    quick = P.load_preset("quick")
    assert quick.config().ferplus, "the recipe uses FER+ votes"
    moved = quick.config(data=str(class_folder))
    assert moved.data == str(class_folder) and moved.ferplus == "", "no votes beside the new data: none"
    (class_folder / "ferplus_votes.csv").write_text("Usage,Image name,neutral\n")
    assert quick.config(data=str(class_folder)).ferplus == str(class_folder / "ferplus_votes.csv")


def test_matching_preset_ignores_data_and_subset():
    quick = P.load_preset("quick").config()
    assert P.matching_preset(quick) == "quick"
    from dataclasses import replace

    assert P.matching_preset(replace(quick, data="elsewhere", subset=100, log_every=3)) == "quick"
    assert P.matching_preset(replace(quick, epochs=quick.epochs + 1)) == P.CUSTOM


def test_cli_preset_is_the_base_and_flags_override_it(tmp_path):
    from fercore.train.__main__ import parse_args, resolve_config

    cfg = TrainConfig.from_dict(resolve_config(parse_args(["--preset", "quick", "--epochs", "2", "--data", "d"])))
    quick = P.load_preset("quick").config(data="d")
    assert cfg.epochs == 2 and cfg.data == "d" and cfg.model_params == quick.model_params
    assert cfg.augment == quick.augment and cfg.schedule == "linear"
    with pytest.raises(SystemExit):
        parse_args(["--preset", "nope"])


def test_cli_refuses_config_and_preset_together(capsys):
    from fercore.train.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--preset", "quick", "--config", "x.json"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_preset_trains_one_epoch(name, tmp_path, class_folder, no_export):
    """The recipes stay loadable and valid: one epoch of each on 64 generated faces, in float32."""
    from dataclasses import replace

    from fercore.train import fit

    config = replace(P.load_preset(name).config(data=str(class_folder)), subset=64, batch_size=32, epochs=1)
    config = replace(config, precision="float32", log_every=1)
    status = fit(config, tmp_path / "runs" / name, verbose=0)
    assert status["state"] == "finished" and status["completed_epochs"] == 1
    epochs = runs.read_metrics(tmp_path / "runs" / name).query("kind == 'epoch'")
    assert len(epochs) == 1 and epochs["val_accuracy"].notna().all()
    assert runs.read_config(tmp_path / "runs" / name)["model_params"] == config.model_params
