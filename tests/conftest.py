"""Shared pytest set-up: headless plotting, offline hubs, and isolated output folders."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
