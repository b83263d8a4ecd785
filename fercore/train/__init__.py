"""Training: config (whose choices drive the CLI and the Train form), augmentation, schedule,
callbacks and ``fit(config, run_dir)``. TensorFlow loads only when training starts."""

from fercore.train.augment import augment_batch, mixup_batch
from fercore.train.config import (
    EXPORT_CHECKPOINTS,
    OPTIMIZERS,
    SCHEDULES,
    STRATEGIES,
    Augment,
    Option,
    TrainConfig,
    form_config,
    init_from_choices,
    options,
)
from fercore.train.dataset import (
    class_weight_vector,
    make_eval_dataset,
    make_train_dataset,
    prepare_data,
    steps_per_epoch,
)
from fercore.train.distributed import get_strategy
from fercore.train.fit import build_for_training, export_final, fit
from fercore.train.schedule import make_schedule

__all__ = [
    "EXPORT_CHECKPOINTS",
    "OPTIMIZERS",
    "SCHEDULES",
    "STRATEGIES",
    "Augment",
    "Option",
    "TrainConfig",
    "augment_batch",
    "build_for_training",
    "class_weight_vector",
    "export_final",
    "fit",
    "form_config",
    "init_from_choices",
    "get_strategy",
    "make_eval_dataset",
    "make_schedule",
    "make_train_dataset",
    "mixup_batch",
    "options",
    "prepare_data",
    "steps_per_epoch",
]
