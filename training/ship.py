"""python -m training.ship — put a finished run's best model into models/ with its figures.

  python -m training.ship --run runs/<id> --data ../shared/data/fer2013 [--baseline runs/<seed-run>]

Exports every format (checked against the source on real faces), evaluates on PublicTest with and
without TTA, and writes models/metrics.json and models/confusion.png, the figures that
models/MODEL_CARD.md quotes (tests/test_shipped_model.py checks that they match the shipped files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "models"


def confusion_png(confusion: list[list[int]], labels: list[str], file: Path) -> None:
    """Row-normalised confusion matrix as a PNG (true class = rows), drawn with OpenCV."""
    import cv2
    import numpy as np

    m = np.array(confusion, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    cell, left, top = 70, 110, 40
    size = (top + cell * len(labels) + 60, left + cell * len(labels) + 10)
    img = np.full((*size, 3), 255, np.uint8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            shade = int(255 - 200 * norm[i, j])
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(img, (x0, y0), (x0 + cell - 2, y0 + cell - 2), (255, shade, shade), -1)
            color = (255, 255, 255) if norm[i, j] > 0.5 else (0, 0, 0)
            cv2.putText(img, f"{norm[i, j] * 100:.0f}%", (x0 + 12, y0 + 30),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
            cv2.putText(img, f"{int(m[i, j])}", (x0 + 12, y0 + 52),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
        cv2.putText(img, labels[i], (8, top + i * cell + 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, labels[i][:7], (left + i * cell + 4, size[0] - 35),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "true class (rows) vs predicted (columns), PublicTest", (left, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(file), img)


def training_minutes(times: list[float]) -> float:
    """Wall-clock training minutes from metrics.csv's ``time`` column, whose clock restarts at
    each resume: the sum of every segment's last time."""
    total, last = 0.0, 0.0
    for t in times:
        if t < last:  # a resumed segment starts again from 0
            total += last
        last = t
    return (total + last) / 60


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="finished run directory")
    p.add_argument("--data", required=True, help="FER2013 with a test (PublicTest) split")
    p.add_argument("--baseline", help="run directory of the seed recipe, for comparison")
    p.add_argument("--out", default=str(MODELS))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fercore import runs
    from fercore.data import load_dataset
    from fercore.evaluate import evaluate
    from fercore.export import export_all
    from fercore.model import count_flops, load_keras_model, read_model_config

    run = Path(args.run)
    best = run / runs.BEST
    out = Path(args.out)
    test = load_dataset(args.data).split("test")
    exported = export_all(best, out, check=True, check_inputs=test.images[:512])
    bad = {k: v for k, v in exported["max_abs_diff"].items() if v >= 1e-4}
    if bad:
        print(f"error: exports differ from the source model: {bad}", file=sys.stderr)
        return 1
    (out / "config.json").unlink(missing_ok=True)
    plain = evaluate(out / "model.tflite", test).to_dict()
    tta = evaluate(out / "model.tflite", test, tta=True).to_dict()
    per_format = {name: evaluate(out / name, test).to_dict()["accuracy"]
                  for name in ("model.tflite", "model.keras", "model.json")}
    model = load_keras_model(out / "model.keras")
    config = read_model_config(best) or {}
    status = runs.read_status(run)
    metrics = runs.read_metrics(run)
    train_minutes = training_minutes(metrics["time"].tolist()) if len(metrics) else None
    size_mb = sum(f.stat().st_size for f in out.iterdir()
                  if f.name.startswith("model.")) / 1e6
    result = {
        **{k: plain[k] for k in ("accuracy", "n", "per_class", "macro_f1", "confusion", "labels")},
        "accuracy_tta": tta["accuracy"],
        "accuracy_by_format": per_format,
        "split": "PublicTest",
        "architecture": config.get("model", model.name),
        "model_params": config.get("model_params", {}),
        "params": int(model.count_params()),
        "flops": count_flops(model),
        "size_mb": round(size_mb, 2),
        "epochs": config.get("epochs"),
        "best_epoch": config.get("epoch"),
        "train_minutes": round(train_minutes, 1) if train_minutes else None,
        "run_status": status.get("state"),
        "max_abs_diff": exported["max_abs_diff"],
    }
    if args.baseline:
        base_best = Path(args.baseline) / runs.BEST
        base = evaluate(base_best, test).to_dict()
        result["baseline"] = {"recipe": "seed (coursera CNN, Adam 5e-4, flips, 15 epochs, "
                                        "reduce-on-plateau)", "accuracy": base["accuracy"],
                              "macro_f1": base["macro_f1"]}
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    confusion_png(plain["confusion"], plain["labels"], out / "confusion.png")
    print(json.dumps({k: result[k] for k in ("accuracy", "accuracy_tta", "accuracy_by_format",
                                             "params", "flops", "size_mb")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
