"""python -m training.train — train a model into a run directory.

Config from a preset (--preset, a recipe of training/configs/presets.json) or a JSON file (--config),
overridden by flags (one per TrainConfig setting). Examples:
  python -m training.train --preset quick --data ../shared/data/fer2013
  python -m training.train --data ../shared/data/fer2013 --model coursera --epochs 1 --subset 2000
  python -m training.train --config training/configs/default.json
  python -m training.train --resume runs/run-20261123-120000-3fa2c1

One training at a time per runs folder: while another one runs, this exits with status 2. A config
out of its declared bounds is a one-line error (exit 2) before anything is written.

This is the training entry point: ``python -m training.train`` calls :func:`main`, and the Train page's
launcher (:mod:`fercore.train.launch`) starts this module with ``--launched`` on the run it prepared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fercore.train.config import Augment, TrainConfig, options
from fercore.train.presets import load_preset, preset_names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line ``argv``: one flag per ``TrainConfig`` option, plus the run-directory flags."""
    p = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument("--config", help="JSON config file (keys of fercore.train.TrainConfig)")
    base.add_argument(
        "--preset",
        choices=preset_names(),
        help="a named recipe (training/configs/presets.json) as the base config; --data replaces its "
        "dataset (and its FER+ votes follow the new data)",
    )
    for opt in options(TrainConfig).values():  # every scalar setting, its choices and help from one place
        flag = "--" + opt.name.replace("_", "-")
        if opt.type is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=opt.help)
        else:
            p.add_argument(
                flag, type=opt.type, choices=opt.choices or None, help=f"{opt.help} (default {opt.default!r})"
            )
    p.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    p.add_argument(
        "--logical-cpus", type=int, default=0, help="split the CPU into N logical devices (to try --strategy mirrored)"
    )
    p.add_argument("--run-dir", help="run directory (default: <runs folder>/<new id>)")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run directory (--epochs may extend it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--launched", action="store_true", help=argparse.SUPPRESS)  # --run-dir was begun by a launcher
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Config file values, then flags on top."""
    cfg: dict[str, Any] = {}
    if args.preset:
        cfg = load_preset(args.preset).config(data=args.data).to_dict()
    elif args.config:
        cfg = json.loads(Path(args.config).read_text())
        if not isinstance(cfg, dict):
            raise ValueError(f"{args.config}: a config is a JSON object")
    cfg.update({name: getattr(args, name) for name in options(TrainConfig) if getattr(args, name) is not None})
    if args.no_augment:
        cfg["augment"] = Augment.off()
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Train into a run directory per ``argv``; exit code 0, 1 (training failed), 2 (bad input) or 130."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore import runs
    from fercore.data.loader import DataError
    from fercore.train.fit import fit

    run_dir: Path | None = None
    try:
        if args.resume:
            run_dir = Path(args.resume)
            stored, problem = runs.read_object(run_dir / runs.CONFIG)
            if problem:
                raise ValueError(f"{run_dir}: not a resumable run ({runs.CONFIG}: {problem})")
            if args.epochs is not None:
                stored["epochs"] = args.epochs
            config = TrainConfig.from_dict(stored)
        elif args.launched:  # the launcher wrote the run's config.json and first status (begin_run)
            run_dir = Path(args.run_dir)
            stored, problem = runs.read_object(run_dir / runs.CONFIG)
            if problem:
                raise ValueError(f"{run_dir}: no launched run here ({runs.CONFIG}: {problem})")
            config = TrainConfig.from_dict(stored)
        else:
            config = TrainConfig.from_dict(resolve_config(args))
            if not config.data:
                raise ValueError('no data: pass --data PATH or a --config with "data"')
            run_dir = Path(args.run_dir) if args.run_dir else runs.default_runs_dir() / runs.new_run_id()
        if args.logical_cpus > 1:
            import tensorflow as tf

            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
            )
        print(f"run directory: {run_dir}", flush=True)
        status = fit(config, run_dir, resume=bool(args.resume), verbose=0 if args.quiet else 1, begun=args.launched)
    except (DataError, ValueError, FileNotFoundError, runs.TrainingBusyError) as exc:
        if run_dir is not None and runs.read_status(run_dir).get("pid") == os.getpid():
            # started by a launcher, which named us the run's owner: say why, not just "killed?"
            runs.update_status(run_dir, state="failed", error=str(exc), finished=time.time())
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    best = status.get("best_val_accuracy")
    print(f"{status['state']}: best val accuracy {best if best is not None else float('nan'):.4f}")
    return 0 if status["state"] in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
