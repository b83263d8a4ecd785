"""Model tiers: "fast" (the shipped single model) and "accurate" (an ensemble with test-time
augmentation), both behind the ``Backend`` protocol so every caller stays tier-agnostic.

A tier folder holds its members (.tflite twins, float16 weights by default) and ``manifest.json``::

    {"format": 1, "name": "accurate", "tta": true,
     "members": [{"file": "member_1.tflite", "source": "…", "accuracy": 0.69, "accuracy_tta": 0.70}],
     "metrics": {"split": "PublicTest", "n": 3589, "accuracy": 0.71}}

and, once fitted, ``calibration.json`` for the ensemble's output (``fercore.evaluation.calibration``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fercore.inference.classify import Backend, EmotionClassifier, default_model_path, load_backend
from fercore.inference.preprocess import FACE_SIZE
from fercore.inference.temperature import saved_temperature
from fercore.labels import NUM_CLASSES
from fercore.paths import MODELS_DIR

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
TIERS = ("fast", "accurate")
TTA_VIEWS = 10  # what tta_views returns: five crops, each also mirrored


def tta_views(faces: np.ndarray, crop: int = 44) -> list[np.ndarray]:
    """Ten views of (n, 48, 48) faces: four corner and one centre ``crop``×``crop`` crops resized
    back to 48×48, each also mirrored. Small shifts and flips are what training augmented with, so
    averaging over them cancels part of the model's sensitivity to where the detector put the box.

    The views are float32 whatever ``faces`` is (resizing uint8 faces would round them), so a single
    model with TTA and a tier see exactly the same views."""
    import cv2

    faces = np.asarray(faces, np.float32)

    if not 0 < crop <= FACE_SIZE:
        raise ValueError(f"crop must be in 1..{FACE_SIZE}, got {crop}")
    m = FACE_SIZE - crop
    offsets = [(m // 2, m // 2), (0, 0), (0, m), (m, 0), (m, m)]
    views = []
    for y, x in offsets:
        cropped = faces[:, y : y + crop, x : x + crop]
        if len(faces):
            resized = np.stack([cv2.resize(f, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR) for f in cropped])
        else:
            resized = faces
        views += [resized, resized[:, :, ::-1]]
    return views


def view_batch(faces: np.ndarray, tta: bool) -> tuple[np.ndarray, int]:
    """One model-input batch holding every view of ``faces`` and the number of views.

    ``faces``: (n, 48, 48) faces (any numeric dtype); ``tta``: the ten :func:`tta_views` when True,
    else the faces alone. Returns ((views · n, 48, 48, 1) float32, views), view after view, ready for
    one ``Backend.predict`` call whose output :func:`view_mean` folds back.
    """
    faces = np.asarray(faces)
    views = tta_views(faces) if tta else [faces.astype(np.float32)]
    return np.ascontiguousarray(np.concatenate(views)[..., None], dtype=np.float32), len(views)


def view_mean(proba: np.ndarray, views: int) -> np.ndarray:
    """(views · n, 7) probabilities of a :func:`view_batch` → (n, 7) float64 mean over the views."""
    proba = np.asarray(proba, np.float64)
    return proba.reshape(views, -1, proba.shape[-1]).mean(axis=0)


def combine(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The output of an ensemble: the mean of its members' (view-averaged) probabilities.

    ``probas``: one (n, 7) array per member. Returns (n, 7) float32. The serving path
    (:class:`EnsembleBackend`) and the scoring of a tier when it is shipped both call this, so a
    tier's recorded figures are those of what it serves."""
    if len(probas) == 0:
        raise ValueError("an ensemble needs at least one member's probabilities")
    return np.mean(np.asarray([np.asarray(p, np.float64) for p in probas]), axis=0).astype(np.float32)


class EnsembleBackend:
    """Averages the probabilities of several backends, optionally over the ten TTA views.

    Holds no mutable state of its own, so it is thread-safe whenever its members are. Each member
    sees all views of a call in one batch (one invoke per member instead of ten).
    """

    def __init__(self, members: list[Backend], tta: bool = False):
        if not members:
            raise ValueError("an ensemble needs at least one member backend")
        self.members = list(members)
        self.tta = bool(tta)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 48, 48, 1) float32 0–255 → (n, 7) mean probabilities (:func:`combine`)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
            raise ValueError(f"expected (n, {FACE_SIZE}, {FACE_SIZE}, 1) faces, got shape {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        batch, views = view_batch(x[..., 0], self.tta)
        return combine([view_mean(member.predict(batch), views) for member in self.members])


def tier_dir(name: str) -> Path:
    """The folder of a named tier other than "fast" (``models/<name>/``)."""
    return MODELS_DIR / name


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a tier manifest (a ``manifest.json`` file or the folder holding one)."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file}: tier manifest not found")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: unreadable tier manifest ({exc})") from None
    members = manifest.get("members") if isinstance(manifest, dict) else None
    if not isinstance(members, list) or not members:
        raise ValueError(f"{file}: a tier manifest needs a non-empty 'members' list")
    for m in members:
        if not isinstance(m, dict) or not isinstance(m.get("file"), str):
            raise ValueError(f"{file}: every member needs a 'file' entry, got {m!r}")
        if not (file.parent / m["file"]).exists():
            raise FileNotFoundError(f"{file.parent / m['file']}: tier member not found")
    if not isinstance(manifest.get("tta", False), bool):
        raise ValueError(f"{file}: 'tta' must be true or false")
    return manifest


def write_manifest(
    folder: str | Path, members: list[dict[str, Any]], tta: bool, name: str, metrics: dict[str, Any] | None = None
) -> Path:
    """Write ``manifest.json`` into a tier folder (member ``file`` names relative to it)."""
    folder = Path(folder)
    manifest = {"format": MANIFEST_FORMAT, "name": name, "tta": tta, "members": members, "metrics": metrics or {}}
    file = folder / MANIFEST
    file.write_text(json.dumps(manifest, indent=2) + "\n")
    read_manifest(file)
    return file


def is_manifest(path: str | Path) -> bool:
    """True for a tier folder or its manifest file (a Keras model.json is not one)."""
    path = Path(path)
    return (path / MANIFEST).exists() if path.is_dir() else path.name == MANIFEST


def resolve_tier(name_or_path: str | Path | None) -> Path:
    """The file behind a tier: "fast"/None → the shipped default model, "accurate" (or any other
    name of a folder in models/) → its manifest, a path → that path. ``saved_temperature`` of the
    result finds the tier's calibration."""
    if name_or_path is None or str(name_or_path) == "fast":
        return default_model_path()
    if isinstance(name_or_path, str) and name_or_path in TIERS:
        file = tier_dir(name_or_path) / MANIFEST
        if not file.exists():
            raise FileNotFoundError(f"{file}: the {name_or_path!r} tier is not installed (no manifest)")
        return file
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    return path / MANIFEST if path.is_dir() and (path / MANIFEST).exists() else path


def load_tier(name_or_path: str | Path | None = None) -> Backend:
    """A backend for a tier name ("fast", "accurate"), a tier folder/manifest, or a model file."""
    path = resolve_tier(name_or_path)
    if not is_manifest(path):
        return load_backend(path)
    manifest = read_manifest(path)
    members = [load_backend(path.parent / m["file"]) for m in manifest["members"]]
    return EnsembleBackend(members, tta=manifest.get("tta", False))


def load_classifier(name_or_path: str | Path | None = None) -> EmotionClassifier:
    """An ``EmotionClassifier`` for a tier name ("fast", "accurate"), a tier folder or a model file,
    with the temperature saved for it when it applies (:func:`saved_temperature`)."""
    path = resolve_tier(name_or_path)
    backend = load_tier(path)
    tta = isinstance(backend, EnsembleBackend) and backend.tta
    return EmotionClassifier(backend=backend, temperature=saved_temperature(path, tta))
