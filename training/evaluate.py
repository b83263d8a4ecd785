"""python -m training.evaluate — accuracy, per-class metrics and confusion matrix of a model.

  python -m training.evaluate --data ../shared/data/fer2013 --split test --json
  python -m training.evaluate --data fer2013.csv --split PublicTest --model runs/X/export/model.keras --tta
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 CSV, Kaggle folder layout or class-folder set")
    p.add_argument("--model", help="model file (.tflite, .keras or model.json); default: models/")
    p.add_argument("--split", default=None,
                   help="split to evaluate (test/PublicTest, train, private/PrivateTest, all); "
                        "default: test when present, else all")
    p.add_argument("--tta", action="store_true", help="average over 10 flipped/cropped views")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore.data import DataError, load_dataset, normalize_split
    from fercore.evaluate import evaluate

    try:
        ds = load_dataset(args.data)
        split = normalize_split(args.split) if args.split else (
            "test" if "test" in ds.split_names else "all")
        result = evaluate(args.model, ds.split(split), tta=args.tta).to_dict()
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["split"] = split
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']}  split {split}  n={result['n']}  tta={args.tta}")
    print(f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}")
    print(f"{'class':>10} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>6}")
    for name, m in result["per_class"].items():
        print(f"{name:>10} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['support']:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
