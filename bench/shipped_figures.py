"""The shipped models' figures on all of PublicTest, checked against what models/ records.

    python bench/shipped_figures.py [--data ../shared/data/fer2013] [--sample-out FILE]

Scores every PublicTest face (3,589) with models/model.tflite, model.keras (model.json is not shipped) and with the
accurate tier (its ten-view TTA), prints each top-1 and the CPU and wall seconds it took, and says
whether they match models/metrics.json and models/accurate/manifest.json. The test suite checks the
same files on a fixed stratified sample of faces instead (tests/test_shipped_model.py); after
shipping a model, refresh that sample's reference with
``--sample-out tests/fixtures/shipped_sample.json`` (the only thing this bench can write).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from fercore.data.locations import shared_data_dir  # noqa: E402
from fercore.paths import MODELS_DIR  # noqa: E402

SAMPLE = {"split": "test", "limit": 700, "seed": 0}  # what tests/test_shipped_model.py scores


def sha256(file: Path) -> str:
    """The hex SHA-256 of a file (the sample reference names the model files it was made with)."""
    return hashlib.sha256(file.read_bytes()).hexdigest()


def shipped_files() -> dict[str, str]:
    """Relative path → SHA-256 of each file the figures depend on (fast model formats and tier members)."""
    files = [MODELS_DIR / n for n in ("model.tflite", "model.keras")]
    files += sorted((MODELS_DIR / "accurate").glob("member_*.tflite"))
    return {str(f.relative_to(MODELS_DIR)): sha256(f) for f in files if f.exists()}


def sample_reference(data: Path) -> dict:
    """The fixed sample's face ids and each model's predicted class per face."""
    from fercore.data.dataset import stratified_subset
    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate

    sample = stratified_subset(load_dataset(data).split(SAMPLE["split"]), limit=SAMPLE["limit"], seed=SAMPLE["seed"])
    predicted = {
        "model.tflite": evaluate(MODELS_DIR / "model.tflite", sample).y_pred.tolist(),
        "accurate": evaluate("accurate", sample).y_pred.tolist(),
    }
    return {**SAMPLE, "ids": [str(i) for i in sample.ids], "predicted": predicted, "files": shipped_files()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(shared_data_dir() / "fer2013"), help="FER2013 with a test split")
    p.add_argument("--sample-out", help="write the fixed sample's reference predictions to this JSON file")
    args = p.parse_args(argv)
    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate
    from fercore.models.ensemble import read_manifest

    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    if args.sample_out:
        Path(args.sample_out).write_text(json.dumps(sample_reference(Path(args.data)), indent=1) + "\n")
        print(f"wrote {args.sample_out}")
        return 0
    test = load_dataset(args.data).split("test")
    recorded = json.loads((MODELS_DIR / "metrics.json").read_text())["accuracy"]
    figures, ok = {}, True
    for name in ("model.tflite", "model.keras", "accurate"):
        wall, cpu = time.perf_counter(), time.process_time()
        model = name if name == "accurate" else MODELS_DIR / name
        figures[name] = evaluate(model, test).to_dict()["accuracy"]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        top1 = f"PublicTest top-1 {figures[name] * 100:.2f} % (n={len(test)})"
        print(f"{name:>13}: {top1}, {wall:.1f} s wall, {cpu:.1f} s CPU")
    tier = read_manifest(MODELS_DIR / "accurate")["metrics"]["accuracy"]
    for name, want in [("model.tflite", recorded), ("accurate", tier)]:
        same = abs(figures[name] - want) <= 1e-4
        ok &= same
        print(f"{name:>13}: recorded {want * 100:.2f} % — {'matches' if same else 'DIFFERS'}")
    for name in ("model.keras",):
        same = abs(figures[name] - figures["model.tflite"]) <= 0.001
        ok &= same
        print(f"{name:>13}: {'same top-1 as' if same else 'DIFFERS from'} model.tflite (within 0.1 point)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
