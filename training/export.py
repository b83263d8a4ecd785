"""python -m training.export — write model.json + weights, .keras and .tflite, checked against the source.

  python -m training.export --model runs/<id>/checkpoints/best.keras --out models/
  python -m training.export --model models/model.keras --out models/ --data ../shared/data/fer2013 --int8

``--int8`` also writes model_int8.tflite (int8 weights and activations, float32 input/output),
calibrated on 500 stratified training faces of --data, and reports its agreement with the float model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

INT8_CALIBRATION_FACES = 500


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="a .keras file or a model.json (weights beside it)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", help="real faces for the check (FER2013 CSV or folder); random faces if absent")
    p.add_argument("--no-check", action="store_true", help="skip comparing the formats' outputs")
    p.add_argument("--int8", action="store_true", help="also write model_int8.tflite (needs --data to calibrate)")
    args = p.parse_args(argv)
    if args.int8 and not args.data:
        p.error("--int8 needs --data: the int8 model is calibrated on training faces")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore.data.loader import DataError, load_dataset
    from fercore.models.export import export_all, representative_sample

    try:
        faces = int8_faces = None
        if args.data:
            ds = load_dataset(args.data)
            check = ds.split("test") if "test" in ds.split_names else ds
            faces = check.images[:: max(1, len(check) // 256)][:256]
            if args.int8:
                train = ds.split("train") if "train" in ds.split_names else ds
                int8_faces = representative_sample(train.images, train.labels, INT8_CALIBRATION_FACES)
        result = export_all(
            Path(args.model), Path(args.out), check=not args.no_check, check_inputs=faces, int8_faces=int8_faces
        )
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
