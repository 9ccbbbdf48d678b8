"""Render whole batches of images: figure -> detection box -> background -> occluder -> camera.

Everything random about an image is decided beforehand in its :class:`Shots` row (sampled by the
world plan with NumPy); the only randomness here is sensor noise from a generator seeded per
chunk, so a chunk renders identically whichever process renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .attributes import COLOURS, HAIR_COLOURS, SKIN_TONES, Identities
from .figure import FigureBatch, render_figure
from .occlusion import occlude
from .scene import Camera, background_variants, hue_rotation
from .thermal import thermal_imaging, thermal_materials

BUILD_FACTORS = np.array([0.88, 1.0, 1.14], np.float32)


@dataclass
class Shots:
    """Per-image parameters, parallel arrays of length N (NumPy)."""

    ident: np.ndarray  # identity row in the world table; -1: no person (background-only junk)
    cam: np.ndarray  # 0-based camera
    theta: np.ndarray  # view angle
    phase: np.ndarray  # gait phase
    amp: np.ndarray  # gait amplitude
    scale: np.ndarray  # detection box zoom (1: body fills the box as usual)
    aspect: np.ndarray  # horizontal squeeze of the box
    dx: np.ndarray  # box offset, fraction of the half-width
    dy: np.ndarray  # box offset, fraction of the half-height
    bg: np.ndarray  # background variant
    gain: np.ndarray  # per-image brightness jitter
    blur: np.ndarray  # per-image blur multiplier
    occ_kind: np.ndarray  # occlusion.NONE .. PERSON
    occ_target: np.ndarray  # fraction of the body to hide
    occ_shift: np.ndarray  # placement choice in [0, 1)
    occ_colour: np.ndarray  # (N, 3) occluder colour
    occ_ident: np.ndarray  # identity of an occluding pedestrian

    def __len__(self) -> int:
        return int(self.ident.shape[0])

    def take(self, index: np.ndarray) -> Shots:
        return Shots(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Shots]) -> Shots:
        return Shots(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Shots)})


def rgb_materials(ids: Identities) -> np.ndarray:
    """(n, 9, 3) material colours in 0..1: skin, hair, upper, pattern, lower, shoes, backpack, handbag, hat."""
    cols = np.array(list(COLOURS.values()), np.float32)
    hair = np.array(list(HAIR_COLOURS.values()), np.float32)
    skin = np.array(SKIN_TONES, np.float32)
    off = ids.colour_offset.astype(np.float32)
    table = np.stack(
        [
            skin[ids.skin],
            hair[ids.hair_colour],
            cols[ids.upper_colour] + off[:, 0],
            cols[ids.pattern_colour] + off[:, 1],
            cols[ids.lower_colour] + off[:, 2],
            cols[ids.shoes_colour] + off[:, 3],
            cols[ids.backpack_colour] + off[:, 4],
            cols[ids.handbag_colour] + off[:, 4],
            cols[ids.hat_colour] + off[:, 4],
        ],
        axis=1,
    )
    return np.clip(table / 255.0, 0.0, 1.0)


class WorldContext:
    """What a renderer needs: identity tables, cameras and their background variants."""

    def __init__(self, ids: Identities, cameras: list[Camera], height: int = 128, width: int = 64):
        self.ids = ids
        self.cameras = cameras
        self.height, self.width = height, width
        t = torch.as_tensor
        self.rgb = t(rgb_materials(ids))
        self.thermal = t(thermal_materials(ids))
        self.attr = {
            "gender": t(ids.gender, dtype=torch.long),
            "build": t(BUILD_FACTORS[ids.build]),
            "height": t(ids.height, dtype=torch.float32),
            "hair_length": t(ids.hair_length, dtype=torch.long),
            "upper_type": t(ids.upper_type, dtype=torch.long),
            "pattern": t(ids.pattern, dtype=torch.long),
            "lower_type": t(ids.lower_type, dtype=torch.long),
            "backpack": t(ids.backpack, dtype=torch.bool),
            "handbag": t(ids.handbag, dtype=torch.bool),
            "handbag_side": t(ids.handbag_side, dtype=torch.long),
            "hat": t(ids.hat, dtype=torch.bool),
        }
        self.cam_gain = t(np.array([c.gain for c in cameras], np.float32))
        self.cam_sat = t(np.array([c.saturation for c in cameras], np.float32))
        self.cam_contrast = t(np.array([c.contrast for c in cameras], np.float32))
        self.cam_blur = t(np.array([c.blur for c in cameras], np.float32))
        self.cam_noise = t(np.array([c.noise for c in cameras], np.float32))
        self.cam_light = t(np.array([c.light for c in cameras], np.float32))
        self.cam_hue = t(np.stack([hue_rotation(c.hue) for c in cameras]))  # (cams, 3, 3)
        self.cam_gamma = t(np.array([c.gamma for c in cameras], np.float32))  # (cams, 3)
        self._backgrounds: dict[int, Tensor] = {}

    def backgrounds(self, cam: int) -> Tensor:
        if cam not in self._backgrounds:
            self._backgrounds[cam] = background_variants(self.cameras[cam], self.height, self.width)
        return self._backgrounds[cam]

    def figures(self, ident: Tensor, theta: Tensor, phase: Tensor, amp: Tensor, light: Tensor, thermal: bool,
                size_factor: float = 1.0, drop: float = 0.0) -> FigureBatch:
        """Figures of identities ``ident`` in the canonical frame (feet near the bottom, centred)."""
        h, w = self.height, self.width
        a = {k: v[ident] for k, v in self.attr.items()}
        size = 0.88 * h * a.pop("height") * size_factor
        feet = 0.955 * h + drop
        n = ident.shape[0]
        return FigureBatch(
            cx=torch.full((n,), w / 2.0), top=feet - size, size=size, theta=theta, phase=phase, amp=amp, light=light,
            materials=(self.thermal if thermal else self.rgb)[ident], thermal=thermal, **a,
        )


def _box_grid(scale: Tensor, aspect: Tensor, dx: Tensor, dy: Tensor, height: int, width: int) -> Tensor:
    """Sampling grid (B, H, W, 2) of ``grid_sample``: output box -> canonical frame, zooming about the body.

    The map is axis-aligned (zoom, squeeze, shift), so the grid is built from one row and one column.
    """
    centre_y = -0.03
    xs = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
    gx = xs.view(1, -1) / (scale * aspect).view(-1, 1) - dx.view(-1, 1)  # (B, W)
    gy = ys.view(1, -1) / scale.view(-1, 1) + (centre_y - centre_y / scale - dy).view(-1, 1)  # (B, H)
    b = scale.shape[0]
    return torch.stack([gx.view(b, 1, width).expand(b, height, width), gy.view(b, height, 1).expand(b, height, width)],
                       dim=-1)


def _blur(img: Tensor, sigma: Tensor) -> Tensor:
    """Separable 5-tap Gaussian blur with a per-image sigma (B,): one depthwise convolution per direction."""
    b, c, h, w = img.shape
    taps = torch.arange(-2, 3, dtype=torch.float32)
    weights = torch.exp(-(taps.view(1, -1) ** 2) / (2 * sigma.clamp_min(0.05).view(-1, 1) ** 2))
    weights = (weights / weights.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (B * C, 5)
    x = F.pad(img.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, weights.view(b * c, 1, 1, 5), groups=b * c)
    return F.conv2d(x, weights.view(b * c, 1, 5, 1), groups=b * c).view(b, c, h, w)


def render_shots(ctx: WorldContext, shots: Shots, thermal: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``shots`` (all of one modality); returns uint8 images (N, H, W, 3) and hidden body fractions (N,)."""
    gen = torch.Generator().manual_seed(int(seed))
    t = torch.as_tensor
    n, h, w = len(shots), ctx.height, ctx.width
    ident = t(shots.ident, dtype=torch.long)
    person = ident >= 0
    cam = t(shots.cam, dtype=torch.long)
    fig = ctx.figures(ident.clamp_min(0), t(shots.theta, dtype=torch.float32), t(shots.phase, dtype=torch.float32),
                      t(shots.amp, dtype=torch.float32), ctx.cam_light[cam], thermal)
    canvas = render_figure(fig, h, w)
    channels = canvas.rgb.shape[1]
    rgba = torch.cat([canvas.rgb, canvas.alpha.unsqueeze(1)], 1) * person.view(-1, 1, 1, 1)

    # detection box: zoom, squeeze and shift (bilinear resampling of the canonical frame)
    grid = _box_grid(t(shots.scale, dtype=torch.float32), t(shots.aspect, dtype=torch.float32),
                     t(shots.dx, dtype=torch.float32), t(shots.dy, dtype=torch.float32), h, w)
    rgba = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    alpha = rgba[:, channels]

    # background variants of each image's camera
    bg = torch.empty(n, channels, h, w)
    for c in torch.unique(cam).tolist():
        sel = (cam == c).nonzero().view(-1)
        variants = ctx.backgrounds(c)
        bg[sel] = variants[t(shots.bg, dtype=torch.long)[sel] % variants.shape[0]]
    img = rgba[:, :channels] + (1 - alpha.unsqueeze(1)) * bg

    hidden = np.zeros(n, np.float32)
    occluded = np.nonzero(shots.occ_kind > 0)[0]
    if occluded.size:
        sub = t(occluded, dtype=torch.long)
        other = None
        occ_ident = t(shots.occ_ident[occluded], dtype=torch.long)
        if (shots.occ_kind[occluded] == 5).any():
            rng_theta = torch.rand(len(occluded), generator=gen) * 6.2832
            ofig = ctx.figures(occ_ident.clamp_min(0), rng_theta, rng_theta * 1.7, torch.full((len(occluded),), 0.8),
                               ctx.cam_light[cam[sub]], thermal, size_factor=1.08, drop=0.04 * h)
            oc = render_figure(ofig, h, w)
            other = F.grid_sample(torch.cat([oc.rgb, oc.alpha.unsqueeze(1)], 1), grid[sub], mode="bilinear",
                                  padding_mode="zeros", align_corners=False)
        img_sub, frac = occlude(img[sub], alpha[sub], t(shots.occ_kind[occluded], dtype=torch.long),
                                t(shots.occ_target[occluded], dtype=torch.float32),
                                t(shots.occ_shift[occluded], dtype=torch.float32),
                                t(shots.occ_colour[occluded], dtype=torch.float32), other)
        img[sub] = img_sub
        hidden[occluded] = frac.numpy()

    sigma = ctx.cam_blur[cam] * t(shots.blur, dtype=torch.float32)
    if thermal:
        img = _blur(img, sigma * 1.3)
        img = thermal_imaging(img, ctx.cam_gain[cam].mean(1) * t(shots.gain, dtype=torch.float32),
                              ctx.cam_noise[cam], gen)
        img = img.expand(-1, 3, -1, -1)
    else:
        gain = ctx.cam_gain[cam] * t(shots.gain, dtype=torch.float32).view(-1, 1)
        img = img * gain.view(n, 3, 1, 1)
        grey = (img * torch.tensor([0.3, 0.59, 0.11]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        img = torch.lerp(grey.expand_as(img), img, ctx.cam_sat[cam].view(-1, 1, 1, 1))
        img = 0.45 + ctx.cam_contrast[cam].view(-1, 1, 1, 1) * (img - 0.45)
        # the camera's colour response: a hue rotation and a gamma per channel
        img = torch.bmm(ctx.cam_hue[cam], img.reshape(n, 3, h * w)).view(n, 3, h, w)
        img = img.clamp_min(0.0).pow(ctx.cam_gamma[cam].view(n, 3, 1, 1))
        img = _blur(img, sigma)
        img = img + ctx.cam_noise[cam].view(-1, 1, 1, 1) * torch.randn(n, 3, h, w, generator=gen)
    out = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return out, hidden
