"""Time to accuracy of a training recipe: per epoch, the wall and CPU seconds spent so far, the
training throughput and PublicTest top-1 with and without test-time flip.

    python bench/time_to_accuracy.py --config training/configs/quick.json [--run-dir runs/tta-quick]
                                     [--resume] [--epochs N] [--subset N]

Trains through ``fercore.train.fit`` (the same code as ``python -m training.train``), with one
extra Keras callback that, at the end of each epoch, scores the validation split (PublicTest for
the FER2013 folder layout) twice — as is and averaged with its mirror image — and writes a row
to ``<run-dir>/time_to_accuracy.csv``. The probe's own scoring is *not* counted in the times; the
run's per-epoch validation is (a user pays for it). ``wall_s``/``cpu_s`` start at process start,
so the first row includes importing TensorFlow and loading the data. ``--resume`` continues a
stopped run and its table (the times of the killed attempt up to its last checkpoint are kept).
Prints the table and the machine's load average, CPU flags that matter and the precision used.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

START_WALL, START_CPU = time.perf_counter(), time.process_time()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ["epoch", "wall_s", "cpu_s", "images_per_s", "val_top1", "val_top1_flip", "load_avg", "precision"]
TABLE = "time_to_accuracy.csv"


def flip_scores(model: Any, images: Any, labels: Any) -> tuple[float, float]:
    """Top-1 of ``model`` on ``images`` (n, 48, 48) uint8, alone and averaged with the mirror image."""
    import numpy as np

    x = images[..., None].astype("float32")
    p = model.predict(x, batch_size=512, verbose=0)
    pf = model.predict(x[:, :, ::-1], batch_size=512, verbose=0)
    return float(np.mean(p.argmax(1) == labels)), float(np.mean((p + pf).argmax(1) == labels))


def probe_callback(table: Path, val: tuple[Any, Any], n_train: int, precision: str, done: dict[str, float]) -> Any:
    """The Keras callback that times each epoch and scores it (its own time excluded)."""
    import keras

    class Probe(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.excluded_wall = done.get("excluded_wall", 0.0)
            self.excluded_cpu = done.get("excluded_cpu", 0.0)
            self.offset_wall, self.offset_cpu = done.get("wall_s", 0.0), done.get("cpu_s", 0.0)
            self.epoch_start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            took = time.perf_counter() - self.epoch_start
            wall = self.offset_wall + time.perf_counter() - START_WALL - self.excluded_wall
            cpu = self.offset_cpu + time.process_time() - START_CPU - self.excluded_cpu
            t0, c0 = time.perf_counter(), time.process_time()
            top1, top1_flip = flip_scores(self.model, *val)
            self.excluded_wall += time.perf_counter() - t0
            self.excluded_cpu += time.process_time() - c0
            row = {
                "epoch": epoch + 1,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "images_per_s": round(n_train / took, 1),
                "val_top1": round(top1, 4),
                "val_top1_flip": round(top1_flip, 4),
                "load_avg": round(os.getloadavg()[0], 2),
                "precision": precision,
            }
            new = not table.exists()
            with table.open("a", newline="") as fh:
                w = csv.DictWriter(fh, COLUMNS)
                if new:
                    w.writeheader()
                w.writerow(row)
            print("time-to-accuracy", json.dumps(row), flush=True)

    return Probe()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a training/configs/*.json recipe")
    p.add_argument("--run-dir", default="", help="default: runs/tta-<config name>")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    p.add_argument("--subset", type=int, default=0, help="train on N faces (a quick check of the bench itself)")
    args = p.parse_args(argv)

    from fercore.train.config import TrainConfig
    from fercore.train.dataset import prepare_data
    from fercore.train.fit import fit
    from fercore.train.precision import cpu_flags, resolve_precision

    raw = json.loads(Path(args.config).read_text())
    if args.epochs:
        raw["epochs"] = args.epochs
    if args.subset:
        raw["subset"] = args.subset
    config = TrainConfig.from_dict(raw)
    run_dir = Path(args.run_dir or ROOT / "runs" / f"tta-{Path(args.config).stem}")
    table = run_dir / TABLE
    done: dict[str, float] = {}
    if args.resume and table.exists():
        rows = list(csv.DictReader(table.open()))
        if rows:
            done = {"wall_s": float(rows[-1]["wall_s"]), "cpu_s": float(rows[-1]["cpu_s"])}
    elif table.exists():
        table.unlink()
    precision = resolve_precision(config.precision)
    interesting = sorted(cpu_flags() & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    print(
        f"recipe {args.config}: precision {config.precision} -> {precision}; CPU flags {', '.join(interesting)}; "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}; load average {os.getloadavg()[0]:.2f}"
    )
    tx, _, _, vx, vy = prepare_data(config)
    n_train = len(tx)
    del tx
    probe = probe_callback(table, (vx, vy), n_train, precision, done)
    status = fit(config, run_dir, resume=args.resume, verbose=0, callbacks=[probe])
    print(f"state {status.get('state')}; table {table}")
    for row in csv.DictReader(table.open()):
        print("  ".join(f"{k}={row[k]}" for k in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
