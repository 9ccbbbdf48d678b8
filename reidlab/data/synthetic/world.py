"""Planning a world: how many images each identity gets, in which cameras, and each image's parameters.

Images come in *tracklets*: one identity walking through one camera's view, several frames with
the same walking direction, background area and lighting, while the gait phase advances and the
detection box jitters. Counts are split with exact totals so that a world reproduces the real
dataset's image and identity counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .occlusion import BIN, BOARD, CAR, PERSON, POLE
from .render import Shots
from .scene import NUM_VARIANTS, Camera

OCCLUDER_MIX = {CAR: 0.25, POLE: 0.18, BIN: 0.17, BOARD: 0.15, PERSON: 0.25}
OCCLUDER_COLOURS = np.array(
    [[0.85, 0.85, 0.85], [0.1, 0.1, 0.12], [0.55, 0.56, 0.6], [0.6, 0.1, 0.1], [0.15, 0.25, 0.5],
     [0.2, 0.42, 0.22], [0.9, 0.75, 0.2], [0.45, 0.32, 0.2], [0.95, 0.95, 0.9], [0.3, 0.5, 0.7]],
    np.float32,
)


@dataclass(frozen=True)
class BoxJitter:
    """How detection boxes vary: zoom std, offsets std, probability of a badly cropped (partial) box."""

    scale_std: float = 0.05
    shift_std: float = 0.05
    partial: float = 0.05


def split_total(rng: np.random.Generator, total: int, n: int, minimum: int = 1, spread: float = 0.45) -> np.ndarray:
    """``n`` non-negative integers >= ``minimum`` summing exactly to ``total`` (log-normal shares)."""
    if n <= 0:
        if total:
            raise ValueError(f"cannot split {total} images over 0 identities")
        return np.zeros(0, np.int64)
    if total < n * minimum:
        raise ValueError(f"cannot give {n} identities at least {minimum} of {total} images each")
    share = rng.lognormal(0.0, spread, size=n)
    extra = (total - n * minimum) * share / share.sum()
    counts = np.floor(extra).astype(np.int64)
    remainder = int(total - n * minimum - counts.sum())
    order = np.argsort(-(extra - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts + minimum


def split_with_caps(rng: np.random.Generator, total: int, caps: np.ndarray, minimum: int = 1) -> np.ndarray:
    """Like :func:`split_total` but entry ``i`` is at most ``caps[i]``."""
    caps = np.asarray(caps, np.int64)
    if total > caps.sum() or total < minimum * len(caps):
        raise ValueError(f"cannot split {total} over {len(caps)} slots with caps summing to {caps.sum()}")
    counts = np.full(len(caps), minimum, np.int64)
    left = total - counts.sum()
    while left > 0:
        room = np.nonzero(counts < caps)[0]
        take = rng.choice(room, size=min(left, len(room)), replace=False)
        counts[take] += 1
        left -= len(take)
    return counts


def pick_cameras(rng: np.random.Generator, cams: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``k`` distinct cameras out of ``cams`` (sorted)."""
    k = min(k, len(cams))
    p = None if weights is None else weights / weights.sum()
    return np.sort(rng.choice(cams, size=k, replace=False, p=p))


def spread_over(rng: np.random.Generator, total: int, k: int) -> np.ndarray:
    """Split ``total`` images over ``k`` cameras, at least one each."""
    return split_total(rng, total, k, minimum=1, spread=0.6)


@dataclass
class Tracklets:
    """Images grouped by (identity, camera) walks; ``shots`` has one row per image, in tracklet order."""

    shots: Shots
    track: np.ndarray  # tracklet index of each image
    frame: np.ndarray  # frame index within its tracklet


def make_tracklets(
    rng: np.random.Generator,
    cameras: list[Camera],
    ident: np.ndarray,
    cam: np.ndarray,
    length: np.ndarray,
    *,
    box: BoxJitter,
    occlusion: float | np.ndarray = 0.0,
    anonymous: tuple[int, int] = (0, 0),
) -> Tracklets:
    """Shots for tracklets ``(ident[t], cam[t])`` of ``length[t]`` frames each.

    ``occlusion`` is the probability that a frame is occluded (per tracklet when an array);
    ``anonymous`` is the range of identity rows used for occluding pedestrians.
    """
    ident = np.asarray(ident, np.int64)
    cam = np.asarray(cam, np.int64)
    length = np.asarray(length, np.int64)
    n_track = len(ident)
    n = int(length.sum())
    track = np.repeat(np.arange(n_track), length)
    starts = np.concatenate([[0], np.cumsum(length)[:-1]]) if n_track else np.zeros(0, np.int64)
    frame = np.arange(n) - np.repeat(starts, length)

    # per tracklet: walking direction from the camera's view distribution, gait, background, light
    side = np.array([c.side_view for c in cameras])[cam]
    sideways = rng.random(n_track) < side
    flip = rng.random(n_track) < 0.5
    base_theta = np.where(sideways, np.where(flip, math.pi / 2, -math.pi / 2), np.where(flip, 0.0, math.pi))
    base_theta = base_theta + rng.normal(0, 0.22, n_track)
    amp = np.where(rng.random(n_track) < 0.12, rng.uniform(0.0, 0.15, n_track), rng.uniform(0.45, 1.0, n_track))
    phase0 = rng.uniform(0, 2 * math.pi, n_track)
    dphase = rng.uniform(0.6, 1.4, n_track)
    bg0 = rng.integers(0, NUM_VARIANTS, n_track)
    gain0 = rng.normal(1.0, 0.06, n_track)

    theta = base_theta[track] + rng.normal(0, 0.1, n)
    phase = phase0[track] + dphase[track] * frame
    scale = np.clip(rng.normal(1.0, box.scale_std, n), 0.82, 1.2)
    aspect = rng.uniform(1.1, 1.32, n)  # boxes resized to 2:1 stretch people sideways, as in real sets
    dx = rng.normal(0, box.shift_std, n)
    dy = rng.normal(0, box.shift_std * 0.7, n)
    partial = rng.random(n) < box.partial
    kind = rng.integers(0, 3, n)
    scale = np.where(partial & (kind == 0), rng.uniform(1.25, 1.55, n), scale)  # upper body only
    dy = np.where(partial & (kind == 0), rng.uniform(0.25, 0.45, n), dy)
    dy = np.where(partial & (kind == 1), rng.uniform(-0.3, -0.15, n), dy)  # feet cut off
    dx = np.where(partial & (kind == 2), rng.choice([-1, 1], n) * rng.uniform(0.25, 0.4, n), dx)  # half outside
    bg = (bg0[track] + (rng.random(n) < 0.25)) % NUM_VARIANTS
    gain = gain0[track] * rng.normal(1.0, 0.03, n)
    blur = rng.uniform(0.75, 1.3, n)

    # occlusion: the occluding object is a property of the tracklet, the hidden share varies by frame
    p_occ = np.broadcast_to(np.asarray(occlusion, np.float64), (n_track,))[track] if n else np.zeros(0)
    occluded = rng.random(n) < p_occ
    kinds = np.array(list(OCCLUDER_MIX))
    track_kind = rng.choice(kinds, size=n_track, p=np.array(list(OCCLUDER_MIX.values())))
    occ_kind = np.where(occluded, track_kind[track], 0)
    occ_target = np.clip(rng.uniform(0.22, 0.58, n), 0.2, 0.6)
    track_colour = OCCLUDER_COLOURS[rng.integers(0, len(OCCLUDER_COLOURS), n_track)]
    occ_colour = np.clip(track_colour[track] + rng.normal(0, 0.03, (n, 3)), 0, 1).astype(np.float32)
    lo, hi = anonymous
    occ_ident = rng.integers(lo, hi, n_track)[track] if hi > lo else np.full(n, -1)
    occ_kind = np.where((occ_kind == PERSON) & (occ_ident < 0), CAR, occ_kind)

    shots = Shots(
        ident=ident[track], cam=cam[track], theta=theta.astype(np.float32), phase=phase.astype(np.float32),
        amp=amp[track].astype(np.float32), scale=scale.astype(np.float32), aspect=aspect.astype(np.float32),
        dx=dx.astype(np.float32), dy=dy.astype(np.float32), bg=bg.astype(np.int64), gain=gain.astype(np.float32),
        blur=blur.astype(np.float32), occ_kind=occ_kind.astype(np.int64), occ_target=occ_target.astype(np.float32),
        occ_shift=rng.random(n).astype(np.float32), occ_colour=occ_colour, occ_ident=occ_ident.astype(np.int64),
    )
    return Tracklets(shots=shots, track=track, frame=frame)


def junk_shots(rng: np.random.Generator, base: Shots) -> Shots:
    """Turn shots into bad detections: mostly background, a sliver of a body, or a body part blown up."""
    n = len(base)
    kind = rng.integers(0, 3, n)
    scale = np.where(kind == 0, rng.uniform(1.8, 3.0, n), np.where(kind == 1, rng.uniform(0.35, 0.6, n), 1.0))
    dx = np.where(kind == 2, rng.choice([-1, 1], n) * rng.uniform(0.7, 0.95, n), base.dx * 3)
    dy = np.where(kind == 0, rng.uniform(-0.6, 0.6, n), base.dy)
    ident = np.where(rng.random(n) < 0.15, -1, base.ident)
    return Shots(**{**base.__dict__, "scale": scale.astype(np.float32), "dx": dx.astype(np.float32),
                    "dy": dy.astype(np.float32), "ident": ident})
