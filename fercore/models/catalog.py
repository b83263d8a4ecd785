"""The model registry: which models a user can pick (shipped, runs, exports) and what lies beside them.

One definition for the pages, the CLIs and the benches. A model is named by a path; labels are
for display only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fercore.runs as runs
from fercore.inference.classify import default_model_path
from fercore.models.ensemble import MANIFEST, read_manifest, tier_dir
from fercore.models.export import EXPORT_NAMES
from fercore.paths import MODELS_DIR

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


def card_facts(card: dict[str, Any]) -> list[str]:
    """The model's facts from its metrics.json in words, e.g. ``["fernet architecture",
    "282 MFLOPs per face", "trained in 91 min over 20 epochs", "tested on 3,589 PublicTest faces"]``;
    facts the file lacks (or holds in an unexpected type) are left out."""

    def number(key: str) -> float | None:
        value = card.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    facts: list[str] = []
    if isinstance(card.get("architecture"), str):
        facts.append(f"{card['architecture']} architecture")
    flops = number("flops")
    if flops is not None:
        facts.append(f"{flops / 1e9:.2f} GFLOPs per face" if flops >= 1e9 else f"{flops / 1e6:.0f} MFLOPs per face")
    minutes, epochs = number("train_minutes"), number("epochs")
    if minutes is not None:
        took = f"{minutes / 60:.1f} h" if minutes >= 120 else f"{minutes:.0f} min"
        facts.append(f"trained in {took}" + (f" over {epochs:.0f} epochs" if epochs else ""))
    n = number("n")
    if n is not None:
        split = f" {card['split']}" if isinstance(card.get("split"), str) else ""
        facts.append(f"tested on {n:,.0f}{split} faces")
    return facts


def model_card_sections(path: str | Path | None = None) -> list[tuple[str, str]]:
    """The model card (``models/MODEL_CARD.md``) cut at its ``## `` headings: ``(title, markdown)``
    pairs, the first being the card's title (its ``# `` heading) and introduction. Empty if absent."""
    file = Path(path) if path is not None else MODELS_DIR / "MODEL_CARD.md"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError:
        return []
    sections: list[tuple[str, list[str]]] = [("", [])]
    fenced = False  # a "## " inside a code block is not a heading
    for line in text.splitlines():
        fenced ^= line.lstrip().startswith("```")
        if line.startswith("## ") and not fenced:
            sections.append((line[3:].strip(), []))
        elif line.startswith("# ") and not fenced and not sections[0][0] and len(sections) == 1:
            sections[0] = (line[2:].strip(), sections[0][1])
        else:
            sections[-1][1].append(line)
    return [(title, "\n".join(body).strip()) for title, body in sections if title or "\n".join(body).strip()]


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
