"""python -m training.evaluate — accuracy, per-class metrics, confusion matrix and calibration (ECE).

  python -m training.evaluate --data ../shared/data/fer2013 --split test --json
  python -m training.evaluate --data fer2013.csv --split PublicTest --model runs/X/export/model.keras --tta
  python -m training.evaluate --data ../shared/data/fer2013 --model accurate          # a tier: fast|accurate
  python -m training.evaluate --data ../shared/data/fer2013 --labels ferplus --json  # FER+ majority labels

Cache a teacher for distillation (a run's "teacher" option reads the file; keep it with the runs):

  python -m training.evaluate --data ../shared/data/fer2013 --split train --model accurate \
      --proba-out runs/teacher_accurate.csv

Fit the temperature that makes the probabilities honest (written to calibration.json beside the
model, which every loader applies). Fit on faces you do not report on, e.g. one half of a split:

  python -m training.evaluate --data ../shared/data/fer2013 --split test --fold 1/2 --fit-temperature
  python -m training.evaluate --data ../shared/data/fer2013 --split test --fold 2/2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _fold(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 1/2, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"fold K/N needs 1 ≤ K ≤ N, got {text!r}")
    return k, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="FER2013 CSV, Kaggle folder layout or class-folder set")
    p.add_argument(
        "--model",
        help="tier (fast, accurate), model file (.tflite, .keras, model.json) or tier "
        "folder; default: the shipped fast model",
    )
    p.add_argument(
        "--split",
        default=None,
        help="split to evaluate (test/PublicTest, train, private/PrivateTest, all); "
        "default: test when present, else all",
    )
    p.add_argument("--tta", action="store_true", help="average over 10 flipped/cropped views")
    p.add_argument(
        "--labels",
        choices=["fer2013", "ferplus"],
        default="fer2013",
        help="score against the FER2013 labels or the FER+ majority vote",
    )
    p.add_argument("--ferplus", help="FER+ vote file (default: ferplus_votes.csv in or beside --data)")
    p.add_argument("--fold", type=_fold, help="only fold K of N of the split (stratified, e.g. 1/2)")
    p.add_argument("--limit", type=int, help="at most this many faces (stratified sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of --fold/--limit sampling")
    p.add_argument(
        "--fit-temperature",
        action="store_true",
        help="fit the temperature on these faces and write calibration.json beside the model",
    )
    p.add_argument(
        "--proba-out",
        help="also write the probabilities (file,row,<emotions> CSV), e.g. a teacher for distillation",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore.data.dataset import stratified_subset
    from fercore.data.ferplus import require_votes
    from fercore.data.loader import DataError, load_dataset, normalize_split
    from fercore.evaluation.evaluate import (
        evaluate,
        ferplus_relabel,
        fit_and_save_temperature,
    )
    from fercore.models.ensemble import resolve_tier

    try:
        ds = load_dataset(args.data)
        split = normalize_split(args.split) if args.split else ("test" if "test" in ds.split_names else "all")
        faces = ds.split(split)
        excluded: dict[str, int] = {}
        if args.labels == "ferplus":
            votes = Path(args.ferplus) if args.ferplus else require_votes(args.data)
            faces, excluded = ferplus_relabel(faces, votes)
        if args.fold or args.limit:
            faces = stratified_subset(faces, limit=args.limit, fold=args.fold, seed=args.seed)
        result = evaluate(args.model, faces, tta=args.tta, model_name=args.model)
        if args.proba_out:
            from fercore.data.audit import save_proba

            save_proba(args.proba_out, faces, result.proba)
        model_file = resolve_tier(args.model)
        fitted = None
        if args.fit_temperature:
            sample = " ".join(
                s
                for s in (
                    f"fold {args.fold[0]}/{args.fold[1]}" if args.fold else "",
                    f"limit {args.limit}" if args.limit else "",
                )
                if s
            )
            fitted_on = (
                f"{Path(args.data).name} split {split}{' ' + sample if sample else ''}, "
                f"{args.labels} labels, seed {args.seed}"
            )
            if split == "test" and not args.fold:
                print(
                    "note: fitting on the whole test split; report ECE on other faces (--fold 1/2 to fit, "
                    "2/2 to report)",
                    file=sys.stderr,
                )
            fitted = fit_and_save_temperature(result, model_file, fitted_on)
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = {**result.to_dict(), **excluded, "split": split, "label_source": args.labels}
    if fitted is not None:
        fitted["file"] = Path(fitted["file"]).name
        out["fitted"] = fitted
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"model {out['model']}  split {split}  n={out['n']}  tta={out['tta']}  labels={args.labels}")
    if excluded:
        print(
            f"left out (no clear FER+ majority): {excluded['excluded_no_majority']} "
            f"(ties {excluded['excluded_tie']}, no votes {excluded['excluded_no_votes']})"
        )
    print(
        f"accuracy {out['accuracy']:.4f}  macro-F1 {out['macro_f1']:.4f}  ECE {out['ece']:.4f} "
        f"(T={out['temperature']:.3f}; uncalibrated {out['ece_uncalibrated']:.4f})"
    )
    print(f"{'class':>10} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>6}")
    for name, m in out["per_class"].items():
        print(f"{name:>10} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['support']:6d}")
    if fitted is not None:
        print(
            f"temperature {fitted['temperature']:.4f} fitted on {fitted['fitted_on']} (n={fitted['n']}): "
            f"ECE {fitted['ece_before']:.4f} → {fitted['ece_after']:.4f}; wrote {model_file.parent / fitted['file']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
