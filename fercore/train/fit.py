"""``fit(config, run_dir)``: one training run, from data to exported model.

The run directory is the only output and the only state: a stop request (STOP file, SIGTERM,
SIGINT) ends training after the current batch with ``checkpoints/last.keras`` saved, and
``fit(..., resume=True)`` continues from it at the very step it stopped, so that the steps, the
epochs, the learning rate, the data order and the augmentation match an uninterrupted run.

Under ``strategy="multiworker"`` (TF_CONFIG names the cluster) every worker runs ``fit`` with the
same config and run directory, but only the chief writes it and holds the runs folder's lock; the
other workers train in lockstep and write into a temporary directory that is removed (see
:func:`is_chief` and docs/distributed.md).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fercore import runs
from fercore.train.config import TrainConfig, with_init_architecture
from fercore.train.dataset import crop_segments, make_eval_dataset, make_train_dataset, prepare_data, steps_per_epoch
from fercore.train.distributed import (
    agreed_stop,
    distributable,
    fix_keras_multiworker,
    get_strategy,
    is_chief,
    num_workers,
)
from fercore.train.precision import compute_precision
from fercore.train.schedule import FLOORS, attach_schedule, make_schedule


class StopFlag:
    """True once SIGTERM/SIGINT arrived or the run's STOP file exists."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.signalled = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signalled or runs.stop_requested(self.run_dir)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = True

    def __enter__(self) -> StopFlag:
        self.arm()
        return self

    def arm(self) -> None:
        """Install the handlers; again once a MultiWorkerMirroredStrategy exists, whose runtime
        puts a SIGTERM handler of its own (a preemption notifier that does not stop training)
        in their place, below Python's notice."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous.setdefault(sig, signal.signal(sig, self._handler))
            except ValueError:  # not in the main thread: the STOP file still works
                pass

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def build_for_training(config: TrainConfig, resume_from: Path | None = None, steps_per_epoch: int = 1) -> Any:
    """Build (or load) and compile the model inside the current strategy scope."""
    import keras

    import fercore.train.linear_schedule  # noqa: F401 - registers the linear schedule for load_model
    from fercore.models.architectures import build_model, load_keras_model
    from fercore.train.batch_norm import fuse_batch_norm

    if resume_from is not None:
        model = keras.models.load_model(resume_from, compile=True)
        fuse_batch_norm(model)
        if (
            config.schedule in FLOORS or config.schedule == "linear"
        ):  # constant/plateau keep the (possibly reduced) saved rate
            attach_schedule(model.optimizer, config, steps_per_epoch)
        return model
    if config.init_from:
        model = load_keras_model(config.init_from)
    else:  # a run on crops trains a model whose input takes any side (whole faces at validation)
        crop = {"input_size": None} if config.augment.crop else {}
        model = build_model(config.model, **{**config.model_params, **crop})
    fuse_batch_norm(model)  # training-mode BatchNorm in one kernel: same results, a faster step
    lr = make_schedule(config, steps_per_epoch)
    ema = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None, **ema)
    elif config.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, **ema)
    else:
        opt = keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **ema)
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def begin_run(config: TrainConfig, run_dir: str | Path, pid: int | None = None) -> TrainConfig:
    """Start a fresh run directory: the only writer of a run's ``config.json`` and its first ``status.json``.

    ``config``: the validated config (a fine-tuning run records the architecture it loads, not what a
    form said: :func:`with_init_architecture`); ``run_dir``: the new run's folder (created);
    ``pid``: the process that owns the run until training starts (this one by default; a launcher
    names itself, then its child). Returns the config as recorded."""
    run_dir = Path(run_dir)
    config = with_init_architecture(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_config(run_dir, config.to_dict())
    first = {"state": "starting", "error": None, "finished": None, "epochs": config.epochs, "started": time.time()}
    runs.write_json_atomic(runs.path(run_dir, runs.STATUS), {**first, **runs.owner(pid), "updated": time.time()})
    return config


def fit(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    verbose: int = 1,
    callbacks: Iterable[Any] = (),
    begun: bool = False,
) -> dict[str, Any]:
    """Train according to ``config`` into ``run_dir``; returns the final status dict.

    One training at a time per runs folder (``run_dir``'s parent): raises
    :class:`fercore.runs.TrainingBusyError` when another one holds it. ``callbacks`` run before
    the run's own (tests use them to stop at a given step). A fresh run is begun here
    (:func:`begin_run`) unless ``begun``: a launcher already did (``config`` is then what it recorded).

    A non-chief worker of a multi-worker job (:func:`is_chief`) takes no lock and writes nothing
    into ``run_dir``: see :func:`_fit_worker`.
    """
    run_dir = Path(run_dir)
    if not is_chief(config.strategy):
        return _fit_worker(config, run_dir, resume, verbose, list(callbacks))
    with runs.training_lock(run_dir.parent, run_dir.name), StopFlag(run_dir) as stop:
        if resume and not (run_dir / runs.LAST).exists():
            raise FileNotFoundError(f"{run_dir}: nothing to resume (no {runs.LAST})")
        if resume:  # the request that stopped it is spent; --epochs may have extended it
            runs.clear_stop(run_dir)
            runs.write_config(run_dir, config.to_dict())
            runs.update_status(
                run_dir, state="starting", error=None, finished=None, epochs=config.epochs, started=time.time()
            )
        elif not begun:
            config = begin_run(config, run_dir)
        runs.update_status(run_dir, **runs.owner())  # this process trains it now
        try:
            return _train(config, run_dir, resume, verbose, list(callbacks), stop)
        except BaseException as exc:  # record why, then let the caller see it
            runs.update_status(
                run_dir,
                state="failed",
                finished=time.time(),
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc()[-4000:],
            )
            raise


def _fit_worker(config: TrainConfig, run_dir: Path, resume: bool, verbose: int, extra: list[Any]) -> dict[str, Any]:
    """A non-chief worker: the same training in lockstep with the chief (every all-reduce, every
    checkpoint save, as TensorFlow requires of all workers), but what it would write (status,
    metrics, checkpoints, TensorBoard) goes to a temporary directory that is removed at the end.

    It takes no lock: the lock says which training writes a runs folder, and this one writes
    none (two workers on one machine would otherwise refuse each other as "busy"). From
    ``run_dir`` it only reads: a resume's checkpoint and status (so for a resume ``run_dir``
    must be the chief's, on shared storage or copied), and a STOP file if it can see one.
    """
    if resume and not (run_dir / runs.LAST).exists():
        raise FileNotFoundError(
            f"{run_dir}: nothing to resume (no {runs.LAST}; a worker needs the chief's run directory)"
        )
    scratch = Path(tempfile.mkdtemp(prefix="fer-worker-"))
    try:
        with StopFlag(run_dir) as stop:  # _train loads the data, then sets the precision around the training
            return _train(config, scratch, resume, verbose, extra, stop, source=run_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    verbose: int,
    extra: list[Any],
    stop: StopFlag,
    source: Path | None = None,
) -> dict[str, Any]:
    """Train, writing into ``run_dir``; a resume reads ``source`` (default: ``run_dir``; a
    non-chief worker writes a scratch directory and reads the chief's run directory)."""
    data = prepare_data(config)  # bad data fails here, before TensorFlow loads
    with compute_precision(config.precision) as precision:  # the previous Keras policy comes back after
        return _train_prepared(config, data, precision, run_dir, resume, verbose, extra, stop, source)


def _train_prepared(
    config: TrainConfig,
    data: tuple[Any, Any, Any, Any, Any],
    precision: str,
    run_dir: Path,
    resume: bool,
    verbose: int,
    extra: list[Any],
    stop: StopFlag,
    source: Path | None,
) -> dict[str, Any]:
    """:func:`_train` once the data is loaded and the precision set."""
    chief = source is None
    source = run_dir if source is None else source
    tx, ty, tw, vx, vy = data
    import keras

    from fercore.train.callbacks import RunLogger, restore_rng
    from fercore.train.swa import WeightAverager

    keras.utils.set_random_seed(config.seed)
    strategy = get_strategy(config.strategy)
    stop.arm()  # a MultiWorkerMirroredStrategy has just replaced the SIGTERM handler
    replicas = strategy.num_replicas_in_sync
    batch = min(config.batch_size, len(tx))
    if batch % replicas:  # tf.data would split it unevenly, and the replicas' means would be skewed
        raise ValueError(
            f"batch size {batch} does not split evenly over {replicas} replicas: choose a multiple of {replicas}"
        )
    if replicas > 1:
        # every replica must get an equal share of each batch: trim the validation set to a
        # multiple of the replica count (and evaluate in batches that are one too)
        keep = len(vx) - len(vx) % replicas
        vx, vy = vx[:keep], vy[:keep]
    spe = steps_per_epoch(len(tx), config.batch_size)
    total = config.epochs * spe
    with strategy.scope():
        model = build_for_training(config, source / runs.LAST if resume else None, spe)
    if resume:
        from fercore.models.architectures import read_model_config

        restore_rng(model, read_model_config(source / runs.LAST))
    workers = num_workers(strategy)
    if workers > 1:
        fix_keras_multiworker(model, (tx[:1, ..., None].astype("float32"), ty[:1], tw[:1]))
    step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    prior = runs.read_status(source).get("best_val_accuracy") if resume else None
    best = prior if prior is not None else -1.0
    if resume:  # rows logged after the checkpoint (a kill) are trained again: drop them
        runs.truncate_metrics(run_dir, step)
    logger = RunLogger(run_dir, config, spe, agreed_stop(stop, strategy) if workers > 1 else stop, best)
    # the mean is saved before the epoch's checkpoint, so a kill in between cannot count an epoch twice
    averager = [WeightAverager(run_dir, config, spe, source)] if config.swa_epochs else []
    cbs = [*extra, *averager, logger, *_keras_callbacks(config, run_dir)]
    runs.update_status(
        run_dir,
        state="running",
        n_train=len(tx),
        n_val=len(vx),
        precision=precision,
        steps_per_epoch=spe,
        params=int(model.count_params()),
        step=step,
        epoch=min(step // spe + 1, config.epochs),
    )
    val_ds = distributable(make_eval_dataset(vx, vy, max(1, 256 // replicas) * replicas), config)
    with _weights_left_raw(model.optimizer):
        side = None
        for first, last in fit_segments(config, spe, step, total):
            if logger.stopped:
                break
            epoch, offset = divmod(first, spe)
            now = config.crop_of_epoch(epoch)
            if side is not None and now != side:
                # a new input side: trace the step afresh for it (Keras would relax the old trace to any side)
                model.make_train_function(force=True)
            side = now
            train_ds = distributable(make_train_dataset(tx, ty, tw, config, first, last), config)
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=-(-last // spe),
                initial_epoch=epoch,
                steps_per_epoch=spe - offset,
                callbacks=cbs,
                verbose=verbose,
                shuffle=False,
            )
    if logger.stopped:
        return runs.update_status(run_dir, state="stopped", finished=time.time())
    if config.swa_epochs or config.ema:
        _finish_average(model, config, run_dir, tx, val_ds, step=logger.step, best=logger.best)
    export_error = export_final(run_dir) if chief else None  # no collectives: the chief's alone
    return runs.update_status(run_dir, state="finished", finished=time.time(), export_error=export_error)


def fit_segments(config: TrainConfig, spe: int, step: int, total: int) -> list[tuple[int, int]]:
    """The ``model.fit`` calls that take a run from global ``step`` to ``total``, as step ranges: the
    rest of an epoch a resumed run stopped in, then whole epochs, cut where the crop side changes
    (one input shape per call)."""
    if step >= total:
        return []
    epoch, offset = divmod(step, spe)
    head = [(step, (epoch + 1) * spe)] if offset else []
    return head + crop_segments(config, spe, (epoch + 1) * spe if offset else step, total)


@contextmanager
def _weights_left_raw(optimizer: Any) -> Iterator[None]:
    """Keras copies an optimizer's moving average (``use_ema``) into the model at the end of every
    ``model.fit`` call; a resumed run calls it twice (the rest of an epoch, then the other epochs),
    and the training must go on from the raw weights. The average stays in the optimizer (and in
    every checkpoint) until :func:`_finish_average` takes it."""
    optimizer.finalize_variable_values = lambda var_list: None  # shadows the method for the block
    try:
        yield
    finally:
        del optimizer.finalize_variable_values


def _finish_average(
    model: Any, config: TrainConfig, run_dir: Path, images: Any, val_ds: Any, step: int, best: float
) -> None:
    """Put the run's averaged weights into ``model`` (SWA: the mean of its last epochs; EMA: the
    optimizer's moving average) with BatchNorm statistics recomputed on the training faces, save it
    as ``checkpoints/swa.keras`` or ``ema.keras`` (what the run exports) and record its validation
    accuracy in the status."""
    from fercore.train.callbacks import save_checkpoint
    from fercore.train.swa import averaged_model, recompute_batch_norm

    runs.update_status(run_dir, state="averaging")
    if config.swa_epochs:
        model, count = averaged_model(model, run_dir, images)
        kind, file, extra = "swa", runs.SWA, {"swa_epochs_averaged": count}
    else:
        model.optimizer.finalize_variable_values(model.trainable_variables)
        recompute_batch_norm(model, images)
        kind, file, extra = "ema", runs.EMA, {}
    _, accuracy = model.evaluate(val_ds, verbose=0)
    save_checkpoint(model, run_dir / file, config, config.epochs, step, best)
    runs.update_status(run_dir, **extra, **{f"{kind}_val_accuracy": float(accuracy)})


def _keras_callbacks(config: TrainConfig, run_dir: Path) -> list[Any]:
    import keras

    cbs: list[Any] = []
    if config.schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6))
    if config.early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.early_stopping))
    tb = keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD), write_graph=False, update_freq="epoch")
    return [*cbs, tb]


def export_final(run_dir: Path) -> str | None:
    """Export the run's checkpoint (:func:`fercore.runs.exported_checkpoint`: the averaged model of
    an SWA run, else the config's ``export_checkpoint``, last by default: best-on-PublicTest would
    select the model on the test set) in every format into ``export/``.

    Returns None, or the reason the export failed (training itself still counts as finished:
    the checkpoints are there and ``python -m training.export`` can be retried).
    """
    from fercore.models.export import export_all

    try:
        src, _ = runs.exported_checkpoint(run_dir)
        export_all(src, run_dir / runs.EXPORT, check=False)
    except Exception as exc:  # noqa: BLE001 - reported in status.json, checkpoints are kept
        return f"{type(exc).__name__}: {exc}"
    return None
