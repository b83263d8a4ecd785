"""The model registry: which models a user can pick (shipped, runs, exports) and what lies beside them.

One definition for the pages, the CLIs and the benches. A model is named by a path; labels are
for display only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fercore import runs
from fercore.inference.classify import MODELS_DIR, default_model_path
from fercore.models.ensemble import MANIFEST, read_manifest, tier_dir
from fercore.models.export import EXPORT_NAMES

RUN_MODEL_FILES: tuple[str, ...] = ("export/model.tflite", "export/model.keras", runs.BEST, runs.LAST)


def shipped_model() -> Path | None:
    """The shipped model file (``$FER_MODEL`` or ``models/model.tflite|.keras``), None if absent."""
    path = default_model_path()
    return path if path.exists() else None


def model_card() -> dict[str, Any] | None:
    """metrics.json of the shipped model (beside it, else in ``models/``), None if absent or unreadable."""
    model = shipped_model()
    candidates = ([model.parent / "metrics.json"] if model is not None else []) + [MODELS_DIR / "metrics.json"]
    for file in candidates:
        try:
            card = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict):
            return card
    return None


def tiers() -> dict[str, Path]:
    """The shipped tiers that are installed, label → file: fast (one network), accurate (an ensemble
    with test-time augmentation: better, several times slower; for photos and evaluation)."""
    out: dict[str, Path] = {}
    shipped = shipped_model()
    if shipped is not None:
        out[f"fast ({shipped.name})"] = shipped
    accurate = tier_dir("accurate") / MANIFEST
    if accurate.exists():
        out["accurate (ensemble + TTA)"] = accurate
    return out


def tier_summary(name: str = "accurate") -> dict[str, Any] | None:
    """What an installed tier's manifest says: {"members", "tta", "accuracy", "split"}; None when the
    tier is not installed or its manifest is unusable."""
    try:
        manifest = read_manifest(tier_dir(name))
    except (OSError, ValueError):
        return None
    found = manifest.get("metrics")
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    accuracy = metrics.get("accuracy")
    return {
        "members": len(manifest["members"]),
        "tta": bool(manifest.get("tta", False)),
        "accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
        "split": str(metrics.get("split", "")),
    }


def available_models(runs_dir: str | Path | None = None) -> dict[str, Path]:
    """Models the user can pick, label → file: the shipped tiers, then each run's export (or checkpoint)."""
    out = tiers()
    for run in runs.list_runs(runs_dir):
        for rel in RUN_MODEL_FILES:
            if (run / rel).exists():
                out[f"run {run.name} ({Path(rel).name})"] = run / rel
                break
    return out


def keras_model_for(model_path: str | Path) -> Path | None:
    """The Keras file beside a model (Grad-CAM needs one), None when there is none."""
    model_path = Path(model_path)
    if model_path.suffix in (".keras", ".json"):
        return model_path
    for name in ("model.keras", "model.json"):
        candidate = model_path.parent / name
        if candidate.exists():
            return candidate
    return None


def export_files(model_path: str | Path) -> dict[str, Path]:
    """The export formats that exist beside a model file (model.json + weights, .keras, .tflite)."""
    folder = Path(model_path).parent
    return {kind: folder / name for kind, name in EXPORT_NAMES.items() if (folder / name).exists()}
