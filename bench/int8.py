"""Float vs int8 classifier, same run: top-1 on all of PublicTest and throughput on live-sized batches.

    python bench/int8.py [--float models/model.tflite] [--int8 models/model_int8.tflite]
                         [--data ../shared/data/fer2013] [--seconds 3] [--rounds 3]

Accuracy: every PublicTest face (3,589) through each model's ``EmotionClassifier``. Throughput:
``EmotionClassifier.predict_proba`` (preprocessing included, as the pipeline calls it) on batches of
6 faces (the six-face frame) and of 1 face, faces/s (wall clock, and per CPU-second). The two models
alternate in short rounds so a background load hits both alike; the median round is printed and the load average first.
Make the int8 model with ``python -m training.export --model models/model.keras --out OUT --data … --int8``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from fercore.data.locations import shared_data_dir  # noqa: E402
from fercore.paths import PROJECT_ROOT as ROOT  # noqa: E402

DATA = shared_data_dir() / "fer2013"


def faces_per_second(classifier, faces: np.ndarray, seconds: float) -> tuple[float, float]:
    """Faces classified per wall-clock second and per CPU second of this process (all threads; a
    steadier figure when other work shares the cores), by repeated ``predict_proba`` calls."""
    classifier.predict_proba(faces)  # warm-up (and the interpreter's resize to this batch)
    calls, t0, c0 = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - t0) < seconds:
        classifier.predict_proba(faces)
        calls += 1
    cpu = time.process_time() - c0
    return calls * len(faces) / elapsed, calls * len(faces) / max(cpu, 1e-9)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--float", dest="float_model", default=str(ROOT / "models" / "model.tflite"))
    p.add_argument("--int8", dest="int8_model", default=str(ROOT / "models" / "model_int8.tflite"))
    p.add_argument("--data", default=str(DATA), help="FER2013 with a PublicTest (test) split")
    p.add_argument("--seconds", type=float, default=3.0, help="length of one timing round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per model and batch size")
    args = p.parse_args(argv)

    from fercore.data.loader import load_dataset
    from fercore.inference.classify import EmotionClassifier

    test = load_dataset(args.data).split("test")
    models = {"float": EmotionClassifier(args.float_model), "int8": EmotionClassifier(args.int8_model)}
    print(
        f"load average {os.getloadavg()[0]:.2f} (2 cores); float {Path(args.float_model).name}, "
        f"int8 {Path(args.int8_model).name}"
    )
    acc = {}
    for name, clf in models.items():
        pred = np.concatenate(
            [clf.predict_proba(test.images[i : i + 256]).argmax(axis=1) for i in range(0, len(test), 256)]
        )
        acc[name] = float((pred == test.labels).mean())
        print(f"{name:>5}: PublicTest top-1 {acc[name] * 100:.2f} % (n={len(test)})")
    print(f"int8 − float: {(acc['int8'] - acc['float']) * 100:+.2f} points")
    for batch in (6, 1):
        faces = test.images[:batch]
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, clf in models.items():
                rates[name].append(faces_per_second(clf, faces, args.seconds))
        wall = {name: float(np.median([r[0] for r in rs])) for name, rs in rates.items()}
        cpu = {name: float(np.median([r[1] for r in rs])) for name, rs in rates.items()}
        print(
            f"batch {batch}: float {wall['float']:7.0f} faces/s  int8 {wall['int8']:7.0f} faces/s  "
            f"speed-up {wall['int8'] / wall['float']:.2f}x wall, {cpu['int8'] / cpu['float']:.2f}x per CPU-second  "
            f"(median of {args.rounds} rounds of {args.seconds:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
