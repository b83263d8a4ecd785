"""python -m training.train — train a model into a run directory.

Config from a JSON file (--config) overridden by flags. Examples:
  python -m training.train --data ../shared/data/fer2013 --model coursera --epochs 1 --subset 2000
  python -m training.train --config training/configs/default.json
  python -m training.train --resume runs/run-20261123-120000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON config file (keys of fercore.train.TrainConfig)")
    p.add_argument("--data", help="FER2013 CSV, Kaggle folder layout or class-folder image set")
    p.add_argument("--model", help="architecture: coursera | fernet")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--schedule", choices=["onecycle", "cosine", "constant", "plateau"])
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    p.add_argument("--subset", type=int, help="train on N images (stratified)")
    p.add_argument("--seed", type=int)
    p.add_argument("--init-from", help="a .keras model to fine-tune")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"])
    p.add_argument("--logical-cpus", type=int, default=0,
                   help="split the CPU into N logical devices (to try --strategy mirrored)")
    p.add_argument("--run-dir", help="run directory (default: runs/<new id>)")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """Config file values, then flags on top."""
    cfg: dict = {}
    if args.config:
        cfg = json.loads(Path(args.config).read_text())
    flags = {
        "data": args.data, "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "optimizer": args.optimizer, "schedule": args.schedule,
        "label_smoothing": args.label_smoothing, "class_weights": args.class_weights,
        "subset": args.subset, "seed": args.seed, "init_from": args.init_from,
        "strategy": args.strategy,
    }
    cfg.update({k: v for k, v in flags.items() if v is not None})
    if args.no_augment:
        cfg["augment"] = {"flip": False, "rotation": 0.0, "shift": 0.0, "zoom": 0.0,
                          "brightness": 0.0, "contrast": 0.0, "erasing": 0.0, "mixup": 0.0}
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore import runs
    from fercore.data import DataError
    from fercore.train import TrainConfig, fit

    try:
        if args.resume:
            run_dir = Path(args.resume)
            stored = runs.read_config(run_dir)
            if not stored:
                raise ValueError(f"{run_dir}: not a run directory (no {runs.CONFIG})")
            stored.update({k: v for k, v in resolve_config(args).items() if k == "epochs"})
            config = TrainConfig.from_dict(stored)
        else:
            config = TrainConfig.from_dict(resolve_config(args))
            if not config.data:
                raise ValueError("no data: pass --data PATH or a --config with \"data\"")
            run_dir = Path(args.run_dir) if args.run_dir else runs.default_runs_dir() / runs.new_run_id()
        if args.logical_cpus > 1:
            import tensorflow as tf

            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
        print(f"run directory: {run_dir}", flush=True)
        status = fit(config, run_dir, resume=bool(args.resume), verbose=0 if args.quiet else 1)
    except (DataError, ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{status['state']}: best val accuracy {status.get('best_val_accuracy', float('nan')):.4f}")
    return 0 if status["state"] in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
