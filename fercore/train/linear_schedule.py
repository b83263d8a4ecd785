"""The ``linear`` learning-rate schedule: linear warm-up from lr/10, then a straight line to zero.

Budgeted training (Li, Yumer and Ramanan, ICLR 2020) found that for a fixed number of steps a rate
decayed linearly to zero at the last step beats step and cosine schedules; it also makes every
budget its own schedule, which is what short presets need. For weight averaging (SWA) the line can
instead end at a floor (a fraction of the peak) at an earlier step and hold it there, so the
averaged epochs sample around a minimum at a constant rate. A Keras-serializable schedule, so a
checkpoint's optimizer reloads with it (``fercore.train.fit`` imports this module before loading).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="fercore")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr/10 → ``peak`` over ``warmup_steps``, then linearly to ``floor`` × ``peak`` at ``end_step``
    (default ``total_steps``), held from there on. The defaults (floor 0, end at the last step) are
    the plain line to zero, so checkpoints saved before the floor existed load unchanged."""

    def __init__(
        self, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0, end_step: int | None = None
    ) -> None:
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor is a fraction of the peak in [0, 1), got {floor}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), self.warmup_steps + 1)
        self.floor = float(floor)
        end = self.total_steps if end_step is None else int(end_step)
        self.end_step = min(max(end, self.warmup_steps + 1), self.total_steps)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        rising = self.peak * (0.1 + 0.9 * ops.minimum(step / warm, 1.0))
        left = ops.clip((self.end_step - step) / float(self.end_step - self.warmup_steps), 0.0, 1.0)
        falling = self.peak * (self.floor + (1.0 - self.floor) * left)
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "floor": self.floor,
            "end_step": self.end_step,
        }
