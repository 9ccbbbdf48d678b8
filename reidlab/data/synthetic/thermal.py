"""Thermal (infrared) appearance: material temperatures instead of colours, and thermal imaging noise.

Garment colour is invisible in a thermal image: skin is warm, hair, shoes and bags are cool,
garments sit in between (thin t-shirts warmer than jackets, with a per-identity offset), and the
background is cool. Thermal cameras blur more and show row/column fixed-pattern noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .attributes import THERMAL, Identities
from .figure import BACKPACK, HAIR, HANDBAG, HAT, LOWER, NUM_MATERIALS, PATTERN, SHOES, SKIN, UPPER


def thermal_materials(ids: Identities) -> np.ndarray:
    """(n, NUM_MATERIALS, 1) temperatures in 0..1 for every identity."""
    n = len(ids)
    table = np.zeros((n, NUM_MATERIALS, 1), np.float32)
    warm = ids.warmth.astype(np.float32)
    upper = np.choose(ids.upper_type, [THERMAL["upper"], THERMAL["upper"] - 0.05, THERMAL["jacket"]]) + warm
    table[:, SKIN, 0] = THERMAL["skin"] + 0.3 * warm
    table[:, HAIR, 0] = THERMAL["hair"] + 0.5 * warm
    table[:, UPPER, 0] = upper
    table[:, PATTERN, 0] = upper + 0.1  # the inner top of an open jacket is warmer
    table[:, LOWER, 0] = THERMAL["lower"] + warm - 0.04 * (ids.lower_type == 0)
    table[:, SHOES, 0] = THERMAL["shoes"]
    table[:, BACKPACK, 0] = THERMAL["bag"]
    table[:, HANDBAG, 0] = THERMAL["bag"] + 0.04
    table[:, HAT, 0] = THERMAL["hair"]
    return np.clip(table, 0.0, 1.0)


def thermal_imaging(img: Tensor, gain: Tensor, noise: Tensor, generator: torch.Generator) -> Tensor:
    """Automatic gain, Gaussian noise and row/column fixed-pattern stripes on (B, 1, H, W) thermal images."""
    b, _, h, w = img.shape
    lo = img.amin(dim=(2, 3), keepdim=True)
    hi = img.amax(dim=(2, 3), keepdim=True)
    stretched = (img - lo) / (hi - lo).clamp_min(0.2)  # automatic gain control of thermal cameras
    out = 0.15 + 0.75 * stretched * gain.view(-1, 1, 1, 1)
    sigma = noise.view(-1, 1, 1, 1)
    out = out + sigma * torch.randn(b, 1, h, w, generator=generator)
    out = out + 0.7 * sigma * torch.randn(b, 1, 1, w, generator=generator)  # column stripes
    out = out + 0.4 * sigma * torch.randn(b, 1, h, 1, generator=generator)  # row stripes
    return out
