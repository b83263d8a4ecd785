"""fercore: facial expression recognition on FER2013 — data, models, training, evaluation, inference.

The public API, to start from::

    from fercore import FramePipeline, load_classifier, load_dataset, evaluate, TrainConfig

    pipeline = FramePipeline()                 # detect → crop → classify (→ track), the shipped model
    faces = pipeline(rgb_image).faces          # FacePrediction per face (box, label, scores)
    result = evaluate("accurate", load_dataset("fer2013").split("test"))

Importing this package is cheap: the names below are imported on first use (PEP 562), so
``import fercore`` pulls in neither tensorflow nor OpenCV. The subpackages follow the data flow:
``fercore.data`` (data sets), ``fercore.inference`` (image → faces → emotions), ``fercore.models``
(architectures, tiers, export), ``fercore.evaluation``, ``fercore.train`` and ``fercore.runs``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fercore.labels import EMOTIONS, NUM_CLASSES

if TYPE_CHECKING:
    from fercore.data.dataset import Dataset
    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate
    from fercore.inference.classify import EmotionClassifier
    from fercore.inference.pipeline import FramePipeline
    from fercore.models.ensemble import load_classifier
    from fercore.train.config import TrainConfig
    from fercore.types import Box, FacePrediction

# public name → the module that defines it
_LAZY = {
    "Box": "fercore.types",
    "Dataset": "fercore.data.dataset",
    "EmotionClassifier": "fercore.inference.classify",
    "FacePrediction": "fercore.types",
    "FramePipeline": "fercore.inference.pipeline",
    "TrainConfig": "fercore.train.config",
    "evaluate": "fercore.evaluation.evaluate",
    "load_classifier": "fercore.models.ensemble",
    "load_dataset": "fercore.data.loader",
}

__all__ = [
    "EMOTIONS",
    "NUM_CLASSES",
    "Box",
    "Dataset",
    "EmotionClassifier",
    "FacePrediction",
    "FramePipeline",
    "TrainConfig",
    "evaluate",
    "load_classifier",
    "load_dataset",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and cache the name here."""
    if name not in _LAZY:
        raise AttributeError(f"module 'fercore' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
