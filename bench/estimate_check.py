"""How close the Train form's time estimate comes to a real run, on this machine, now.

    python bench/estimate_check.py --config training/configs/quick.json [--subset 5000] [--epochs 2]
    ONEDNN_MAX_CPU_ISA=AVX2 python bench/estimate_check.py ...   # what an AVX2-only laptop gets
    python bench/estimate_check.py --config training/configs/default.json --no-run  # the estimate only
    python bench/estimate_check.py --config training/configs/standard.json --epochs 2 --crop-epochs 1  # both sides

Probes the recipe's model as the form does (``fercore.train.preview.probe_seconds_per_step`` for a
training and a validation step at the config's precision), turns the probe into the form's estimate
(``run_estimate``: each input side's epochs, crops first, at that side's probed step), then trains the
same config for real through ``fercore.train.fit`` and prints the estimate against the time the run's
epochs took (``metrics.csv``), the whole run's wall and CPU time, the precision and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--subset", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--crop-epochs", type=int, default=None, help="the check run's crop_epochs (default: the recipe's)")
    p.add_argument("--no-run", action="store_true", help="print the estimates only, train nothing")
    args = p.parse_args(argv)

    from fercore import runs
    from fercore.train import preview
    from fercore.train.config import TrainConfig
    from fercore.train.fit import fit
    from fercore.train.precision import resolve_precision

    recipe = json.loads(Path(args.config).read_text())
    whole = TrainConfig.from_dict(recipe)
    precision = resolve_precision(whole.precision)
    # one probe per input side serves both estimates: the check run differs only in its faces and epochs
    steps = preview.probe_sides(whole, {0, whole.augment.crop})  # --crop-epochs may add whole faces
    val_step = preview.probe_seconds_per_step(
        whole.model, whole.model_params, preview.EVAL_BATCH, whole.precision, training=False
    )
    w_train, w_val = preview.training_images(whole)
    w_estimate = preview.run_estimate(whole, steps, w_train, w_val, val_step)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)")
    print(
        f"{Path(args.config).name} as written ({w_train} training + {w_val} validation faces, {whole.epochs} "
        f"epochs): form estimate {w_estimate / 60:.1f} min, precision {precision}, ONEDNN_MAX_CPU_ISA={isa}"
    )
    if args.no_run:
        return 0
    check = {"subset": args.subset, "epochs": args.epochs}
    if args.crop_epochs is not None:
        check["crop_epochs"] = args.crop_epochs
    config = TrainConfig.from_dict({**recipe, **check})
    n_train, n_val = preview.training_images(config)
    estimate = preview.run_estimate(config, steps, n_train, n_val, val_step)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        run_dir = Path(tmp) / "runs" / "check"
        status = fit(config, run_dir, verbose=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        metrics = runs.read_metrics(run_dir)
        epochs = metrics[metrics["kind"] == "epoch"]["time"].tolist()
        trained = epochs[-1] if epochs else float("nan")  # seconds from the run's start to its last epoch's end
    print(
        f"{Path(args.config).name}: {n_train} training + {n_val} validation faces, {config.epochs} epochs, "
        f"precision {config.precision} -> {precision}, ONEDNN_MAX_CPU_ISA={isa}"
    )
    print(
        f"  form estimate {estimate:.0f} s; epochs measured {trained:.0f} s "
        f"(estimate/measured {estimate / trained:.2f}); "
        f"whole run {wall:.0f} s wall, {cpu:.0f} s CPU (data, start-up and export included); "
        f"state {status.get('state')}; load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
