"""Learning-rate schedules as Keras schedule objects.

``onecycle`` and ``cosine`` are a linear warm-up from lr/10 to lr over ``warmup_epochs``, then a
cosine to a floor (1e-3·lr for onecycle, 1e-2·lr for cosine) at the last step — exactly
``keras.optimizers.schedules.CosineDecay`` with ``warmup_target``. ``constant`` and ``plateau``
keep a plain float (ReduceLROnPlateau needs to set it).

The schedule is (re)attached to the optimizer on every start and resume, so a checkpoint written
by older code (a float learning rate set by a callback) follows the same curve after resume, and
so does a run resumed with more epochs.
"""

from __future__ import annotations

from typing import Any

from fercore.train.config import TrainConfig

FLOORS = {"onecycle": 1e-3, "cosine": 1e-2}  # final lr as a fraction of the peak


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning rate for the optimizer: a Keras schedule, or a float for constant/plateau."""
    import keras

    if config.schedule not in FLOORS and config.schedule != "linear":
        return float(config.lr)
    total = max(1, config.epochs * steps_per_epoch)
    warm = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "linear":
        from fercore.train.linear_schedule import WarmupLinearDecay
        from fercore.train.swa import first_averaged_epoch

        # with a floor the line ends where weight averaging starts (the last step without it) and holds;
        # without one it runs to zero at the last step, averaging or not
        end = (first_averaged_epoch(config) - 1) * steps_per_epoch if config.lr_floor else total
        return WarmupLinearDecay(float(config.lr), warm, total, floor=config.lr_floor, end_step=end)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.lr * 0.1,
        decay_steps=max(1, total - warm),
        alpha=FLOORS[config.schedule],
        warmup_target=float(config.lr),
        warmup_steps=warm,
    )


def attach_schedule(optimizer: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    """Give ``optimizer`` the config's schedule, whatever learning rate it was saved with."""
    from keras.optimizers.schedules import LearningRateSchedule

    opt = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps the real one
    lr = make_schedule(config, steps_per_epoch)
    if isinstance(lr, LearningRateSchedule) or not isinstance(opt._learning_rate, LearningRateSchedule):
        opt.learning_rate = lr
    else:  # a schedule-driven checkpoint resumed as constant/plateau: a float needs a variable again
        raise ValueError(f"this checkpoint was trained with a schedule; schedule {config.schedule!r} cannot resume it")


def lr_of_step(optimizer: Any, step: int) -> float:
    """The learning rate the optimizer applies at (0-based) global step ``step``."""
    import keras

    opt = getattr(optimizer, "inner_optimizer", optimizer)
    lr = opt._learning_rate
    value = lr(step) if callable(lr) else lr
    return float(keras.ops.convert_to_numpy(value))
