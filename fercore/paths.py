"""The project's own folders, found once: every module that needs one asks here.

``PROJECT_ROOT`` is the checkout (the folder holding ``fercore/``); ``MODELS_DIR`` its shipped
models. Nothing else in the project computes these from ``__file__``.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
MODELS_DIR: Path = PROJECT_ROOT / "models"
RUNS_DIR: Path = PROJECT_ROOT / "runs"


def shown(path: str | Path, tail: int | None = None) -> str:
    """``path`` as a page or a report shows it: relative to the project when inside it (``models/x``).
    Outside it, as given; or, with ``tail``, only its last ``tail`` parts, for files that leave the
    machine (a shipped manifest must never name one of its folders)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT))
    except (ValueError, OSError):
        if tail is None:
            return str(p)
        return str(Path(*p.resolve().parts[-tail:]))
