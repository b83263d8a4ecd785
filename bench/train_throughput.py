"""Training throughput in images/s, measured in one run on the same data:

  (a) our pipeline + our model: ``fercore.train.make_train_dataset`` (seeded per-epoch order, batch
      gather, on-graph augmentation of training/configs/default.json) feeding the model of that
      config, compiled as ``fercore.train.build_for_training`` compiles it;
  (b) the same model fed ready-made float batches held in memory (no input pipeline work, no
      augmentation): the ceiling (a) can reach;
  (c) the seed pipeline: keras' legacy ``ImageDataGenerator(horizontal_flip=True)`` feeding the
      ``coursera`` CNN, batch 64, Adam 5e-4 (``flow_from_directory`` on the folder layout, as the
      seed did, or ``flow`` on arrays for generated data).

Prints images/s of each and the ratios a/b (pipeline overhead; acceptance ≥ 0.9) and a/c. Only
warm steps are timed: the first ``--warmup`` steps of each measurement (tracing, shuffle-buffer
fill) are skipped; a step's time runs from the end of the previous step, so waiting for data
counts. (a) and (b) alternate ``--rounds`` times on the same model; the median of each is used.

    python bench/train_throughput.py [--steps 40] [--warmup 5] [--rounds 2] [--batch N]
                                     [--data PATH] [--config training/configs/default.json] [--only a,b,c]

Uses the FER2013 training split from ``--data`` (default ../shared/data/fer2013) when present,
else generated faces. Other work on the machine (a training run) lowers every figure; the ratios
hold up better, but measure on an idle machine for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013"
DEFAULT_CONFIG = ROOT / "training" / "configs" / "default.json"
SEED_BATCH, SEED_LR = 64, 5e-4


def generated_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 48×48 uint8 drawn faces (head, eyes, mouth at random places and shades), labels 0–6."""
    import cv2

    rng = np.random.default_rng(seed)
    images = np.empty((n, 48, 48), np.uint8)
    for i in range(n):
        img = rng.integers(20, 90, (48, 48)).astype(np.uint8)
        cx, cy = 24 + rng.integers(-3, 4), 24 + rng.integers(-3, 4)
        cv2.ellipse(
            img,
            (int(cx), int(cy)),
            (int(rng.integers(14, 19)), int(rng.integers(18, 23))),
            0,
            0,
            360,
            int(rng.integers(130, 220)),
            -1,
        )
        for dx in (-7, 7):
            cv2.circle(img, (int(cx + dx), int(cy - 5)), 2, int(rng.integers(0, 60)), -1)
        cv2.ellipse(
            img,
            (int(cx), int(cy + 9)),
            (int(rng.integers(3, 9)), int(rng.integers(1, 5))),
            0,
            0,
            360,
            int(rng.integers(0, 80)),
            -1,
        )
        images[i] = img
    return images, np.arange(n) % 7


def load_images(data: Path, n_generated: int) -> tuple[np.ndarray, np.ndarray, str, Path | None]:
    """(images, labels, description, folder for flow_from_directory or None)."""
    if data.exists():
        from fercore.data.loader import load_dataset

        ds = load_dataset(data)
        train = ds.split("train") if "train" in ds.split_names else ds
        folder = data / "train" if (data / "train").is_dir() else None
        return train.images, train.labels, f"{len(train)} training images from {data}", folder
    images, labels = generated_faces(n_generated)
    return images, labels, f"{len(images)} generated faces ({data} not found)", None


class StepTimes:
    """A keras callback recording the wall-clock time at the end of every training batch."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends: list[float] = []

            def on_train_begin(self, logs=None):
                self.ends = [time.perf_counter()]

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        return _Timer()


def images_per_second(timer, batch: int, warmup: int) -> tuple[float, float]:
    """(images/s over the warm steps, median ms per warm step)."""
    steps = np.diff(np.asarray(timer.ends))[warmup:]
    if len(steps) == 0:
        raise ValueError("no warm steps timed: raise --steps")
    return batch * len(steps) / float(np.sum(steps)), float(np.median(steps) * 1000)


def fit_steps(model, data, steps: int, warmup: int, batch: int) -> tuple[float, float]:
    import tensorflow as tf

    timer = StepTimes()
    shuffle = not isinstance(data, tf.data.Dataset)  # a tf.data pipeline shuffles itself
    model.fit(data, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer], shuffle=shuffle)
    return images_per_second(timer, batch, warmup)


def in_memory_batches(images, targets, weights, batch: int, count: int = 16):
    """A tf.data pipeline cycling through ``count`` ready-made float batches: no per-image work."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    idx = rng.choice(len(images), size=(count, batch), replace=len(images) < count * batch)
    x = tf.constant(images[idx][..., None].astype(np.float32))  # (count, batch, 48, 48, 1)
    return tf.data.Dataset.from_tensor_slices((x, tf.constant(targets[idx]), tf.constant(weights[idx]))).repeat()


def bench_ours(config, images, labels, steps: int, warmup: int, only: set[str], rounds: int):
    """(a) make_train_dataset → our model, and (b) the same model on in-memory batches; ``rounds``
    alternations of (a) and (b), so that a change in the machine's load hits both alike."""
    import keras

    from fercore.labels import NUM_CLASSES
    from fercore.train import build_for_training, make_train_dataset
    from fercore.train.precision import keras_policy

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(keras_policy(config.precision))
    model = build_for_training(config, None)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    weights = np.ones(len(images), np.float32)
    sources = {}
    if "a" in only:
        sources["a"] = make_train_dataset(images, targets, weights, config).repeat()
    if "b" in only:
        sources["b"] = in_memory_batches(images, targets, weights, config.batch_size)
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in sources}
    for _ in range(rounds):
        for key, ds in sources.items():
            out[key].append(fit_steps(model, ds, steps, warmup, config.batch_size))
    keras.mixed_precision.set_global_policy("float32")
    return out


def bench_seed(images, labels, folder: Path | None, steps: int, warmup: int) -> tuple[tuple[float, float], str]:
    """(c) the seed: ImageDataGenerator(horizontal_flip=True) → coursera CNN, batch 64, Adam 5e-4."""
    import keras

    try:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    except ImportError:  # pragma: no cover - older keras
        from tensorflow.keras.preprocessing.image import ImageDataGenerator  # type: ignore

    from fercore.labels import NUM_CLASSES
    from fercore.models.architectures import build_model

    keras.utils.set_random_seed(1)
    model = build_model("coursera")
    model.compile(optimizer=keras.optimizers.Adam(SEED_LR), loss="categorical_crossentropy", metrics=["accuracy"])
    gen = ImageDataGenerator(horizontal_flip=True)
    if folder is not None:
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
        flow = gen.flow_from_directory(
            str(folder),
            target_size=(48, 48),
            color_mode="grayscale",
            batch_size=SEED_BATCH,
            class_mode="categorical",
            shuffle=True,
            classes=classes,
        )
        how = f"flow_from_directory({folder}) decoding PNGs per batch"
        if len(classes) != NUM_CLASSES:
            how += f" ({len(classes)} class folders)"
    else:
        y = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
        flow = gen.flow(images[..., None].astype(np.float32), y, batch_size=SEED_BATCH, shuffle=True)
        how = "flow(arrays)"
    return fit_steps(model, flow, steps, warmup, SEED_BATCH), how


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="timed (warm) steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="steps run first and not timed")
    p.add_argument("--rounds", type=int, default=2, help="alternations of (a) and (b)")
    p.add_argument("--batch", type=int, default=0, help="batch size of (a) and (b) (default: the config's)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--generated", type=int, default=4096, help="generated faces when --data is missing")
    p.add_argument("--only", default="a,b,c", help="subset of a,b,c to run")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("--steps and --rounds must be >= 1, --warmup >= 0")
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    from fercore.train import TrainConfig

    config = TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
    if args.batch:
        config.batch_size = args.batch
    images, labels, what, folder = load_images(Path(args.data), args.generated)
    import tensorflow as tf

    print(
        f"training throughput: {what}; {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.2f}, "
        f"TF {tf.__version__}; {args.steps} timed steps after {args.warmup} warm-up steps"
    )
    results: dict[str, tuple[float, float]] = {}
    t0 = time.perf_counter()
    rounds = bench_ours(config, images, labels, args.steps, args.warmup, only, args.rounds)
    for key, runs in rounds.items():
        results[key] = (float(np.median([r[0] for r in runs])), float(np.median([r[1] for r in runs])))
    aug = {k: v for k, v in config.augment.__dict__.items() if v}

    def each(key: str) -> str:
        return "" if len(rounds[key]) < 2 else "  rounds: " + ", ".join(f"{r[0]:.1f}" for r in rounds[key])

    if "a" in results:
        ips, ms = results["a"]
        print(
            f"  (a) our pipeline + {config.model} (batch {config.batch_size}, augment {aug}): "
            f"{ips:8.1f} images/s  ({ms:.0f} ms/step p50){each('a')}"
        )
    if "b" in results:
        ips, ms = results["b"]
        print(
            f"  (b) {config.model} on in-memory float batches (batch {config.batch_size}, no augmentation): "
            f"{ips:8.1f} images/s  ({ms:.0f} ms/step p50){each('b')}"
        )
    if "c" in only:
        results["c"], how = bench_seed(images, labels, folder, args.steps, args.warmup)
        ips, ms = results["c"]
        print(
            f"  (c) seed: ImageDataGenerator(horizontal_flip) {how} + coursera "
            f"(batch {SEED_BATCH}, Adam {SEED_LR:g}): {ips:8.1f} images/s  ({ms:.0f} ms/step p50)"
        )
    if "a" in results and "b" in results:
        ratio = results["a"][0] / results["b"][0]
        print(f"  a/b = {ratio:.3f}  (pipeline overhead; acceptance >= 0.9: {'ok' if ratio >= 0.9 else 'NOT MET'})")
    if "a" in results and "c" in results:
        print(f"  a/c = {results['a'][0] / results['c'][0]:.2f}  (our training vs the seed's, images/s)")
    print(f"  ({time.perf_counter() - t0:.0f} s in all; load avg now {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
