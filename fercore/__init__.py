"""fercore: facial expression recognition on FER2013 — data, models, training, inference.

Importing this package is cheap: it pulls in neither tensorflow nor streamlit. Submodules that
need tensorflow (model, train, evaluate, export, explain) import it themselves.
"""

from fercore.labels import EMOTIONS, NUM_CLASSES

__all__ = ["EMOTIONS", "NUM_CLASSES"]
__version__ = "0.1.0"
