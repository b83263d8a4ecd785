"""python -m training.train — train a model into a run directory (``--help`` for every option).

The command lives with the library (:mod:`fercore.train.__main__`), so the Train page's launcher
starts the same entry point it imports.
"""

import sys

from fercore.train.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
