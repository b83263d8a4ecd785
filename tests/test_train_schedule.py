"""fercore.train.schedule: Keras' CosineDecay reproduces the warm-up + cosine-to-floor curve of
the callback-driven schedule it replaced, also for checkpoints saved with a float learning rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fercore.train import TrainConfig
from fercore.train.schedule import attach_schedule, lr_of_step, make_schedule


def old_lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """The schedule as fercore/train.py computed it before the split (the reference)."""
    total = max(1, config.epochs * steps_per_epoch)
    warm = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule in ("constant", "plateau"):
        return config.lr
    if step < warm:
        return config.lr * (0.1 + 0.9 * step / max(1, warm))
    progress = min(1.0, (step - warm) / max(1, total - warm))
    floor = config.lr * (1e-3 if config.schedule == "onecycle" else 1e-2)
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
@pytest.mark.parametrize("epochs, spe, warmup, lr", [(36, 224, 2.0, 0.05), (10, 7, 0.5, 0.1), (3, 4, 0.0, 0.01),
                                                     (2, 5, 5.0, 0.2)])  # fmt: skip
def test_cosine_decay_equals_the_old_curve(schedule, epochs, spe, warmup, lr):
    cfg = TrainConfig(schedule=schedule, epochs=epochs, lr=lr, warmup_epochs=warmup)
    sched = make_schedule(cfg, spe)
    steps = np.unique(np.r_[np.arange(0, epochs * spe + 3, max(1, epochs * spe // 300)), [0, 1, epochs * spe - 1]])
    got = np.array([float(sched(int(s))) for s in steps])
    want = np.array([old_lr_at(int(s), spe, cfg) for s in steps])
    # the same curve to float32 precision (Keras evaluates it in float32; the optimizer applies float32)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=lr * 2e-7)


def test_constant_and_plateau_keep_a_float():
    assert make_schedule(TrainConfig(schedule="constant", lr=0.3), 10) == 0.3
    assert make_schedule(TrainConfig(schedule="plateau", lr=0.2), 10) == 0.2


def test_checkpoint_with_a_float_rate_follows_the_curve_after_resume(tmp_path):
    """Checkpoints of the callback-driven code hold a plain float rate: attaching the schedule on
    resume makes the optimizer apply old_lr_at(step), and the model still saves and loads."""
    import keras

    from fercore.models.architectures import build_model
    from tests.conftest import TINY

    cfg = TrainConfig(epochs=4, lr=0.05, warmup_epochs=1)
    model = build_model("fernet", **TINY)
    model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  loss="categorical_crossentropy")  # fmt: skip
    x = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[np.arange(8) % 7]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # two steps, as an old run would have made
    model.save(tmp_path / "old.keras")
    resumed = keras.models.load_model(tmp_path / "old.keras", compile=True)
    attach_schedule(resumed.optimizer, cfg, steps_per_epoch=5)
    got = [lr_of_step(resumed.optimizer, s) for s in range(22)]
    np.testing.assert_allclose(got, [old_lr_at(s, 5, cfg) for s in range(22)], rtol=2e-6, atol=cfg.lr * 2e-7)
    resumed.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    resumed.save(tmp_path / "new.keras")
    again = keras.models.load_model(tmp_path / "new.keras", compile=True)
    assert lr_of_step(again.optimizer, 7) == pytest.approx(old_lr_at(7, 5, cfg), rel=2e-6)
    for a, b in zip(again.optimizer.variables, resumed.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_linear_schedule_warms_up_then_falls_straight_to_zero():
    from fercore.train.config import TrainConfig
    from fercore.train.schedule import make_schedule

    config = TrainConfig(schedule="linear", lr=0.1, epochs=10, warmup_epochs=1.0)
    lr = make_schedule(config, steps_per_epoch=10)
    values = [float(lr(s)) for s in (0, 5, 10, 55, 100, 120)]
    assert values[0] == pytest.approx(0.01) and values[1] == pytest.approx(0.055)
    assert values[2] == pytest.approx(0.1)  # the peak at the end of warm-up
    assert values[3] == pytest.approx(0.05)  # halfway down the line
    assert values[4] == pytest.approx(0.0) and values[5] == pytest.approx(0.0)


def test_linear_schedule_with_a_floor_ends_where_averaging_starts_and_holds():
    from fercore.train.config import TrainConfig
    from fercore.train.schedule import make_schedule

    # 10 epochs of 10 steps, the last 4 averaged: the line reaches 0.2 × lr at step 60 and stays there
    config = TrainConfig(schedule="linear", lr=0.1, epochs=10, warmup_epochs=1.0, swa_epochs=4, lr_floor=0.2)
    lr = make_schedule(config, steps_per_epoch=10)
    values = {s: float(lr(s)) for s in (0, 10, 35, 60, 80, 99, 150)}
    assert values[0] == pytest.approx(0.01) and values[10] == pytest.approx(0.1)
    assert values[35] == pytest.approx(0.06)  # halfway from the peak (step 10) to the floor (step 60)
    assert values[60] == values[80] == values[99] == values[150] == pytest.approx(0.02)
    # without SWA the line ends at the floor on the last step
    plain = make_schedule(TrainConfig(schedule="linear", lr=0.1, epochs=10, warmup_epochs=1.0, lr_floor=0.2), 10)
    assert float(plain(55)) == pytest.approx(0.06) and float(plain(100)) == pytest.approx(0.02)


def test_a_linear_schedule_saved_before_the_floor_existed_loads_as_the_line_to_zero():
    from fercore.train.linear_schedule import WarmupLinearDecay

    old = WarmupLinearDecay.from_config({"peak": 0.1, "warmup_steps": 10, "total_steps": 110})
    assert old.floor == 0.0 and old.end_step == 110
    assert float(old(60)) == pytest.approx(0.05) and float(old(110)) == pytest.approx(0.0)
    again = WarmupLinearDecay.from_config(WarmupLinearDecay(0.1, 10, 110, floor=0.3, end_step=60).get_config())
    assert float(again(35)) == pytest.approx(0.065) and float(again(100)) == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schedule": "cosine", "lr_floor": 0.1}, "lr_floor shapes the linear schedule"),
        ({"schedule": "linear", "lr_floor": 1.0}, "lr_floor"),
    ],
)
def test_a_floor_outside_the_linear_schedule_or_range_is_refused(changes, message):
    from fercore.train.config import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)
