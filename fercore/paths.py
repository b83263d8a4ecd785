"""The project's own folders, found once: every module that needs one asks here.

``PROJECT_ROOT`` is the checkout (the folder holding ``fercore/``); ``MODELS_DIR`` its shipped
models. Nothing else in the project computes these from ``__file__``.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
MODELS_DIR: Path = PROJECT_ROOT / "models"
RUNS_DIR: Path = PROJECT_ROOT / "runs"
