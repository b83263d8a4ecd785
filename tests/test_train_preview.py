"""fercore.train.preview: a model's summary before training, the measured probe and the epoch estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fercore.train import Augment, TrainConfig, preview

TINY = {"widths": [16], "depths": [1], "stem_width": 8}


def test_describe_matches_the_built_model():
    from fercore.models.architectures import build_model, count_flops

    summary = preview.describe("fernet", TINY)
    model = build_model("fernet", **TINY)
    assert summary.total_params == model.count_params()
    assert sum(r.params for r in summary.layers) == summary.total_params
    assert 0 < summary.trainable_params < summary.total_params  # batch-norm statistics are not trained
    assert summary.flops == count_flops(model) > 0
    assert [r.name for r in summary.layers] == [layer.name for layer in model.layers]
    rows = {r["layer"]: r for r in summary.rows()}
    assert rows["stem_conv"]["type"] == "Conv2D" and rows["stem_conv"]["output shape"] == "48 × 48 × 8"
    assert rows["stem_conv"]["parameters"] == 3 * 3 * 1 * 8
    assert rows["emotion"]["output shape"] == "7"


def test_describe_coursera_defaults_and_flops_grow_with_width():
    wide = preview.describe("fernet", {**TINY, "widths": [32]})
    assert wide.flops > preview.describe("fernet", TINY).flops
    assert preview.describe("coursera", {}).name == "coursera"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"width": [8]}, "no parameter width"),  # a typo would otherwise train the default model
        ('{"widths": [8]', "not valid JSON"),
        ("[1, 2]", "a JSON object"),
    ],
)
def test_check_params_refuses_what_the_builder_would_ignore(params, message):
    with pytest.raises(ValueError, match=message):
        preview.check_params("fernet", params)


def test_check_params_and_builder_params():
    assert preview.check_params("fernet", ' {"widths": [8], "depths": [1]} ') == {"widths": [8], "depths": [1]}
    assert preview.check_params("coursera", "") == {}
    fernet = {"widths", "depths", "dropout", "stem_width", "stem_pool_first", "proj_bn"}
    assert set(preview.builder_params("fernet")) == fernet
    with pytest.raises(ValueError, match="unknown model"):
        preview.builder_params("resnet9000")


def test_probe_is_positive_finite_and_grows_with_the_batch():
    small = preview.probe_seconds_per_step("fernet", TINY, 1, steps=3, warmup=1)
    big = preview.probe_seconds_per_step("fernet", TINY, 256, steps=3, warmup=1)
    assert 0 < small < math.inf and 0 < big < math.inf
    assert big > small, "256 faces per step cost more than one"
    assert big / 256 < small, "per face, a big batch is cheaper (the per-step overhead is shared)"
    val = preview.probe_seconds_per_step("fernet", TINY, 256, steps=3, warmup=1, training=False)
    assert 0 < val < big, "a validation step (forward only) is cheaper than a training step"


def test_training_probe_feeds_fit_through_the_runs_input_pipeline(monkeypatch):
    """A step is timed as a run takes it: model.fit on batches of the recipe's augmentation (crops
    included), so a machine where augmentation costs more gets a longer estimate."""
    import importlib

    dataset = importlib.import_module("fercore.train.dataset")
    made, real = [], dataset.make_train_dataset

    def spy(images, targets, weights, config, *args, **kwargs):
        made.append((images.shape, config.augment, config.batch_size))
        return real(images, targets, weights, config, *args, **kwargs)

    monkeypatch.setattr(dataset, "make_train_dataset", spy)
    augment = Augment(flip=True, rotation=10.0, shift=0.1, zoom=0.0, brightness=0.0, contrast=0.0, erasing=0.5, crop=40)
    seconds = preview.probe_seconds_per_step("fernet", TINY, 16, steps=3, warmup=1, augment=augment)
    assert 0 < seconds < math.inf
    assert made == [((16 * 4, 48, 48), augment, 16)]  # whole faces in, one batch per probed step
    preview.probe_seconds_per_step("fernet", TINY, 16, steps=2, warmup=0, training=False)
    assert len(made) == 1  # a validation step needs no pipeline


def test_probe_in_bfloat16_leaves_the_thread_policy_alone():
    import keras

    seconds = preview.probe_seconds_per_step("fernet", TINY, 8, precision="bfloat16", steps=2, warmup=1)
    assert np.isfinite(seconds) and seconds > 0
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError):
        preview.probe_seconds_per_step("fernet", TINY, 0)


def test_epoch_estimate_counts_full_batches_and_validation():
    assert preview.epoch_estimate(0.5, 1000, 100) == pytest.approx(5.0)
    assert preview.epoch_estimate(0.5, 1050, 100) == pytest.approx(5.0)  # the remainder is dropped
    assert preview.epoch_estimate(0.5, 10, 100) == pytest.approx(0.5)  # one short batch
    assert preview.epoch_estimate(0.5, 1000, 100, n_val=300, seconds_per_val_step=1.0) == pytest.approx(7.0)
    assert preview.epoch_estimate(0.5, 0, 100) == 0.0
    with pytest.raises(ValueError):
        preview.epoch_estimate(float("nan"), 1000, 100)


def test_training_images_follow_the_config(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for i in range(70):
        px = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
        lines.append(f"{i % 7},{px},{'Training' if i < 56 else 'PublicTest'}")
    csv = tmp_path / "fer.csv"
    csv.write_text("\n".join(lines) + "\n")
    assert preview.training_images(TrainConfig(data=str(csv))) == (56, 14)
    assert preview.training_images(TrainConfig(data=str(csv), subset=28))[0] == 28
