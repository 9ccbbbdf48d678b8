"""Cameras of the synthetic world: a procedural background scene and imaging parameters per camera.

Each camera draws one wide scene (ground, walls, windows, trees, poles, doors ...) in a style of its
domain, then cuts a fixed set of background variants (crops at different places and zooms) from it;
an image picks one variant, as a detection box lands somewhere in a fixed camera's view. Cameras
also differ in lighting (brightness, colour temperature, saturation, contrast), blur, noise, JPEG
quality and in which walking directions they see (front/back vs sideways).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SCENE_STYLES = ("campus", "street", "winter", "indoor", "random", "night")
NUM_VARIANTS = 40
_SCENE_H, _SCENE_W = 160, 512


@dataclass(frozen=True)
class CameraStyle:
    """Ranges from which a domain draws its cameras' parameters."""

    scenes: tuple[str, ...] = ("campus", "street")
    brightness: tuple[float, float] = (0.75, 1.2)
    temperature: tuple[float, float] = (-1.0, 1.0)  # -1 cool (blue) .. +1 warm (yellow)
    saturation: tuple[float, float] = (0.65, 1.15)
    contrast: tuple[float, float] = (0.75, 1.15)
    blur: tuple[float, float] = (0.3, 1.0)  # Gaussian sigma in pixels (per camera; images add jitter)
    noise: tuple[float, float] = (0.008, 0.025)
    jpeg_quality: tuple[int, int] = (78, 95)
    side_view: tuple[float, float] = (0.1, 0.9)  # probability that a tracklet walks sideways
    hue: float = 0.15  # colour response: hue rotation drawn in +-hue radians per camera
    gamma: tuple[float, float] = (0.88, 1.14)  # colour response: per-channel gamma


@dataclass(frozen=True)
class Camera:
    """Imaging parameters of one camera (drawn once per world and seed)."""

    index: int  # 0-based
    infrared: bool
    scene: str
    gain: tuple[float, float, float]  # brightness x colour temperature per channel
    saturation: float
    contrast: float
    blur: float
    noise: float
    jpeg_quality: int
    side_view: float
    light: float  # horizontal key-light direction -1..1
    scene_seed: int
    hue: float = 0.0  # hue rotation of the camera's colour response (radians)
    gamma: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gamma of its colour response


def hue_rotation(angle: float) -> np.ndarray:
    """3x3 matrix rotating RGB colours about the grey axis by ``angle`` radians (greys stay grey)."""
    c, s = np.cos(angle), np.sin(angle)
    k = 1.0 / 3.0
    r = np.sqrt(k)
    return np.array(
        [[c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
         [k * (1 - c) + r * s, c + k * (1 - c), k * (1 - c) - r * s],
         [k * (1 - c) - r * s, k * (1 - c) + r * s, c + k * (1 - c)]],
        np.float32,
    )


def make_cameras(
    rng: np.random.Generator,
    style: CameraStyle,
    num: int,
    infrared: tuple[int, ...] = (),
    indoor: tuple[int, ...] = (),
) -> list[Camera]:
    """Draw ``num`` cameras; 0-based indices in ``infrared`` are thermal cameras, those in ``indoor``
    film indoor scenes (when ``indoor`` is given, the other cameras film outdoor ones)."""
    outdoor = tuple(s for s in style.scenes if s != "indoor") or style.scenes
    cams = []
    for i in range(num):
        scenes = ("indoor",) if i in indoor else (outdoor if indoor else style.scenes)
        b = rng.uniform(*style.brightness)
        k = rng.uniform(*style.temperature)
        tint = rng.normal(0.0, 0.05)
        gain = (b * (1 + 0.22 * k), b * (1 + tint), b * (1 - 0.22 * k))
        cams.append(
            Camera(
                index=i,
                infrared=i in infrared,
                scene=str(scenes[int(rng.integers(len(scenes)))]),
                gain=tuple(float(g) for g in gain),
                saturation=float(rng.uniform(*style.saturation)),
                contrast=float(rng.uniform(*style.contrast)),
                blur=float(rng.uniform(*style.blur)) * (1.5 if i in infrared else 1.0),
                noise=float(rng.uniform(*style.noise)),
                jpeg_quality=int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)),
                side_view=float(rng.uniform(*style.side_view)),
                light=float(rng.uniform(-1, 1)),
                scene_seed=int(rng.integers(2**31)),
                hue=float(rng.uniform(-style.hue, style.hue)),
                gamma=tuple(float(g) for g in rng.uniform(*style.gamma, size=3)),
            )
        )
    return cams


# ----------------------------------------------------------------------------- scene drawing
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Value noise in [-1, 1] with feature size ``cell`` pixels (bilinear upsampling of a random grid)."""
    grid = torch.from_numpy(rng.uniform(-1, 1, size=(1, 1, h // cell + 2, w // cell + 2)).astype(np.float32))
    up = F.interpolate(grid, size=(h + 2 * cell, w + 2 * cell), mode="bilinear", align_corners=False)
    return up[0, 0, cell : cell + h, cell : cell + w].numpy()


def _colour(rng: np.random.Generator, base: tuple[float, float, float], spread: float = 0.08) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, spread, 3).astype(np.float32), 0, 1)


def _rect(img: np.ndarray, y0: int, y1: int, x0: int, x1: int, colour: np.ndarray) -> None:
    img[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = colour


def draw_scene(rng: np.random.Generator, style: str, h: int = _SCENE_H, w: int = _SCENE_W) -> np.ndarray:
    """One wide scene (h, w, 3) float32 in 0..1 in the given style."""
    if style not in SCENE_STYLES:
        raise ValueError(f"unknown scene style {style!r}; expected one of {SCENE_STYLES}")
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    img = np.zeros((h, w, 3), np.float32)
    horizon = int(h * rng.uniform(0.18, 0.5))
    fine = _smooth_noise(rng, h, w, 3)[..., None]
    coarse = _smooth_noise(rng, h, w, 24)[..., None]

    if style in ("campus", "street", "winter", "night"):
        # ----- ground
        if style == "campus":
            ground = _colour(rng, (0.62, 0.58, 0.52))
        elif style == "street":
            ground = _colour(rng, (0.36, 0.36, 0.38), 0.04)
        elif style == "winter":
            ground = _colour(rng, (0.55, 0.56, 0.58), 0.04)
        else:
            ground = _colour(rng, (0.16, 0.16, 0.2), 0.03)
        img[:] = ground * (1 + 0.1 * coarse + 0.06 * fine)
        tile = int(rng.integers(10, 22))
        if style in ("campus", "winter") or rng.random() < 0.4:
            lines = ((yy % tile) < 1.2) | (((xx + (yy // tile) * tile * 0.5) % (tile * 1.6)) < 1.2)
            img[lines & (yy > horizon)] *= 0.92
        if style == "street" and rng.random() < 0.5:
            lane = (np.abs(((xx + 2.0 * yy) % 120) - 60) < 2) & (yy > horizon + 20)
            img[lane] = img[lane] * 0.6 + 0.4 * _colour(rng, (0.85, 0.82, 0.6), 0.03)
        if style == "campus" and rng.random() < 0.7:  # a lawn strip
            g0 = int(rng.integers(horizon, h - 20))
            img[g0 : g0 + int(rng.integers(12, 40))] = _colour(rng, (0.32, 0.5, 0.24), 0.05) * (1 + 0.25 * fine[0])
        if style == "winter":
            snow = coarse[..., 0] + 0.4 * fine[..., 0] > rng.uniform(0.1, 0.5)
            img[snow & (yy > horizon)] = _colour(rng, (0.9, 0.91, 0.94), 0.02)
        # ----- things above the horizon: a facade, trees, or both
        wall = _colour(rng, [(0.72, 0.66, 0.58), (0.62, 0.34, 0.28), (0.75, 0.75, 0.75), (0.45, 0.5, 0.55)][
            int(rng.integers(4))])
        if style == "night":
            wall = wall * 0.3
        img[:horizon] = wall * (1 + 0.08 * coarse[:horizon] + 0.05 * fine[:horizon])
        win_w, win_h = int(rng.integers(10, 22)), int(rng.integers(10, 20))
        gap = int(rng.integers(8, 18))
        glass = _colour(rng, (0.3, 0.38, 0.45) if style != "night" else (0.8, 0.7, 0.4), 0.05)
        for x0 in range(int(rng.integers(0, gap)), w, win_w + gap):
            for y0 in range(2, horizon - 6, win_h + gap):
                _rect(img, y0, min(y0 + win_h, horizon - 3), x0, x0 + win_w, glass * rng.uniform(0.8, 1.15))
        for _ in range(int(rng.integers(1, 5))):  # trees: trunk + canopy
            tx = rng.uniform(0, w)
            top = rng.uniform(-10, horizon * 0.6)
            r = rng.uniform(14, 34)
            leaf = _colour(rng, (0.2, 0.36, 0.16) if style != "winter" else (0.25, 0.22, 0.2), 0.05)
            canopy = (xx - tx) ** 2 + ((yy - top) * 1.2) ** 2 < r * r * (1 + 0.2 * fine[..., 0])
            trunk = (np.abs(xx - tx) < rng.uniform(2, 4)) & (yy > top) & (yy < horizon + rng.uniform(5, 25))
            img[trunk] = _colour(rng, (0.28, 0.2, 0.14), 0.03)
            img[canopy] = leaf * (1 + 0.3 * fine[canopy])
        for _ in range(int(rng.integers(0, 3))):  # lamp posts / poles
            px = rng.uniform(0, w)
            pole = (np.abs(xx - px) < 1.5) & (yy < horizon + rng.uniform(10, 40))
            img[pole] = _colour(rng, (0.3, 0.3, 0.32), 0.03)
        # a curb / wall base along the horizon
        img[horizon : horizon + 3] *= 0.7
    elif style == "indoor":
        floor = _colour(rng, [(0.7, 0.66, 0.6), (0.55, 0.55, 0.58), (0.6, 0.5, 0.4)][int(rng.integers(3))])
        tile = int(rng.integers(12, 26))
        checker = ((yy // tile + xx // tile) % 2).astype(np.float32)[..., None]
        img[:] = floor * (0.92 + 0.1 * checker + 0.05 * fine)
        wall = _colour(rng, [(0.85, 0.84, 0.8), (0.78, 0.8, 0.74), (0.8, 0.76, 0.7)][int(rng.integers(3))])
        img[:horizon] = wall * (1 + 0.04 * coarse[:horizon])
        for x0 in rng.uniform(0, w, size=int(rng.integers(1, 4))):  # doors
            dw = int(rng.integers(18, 30))
            _rect(img, int(horizon * 0.1), horizon, int(x0), int(x0) + dw, _colour(rng, (0.45, 0.3, 0.2), 0.06))
        for x0 in rng.uniform(0, w, size=int(rng.integers(0, 3))):  # notice boards
            _rect(img, int(horizon * 0.25), int(horizon * 0.6), int(x0), int(x0) + 16, _colour(rng, (0.9, 0.9, 0.85)))
        img[horizon : horizon + 2] *= 0.6
        glow = np.exp(-(((xx - rng.uniform(0, w)) / 90.0) ** 2))[..., None]
        img *= 0.85 + 0.3 * glow
    else:  # random: RandPerson-like arbitrary textures
        img[:] = _colour(rng, tuple(rng.uniform(0.2, 0.8, 3)), 0.0)
        for _ in range(int(rng.integers(6, 14))):
            y0, x0 = int(rng.integers(-20, h)), int(rng.integers(-20, w))
            _rect(img, y0, y0 + int(rng.integers(10, 80)), x0, x0 + int(rng.integers(10, 120)),
                  _colour(rng, tuple(rng.uniform(0.1, 0.9, 3)), 0.0))
        img *= 1 + 0.12 * coarse + 0.08 * fine
    if style == "night":
        img *= 0.55
    # soft shadows and vignetting-like brightness variation; pull towards the mean to mute the scene
    img *= 1 + 0.12 * _smooth_noise(rng, h, w, 48)[..., None]
    img = 0.4 * img + 0.6 * img.mean(axis=(0, 1), keepdims=True)
    lum = img @ np.array([0.3, 0.59, 0.11], np.float32)
    img = 0.55 * img + 0.45 * lum[..., None]  # real backgrounds are mostly greyish: pavement, walls
    return np.clip(img, 0, 1)


def thermal_scene(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """A thermal view (h, w, 1) of a scene: cool, low-contrast structure plus a few warm spots."""
    h, w, _ = scene.shape
    lum = scene @ np.array([0.3, 0.59, 0.11], np.float32)
    base = rng.uniform(0.14, 0.3)
    out = base + 0.18 * (lum - lum.mean()) + 0.05 * _smooth_noise(rng, h, w, 30)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    for _ in range(int(rng.integers(0, 4))):  # warm objects (lamps, vents, engines)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 12)
        out += rng.uniform(0.15, 0.35) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    return np.clip(out, 0, 1)[..., None].astype(np.float32)


def _defocus(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (1, C, H, W)."""
    radius = int(np.ceil(2.5 * sigma))
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    taps = taps / taps.sum()
    c = img.shape[1]
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                   groups=c)
    return F.conv2d(F.pad(img, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def background_variants(camera: Camera, height: int, width: int, num: int = NUM_VARIANTS) -> torch.Tensor:
    """``num`` background crops (num, C, height, width) of the camera's scene; C = 1 for thermal cameras."""
    rng = np.random.default_rng(camera.scene_seed)
    scene = draw_scene(rng, camera.scene)
    if camera.infrared:
        scene = thermal_scene(rng, scene)
    src = torch.from_numpy(np.ascontiguousarray(scene.transpose(2, 0, 1)))[None]
    h, w = src.shape[-2:]
    out = []
    for _ in range(num):
        zoom = rng.uniform(0.8, 1.25)
        ch, cw = min(h, int(round(height * zoom))), min(w, int(round(width * zoom)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = src[..., y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crop = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        crop = _defocus(crop, float(rng.uniform(1.0, 2.2)))  # the pedestrian is in focus, the scene behind less
        # clouds, shadows, reflections: each area of the view is lit a little differently
        jitter = rng.uniform(0.85, 1.15) * (1 + rng.normal(0, 0.04, crop.shape[1])).astype(np.float32)
        out.append(crop * torch.from_numpy(jitter.astype(np.float32)).view(1, -1, 1, 1))
    return torch.cat(out).contiguous()
