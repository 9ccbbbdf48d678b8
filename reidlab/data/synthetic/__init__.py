"""The procedural synthetic ReID world: identities, cameras and images written in real datasets' layouts.

Each synthetic world (``WORLDS``: ``synth_market``, ``synth_sysu``, ...) is also a registered dataset
name: ``load_dataset("synth_market", size="mini")`` generates ``synthetic_dir()/synth_market_mini``
when it is missing and parses it with the real Market-1501 parser. From the shell::

    python -m reidlab.data.synthetic --world synth_market --size mini --out data/synthetic
"""

from __future__ import annotations

from .catalog import SIZES, WORLDS, WorldSpec, get_world
from .generator import GENERATOR_VERSION, ensure, generate, is_complete, plan_world, world_dir
from .registration import load_synthetic, register_worlds

register_worlds()

__all__ = [
    "GENERATOR_VERSION",
    "SIZES",
    "WORLDS",
    "WorldSpec",
    "ensure",
    "generate",
    "get_world",
    "is_complete",
    "load_synthetic",
    "plan_world",
    "world_dir",
]
