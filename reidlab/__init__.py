"""reidlab: a Jupyter-first person re-identification lab."""

import os

# Offline by default: nothing downloads at run time unless the user asks (HF_HUB_OFFLINE=0 allows hub downloads).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
