"""The ``linear`` learning-rate schedule: linear warm-up from lr/10, then a straight line to zero.

Budgeted training (Li, Yumer and Ramanan, ICLR 2020) found that for a fixed number of steps a rate
decayed linearly to zero at the last step beats step and cosine schedules; it also makes every
budget its own schedule, which is what short presets need. A Keras-serializable schedule, so a
checkpoint's optimizer reloads with it (``fercore.train.fit`` imports this module before loading).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="fercore")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr/10 → ``peak`` over ``warmup_steps``, then linearly to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), self.warmup_steps + 1)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        rising = self.peak * (0.1 + 0.9 * ops.minimum(step / warm, 1.0))
        left = (self.total_steps - step) / float(self.total_steps - self.warmup_steps)
        falling = self.peak * ops.clip(left, 0.0, 1.0)
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
