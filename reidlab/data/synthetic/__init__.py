"""The procedural synthetic ReID world: identities, cameras and images written in real datasets' layouts.

Every preset is also a registered dataset name: ``load_dataset("synth_market", size="mini")``
generates ``synthetic_dir()/synth_market_mini`` when it is missing and parses it with the real
Market-1501 parser. From the shell::

    python -m reidlab.data.synthetic --preset synth_market --size mini --out data/synthetic
"""

from __future__ import annotations

from .generator import GENERATOR_VERSION, ensure, generate, is_complete, plan_world, world_dir
from .presets import PRESETS, SIZES, Preset, get_preset
from .registration import load_synthetic, register_presets

register_presets()

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SIZES",
    "Preset",
    "ensure",
    "generate",
    "get_preset",
    "is_complete",
    "load_synthetic",
    "plan_world",
    "world_dir",
]
