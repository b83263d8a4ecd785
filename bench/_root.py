"""Imported first by every bench script (``import _root``): a script run as ``python bench/NAME.py``
has only ``bench/`` on its path, so this puts the checkout there once, for ``fercore`` and ``bench.*``.
The project's folders then come from :mod:`fercore.paths` like everywhere else."""

import sys
from pathlib import Path

_CHECKOUT = str(Path(__file__).resolve().parent.parent)
if _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)
