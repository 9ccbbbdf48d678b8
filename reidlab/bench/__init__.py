"""Benchmarks: ``python -m reidlab.bench <name> [options]``; results go to ``figures/benchmarks.md``."""
