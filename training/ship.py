"""python -m training.ship — put a finished run's model into models/ with its figures, or
build the accurate tier (an ensemble) from several trained members.

  python -m training.ship --run runs/<id> --data ../shared/data/fer2013 [--baseline runs/<seed-run>]
  python -m training.ship --tier accurate --members runs/a/checkpoints/best.keras runs/b/… --data …

The fast tier ships the checkpoint the run itself exported (``fercore.runs.exported_checkpoint``):
the averaged model of an SWA run, else its config's ``export_checkpoint``, ``last`` unless the run
asked for ``best`` (the best epoch on its validation split, which is
PublicTest by default: shipping it would report a figure selected on the test set). Exports every
format (checked against the source on real faces), evaluates on PublicTest with and without TTA,
and writes models/metrics.json and models/confusion.png, the figures that models/MODEL_CARD.md
quotes (bench/shipped_figures.py re-measures them on all of PublicTest; after shipping, refresh the
sample tests/test_shipped_model.py checks with ``python bench/shipped_figures.py --sample-out
tests/fixtures/shipped_sample.json``).

A tier (``--tier accurate``) goes to models/<tier>/: each member as a .tflite twin with float16
weights (half the size; checked against its Keras source, max difference < 1e-2; ``--float32``
keeps full precision, < 1e-4), and manifest.json with the tier's TTA setting and every
member's and the ensemble's PublicTest figures (fercore.models.ensemble reads it). Fit the tier's
temperature afterwards with ``python -m training.evaluate --model accurate --fit-temperature …``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fercore.models.ensemble import TIERS
from fercore.paths import MODELS_DIR as MODELS
from fercore.paths import shown


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
            cv2.putText(
                img,
                f"{norm[i, j] * 100:.0f}%",
                (x0 + 12, y0 + 30),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                color,
                1,
                cv2.LINE_AA,
            )
            cv2.putText(
                img, f"{int(m[i, j])}", (x0 + 12, y0 + 52), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA
            )
        cv2.putText(img, labels[i], (8, top + i * cell + 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(
            img,
            labels[i][:7],
            (left + i * cell + 4, size[0] - 35),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(
        img,
        "true class (rows) vs predicted (columns), PublicTest",
        (left, 25),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
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
    p = argparse.ArgumentParser(
        prog="python -m training.ship", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tier",
        choices=TIERS,
        default="fast",
        help="fast: one run's model into models/; accurate: an ensemble into models/accurate/",
    )
    p.add_argument("--run", help="finished run directory (fast tier)")
    p.add_argument(
        "--members", nargs="+", help="member model files, .keras, model.json or .tflite (copied as is) (accurate tier)"
    )
    p.add_argument("--no-tta", action="store_true", help="accurate tier without test-time augmentation")
    p.add_argument("--float32", action="store_true", help="tier members with float32 weights (twice the size)")
    p.add_argument("--data", required=True, help="FER2013 with a test (PublicTest) split")
    p.add_argument("--baseline", help="run directory of the seed recipe, for comparison")
    p.add_argument("--out", help="output folder (default: models/, or models/<tier>/ for a tier)")
    args = p.parse_args(argv)
    if args.tier == "fast" and not args.run:
        p.error("the fast tier needs --run")
    if args.tier != "fast" and not args.members:
        p.error(f"the {args.tier} tier needs --members")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.tier != "fast":
        from fercore.data.loader import DataError

        try:
            return ship_tier(
                args.tier,
                args.members,
                args.data,
                Path(args.out or MODELS / args.tier),
                tta=not args.no_tta,
                float16=not args.float32,
            )
        except (DataError, FileNotFoundError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    args.out = args.out or str(MODELS)
    from fercore import runs
    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate
    from fercore.models.architectures import count_flops, load_keras_model, read_model_config
    from fercore.models.export import export_all

    run = Path(args.run)
    try:
        source, which = runs.exported_checkpoint(run)
        base_source = runs.exported_checkpoint(Path(args.baseline))[0] if args.baseline else None
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    test = load_dataset(args.data).split("test")
    exported = export_all(source, out, check=True, check_inputs=test.images[:512])
    bad = {k: v for k, v in exported["max_abs_diff"].items() if v >= 1e-4}
    if bad:
        print(f"error: exports differ from the source model: {bad}", file=sys.stderr)
        return 1
    (out / "config.json").unlink(missing_ok=True)
    for stale in ("calibration.json", "model_int8.tflite"):  # both belong to the previous model
        if (out / stale).exists():
            (out / stale).unlink()
            print(
                f"note: removed {stale} of the previous model; refit/re-export it (see bench/README.md)",
                file=sys.stderr,
            )
    plain = evaluate(out / "model.tflite", test).to_dict()
    tta = evaluate(out / "model.tflite", test, tta=True).to_dict()
    per_format = {
        name: evaluate(out / name, test).to_dict()["accuracy"] for name in ("model.tflite", "model.keras", "model.json")
    }
    for copy in ("model.json", "model.weights.h5"):  # checked above; not loaded by the product: not shipped
        (out / copy).unlink(missing_ok=True)  # (python -m training.export and the Evaluate page write them)
    model = load_keras_model(out / "model.keras")
    config = read_model_config(source) or {}
    status = runs.read_status(run)
    metrics = runs.read_metrics(run)
    train_minutes = training_minutes(metrics["time"].tolist()) if len(metrics) else None
    size_mb = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith("model.")) / 1e6
    result = {
        **{k: plain[k] for k in ("accuracy", "n", "per_class", "macro_f1", "confusion", "labels")},
        "accuracy_tta": tta["accuracy"],
        "ece_uncalibrated": plain["ece_uncalibrated"],
        "accuracy_by_format": per_format,
        "split": "PublicTest",
        "architecture": config.get("model", model.name),
        "model_params": config.get("model_params", {}),
        "params": int(model.count_params()),
        "flops": count_flops(model),
        "size_mb": round(size_mb, 2),
        "epochs": config.get("epochs"),
        "checkpoint": which,
        "epoch": config.get("epoch"),
        "train_minutes": round(train_minutes, 1) if train_minutes else None,
        "run_status": status.get("state"),
        "max_abs_diff": exported["max_abs_diff"],
    }
    if base_source is not None:
        base = evaluate(base_source, test).to_dict()
        result["baseline"] = {
            "recipe": "seed (coursera CNN, Adam 5e-4, flips, 15 epochs, reduce-on-plateau)",
            "accuracy": base["accuracy"],
            "macro_f1": base["macro_f1"],
        }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    confusion_png(plain["confusion"], plain["labels"], out / "confusion.png")
    print(
        json.dumps(
            {k: result[k] for k in ("accuracy", "accuracy_tta", "accuracy_by_format", "params", "flops", "size_mb")},
            indent=2,
        )
    )
    return 0


def _provenance(path: Path) -> str:
    """Where a member file came from: for a member of an existing tier, the source its manifest
    records (re-shipping a tier keeps its members' history), else the path itself."""
    from fercore.models.ensemble import MANIFEST, read_manifest

    if (path.parent / MANIFEST).exists():
        for member in read_manifest(path.parent).get("members", []):
            if member.get("file") == path.name and member.get("source"):
                return str(member["source"])
    return shown(path, tail=2)


def _tflite_weights(file: Path) -> str:
    """ "float16" when a LiteRT file stores float16 tensors (weights), else "float32"."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(file)).get_tensor_details()
    return "float16" if any(d["dtype"] == np.float16 for d in details) else "float32"


def ship_tier(name: str, members: list[str], data: str, out: Path, tta: bool = True, float16: bool = True) -> int:
    """Write ``out``/member_<i>.tflite (float16 weights unless ``float16`` is False; a member that is
    already a .tflite file is copied as it is) and manifest.json with each member's and the
    ensemble's PublicTest figures."""
    import numpy as np

    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import EvalResult, evaluate
    from fercore.inference.classify import load_backend
    from fercore.inference.preprocess import to_model_input
    from fercore.models.architectures import load_keras_model, to_float32
    from fercore.models.ensemble import combine, write_manifest
    from fercore.models.export import export_tflite

    test = load_dataset(data).split("test")
    # read .tflite members (and where they came from) before the folder is cleaned: they may be the
    # current members of this very tier
    copied = {s: (Path(s).read_bytes(), _provenance(Path(s))) for s in members if Path(s).suffix == ".tflite"}
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("member_*.tflite"), out / "calibration.json"]:
        stale.unlink(missing_ok=True)  # a re-shipped tier starts clean (its old temperature too)
    entries, probas = [], []
    x = to_model_input(test.images[:256])
    for i, source in enumerate(members, start=1):
        file = out / f"member_{i}.tflite"
        if source in copied:  # already a LiteRT file: shipped as it is
            file.write_bytes(copied[source][0])
            origin, params, diff, weights = copied[source][1], None, None, _tflite_weights(file)
        else:
            model = to_float32(load_keras_model(source))
            export_tflite(model, file, float16=float16)
            diff = float(np.abs(load_backend(file).predict(x) - np.asarray(model(x, training=False))).max())
            if diff >= (1e-2 if float16 else 1e-4):
                raise ValueError(f"{source}: its .tflite twin differs from the Keras model by {diff:.2g}")
            origin, params = shown(source, tail=2), int(model.count_params())
            weights = "float16" if float16 else "float32"
        plain_result, tta_result = evaluate(file, test), evaluate(file, test, tta=True)
        probas.append(tta_result.proba if tta else plain_result.proba)
        plain, with_tta = plain_result.to_dict(), tta_result.to_dict()
        entries.append(
            {
                "file": file.name,
                "source": origin,
                "accuracy": plain["accuracy"],
                "accuracy_tta": with_tta["accuracy"],
                "macro_f1": plain["macro_f1"],
                "ece": plain["ece_uncalibrated"],
                "params": params,
                "max_abs_diff": diff,
                "weights": weights,
            }
        )
    # the tier's output is the mean of its members' (view-averaged) probabilities: score the mean of
    # the ones just computed rather than running every member over every view again
    mean = combine(probas)
    result = EvalResult(y_true=test.labels.astype(np.int64), proba=mean, model=name, tta=tta).to_dict()
    metrics = {
        "split": "PublicTest",
        "n": result["n"],
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "ece": result["ece_uncalibrated"],
        "per_class": result["per_class"],
        "confusion": result["confusion"],
    }
    write_manifest(out, entries, tta=tta, name=name, metrics=metrics)
    print(
        json.dumps(
            {
                "tier": name,
                "tta": tta,
                "accuracy": result["accuracy"],
                "members": [{k: e[k] for k in ("file", "source", "accuracy", "accuracy_tta")} for e in entries],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
