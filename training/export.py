"""python -m training.export — write model.json + weights, .keras and .tflite, checked against the source.

  python -m training.export --model runs/<id>/checkpoints/best.keras --out models/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__)
    p.add_argument("--model", required=True, help="a .keras file or a model.json (weights beside it)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", help="real faces for the check (FER2013 CSV or folder); random faces if absent")
    p.add_argument("--no-check", action="store_true", help="skip comparing the formats' outputs")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore.data import DataError, load_dataset
    from fercore.export import export_all

    try:
        faces = None
        if args.data:
            ds = load_dataset(args.data)
            faces = ds.images[:: max(1, len(ds) // 256)][:256]
        result = export_all(Path(args.model), Path(args.out), check=not args.no_check,
                            check_inputs=faces)
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    diffs = result.get("max_abs_diff", {})
    bad = {k: v for k, v in diffs.items() if v >= 1e-4}
    if bad:
        print(f"error: exported formats differ from the source model: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
