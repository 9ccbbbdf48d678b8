"""An articulated pedestrian drawn for a whole batch: a 3-D stick skeleton, rotated to the viewpoint,
projected orthographically and skinned with soft primitives (see :mod:`.primitives`).

Body coordinates are in units of body height: ``y`` down from the top of the head (0) to the soles
(1), ``x`` to the person's left, ``z`` forward. The view angle ``theta`` turns the body about the
vertical axis: 0 faces the camera, pi shows the back, +-pi/2 a side. Walking swings legs and arms
in the sagittal plane with the gait ``phase`` and amplitude ``amp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .primitives import Canvas, Shape, capsule, coverage, ellipse, paint, tapered_box

# Material slots of the colour table (B, NUM_MATERIALS, C).
SKIN, HAIR, UPPER, PATTERN, LOWER, SHOES, BACKPACK, HANDBAG, HAT = range(9)
NUM_MATERIALS = 9

# Upper types, patterns and lower types (indices into attributes.UPPER_TYPES / PATTERNS / LOWER_TYPES).
TSHIRT, SHIRT, JACKET = 0, 1, 2
PLAIN, STRIPED, CHECKED, LOGO = 0, 1, 2, 3
TROUSERS, SHORTS, SKIRT = 0, 1, 2


@dataclass
class FigureBatch:
    """Per-sample figure parameters, every field a tensor with leading dimension B."""

    cx: Tensor  # horizontal centre (pixels)
    top: Tensor  # top of the head (pixels)
    size: Tensor  # body height (pixels)
    gender: Tensor  # 0 man, 1 woman
    build: Tensor  # width multiplier (~0.85 .. 1.2)
    theta: Tensor  # view angle (radians)
    phase: Tensor  # gait phase (radians)
    amp: Tensor  # gait amplitude 0 (standing) .. 1
    light: Tensor  # horizontal light direction -1 .. 1
    hair_length: Tensor  # 0 short, 1 medium, 2 long
    upper_type: Tensor
    pattern: Tensor
    lower_type: Tensor
    backpack: Tensor  # bool
    handbag: Tensor  # bool
    handbag_side: Tensor  # -1 / +1 (person's right / left)
    hat: Tensor  # bool
    materials: Tensor  # (B, NUM_MATERIALS, C) colours in 0..1 (C = 3 RGB, C = 1 thermal)
    thermal: bool = False

    def __len__(self) -> int:
        return int(self.cx.shape[0])

    def subset(self, index: Tensor) -> FigureBatch:
        """The figures at ``index`` (a new batch)."""
        fields = {k: (v[index] if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return FigureBatch(**fields)


class _Projector:
    """Body coordinates (x, y, z in body heights) -> image x, y and depth (pixels)."""

    def __init__(self, fig: FigureBatch):
        self.cos, self.sin = torch.cos(fig.theta), torch.sin(fig.theta)
        self.fig = fig

    def __call__(self, x: Tensor | float, y: Tensor | float, z: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        f = self.fig
        px = f.cx + f.size * (x * self.cos + z * self.sin)
        py = f.top + f.size * y
        pz = f.size * (-x * self.sin + z * self.cos)
        return px, py, pz

    def width(self, half_x: Tensor | float, half_z: Tensor | float) -> Tensor:
        """Projected half-width (pixels) of a body-frame ellipse with half-axes ``half_x``, ``half_z``."""
        return self.fig.size * torch.sqrt((half_x * self.cos) ** 2 + (half_z * self.sin) ** 2)

    def depth(self, half_x: Tensor | float, half_z: Tensor | float) -> Tensor:
        """Half-extent along the viewing direction (pixels) of the same ellipse."""
        return self.fig.size * torch.sqrt((half_x * self.sin) ** 2 + (half_z * self.cos) ** 2)


def _mat(fig: FigureBatch, slot: int) -> Tensor:
    return fig.materials[:, slot, :].unsqueeze(-1).unsqueeze(-1)  # (B, C, 1, 1)


def _shade(fig: FigureBatch, shape: Shape, strength: float = 1.0) -> Tensor:
    """Lambert-like shading from the lateral coordinate: brighter in the middle and toward the light."""
    nz = 1.0 - shape.u * shape.u  # parabolic stand-in for sqrt(1 - u^2)
    if fig.thermal:
        return (0.82 + 0.18 * nz).unsqueeze(1)
    light = fig.light.view(-1, 1, 1)
    s = 0.58 + strength * (0.32 * nz + 0.2 * light * shape.u)
    return s.unsqueeze(1)


def _mix(a: Tensor, b: Tensor, m: Tensor) -> Tensor:
    """``a`` where m = 0, ``b`` where m = 1 (m (B, h, w) or (B, 1, 1))."""
    m = m.unsqueeze(1)
    shape = torch.broadcast_shapes(a.shape, b.shape, m.shape)
    return torch.lerp(a.expand(shape), b.expand(shape), m.expand(shape))


def _bool(x: Tensor) -> Tensor:
    return x.to(torch.float32).view(-1, 1, 1)


def _pattern_mask(fig: FigureBatch, shape: Shape, period: Tensor) -> Tensor:
    """Soft 0..1 mask of the secondary colour for stripes and checks (flat garments get 0)."""
    if fig.thermal:
        return torch.zeros_like(shape.sdf)
    rel_y = (shape.win.ys - fig.top.view(-1, 1, 1)) / period.view(-1, 1, 1)
    stripes = torch.sin(2 * math.pi * rel_y)
    rel_x = (shape.win.xs - fig.cx.view(-1, 1, 1)) / period.view(-1, 1, 1)
    checks = stripes * torch.sin(2 * math.pi * rel_x + 0.5)
    m_stripe = (0.5 + 1.6 * stripes).clamp(0.0, 1.0) * _bool(fig.pattern == STRIPED)
    m_check = (0.5 + 2.0 * checks).clamp(0.0, 1.0) * _bool(fig.pattern == CHECKED)
    return m_stripe + m_check


def render_figure(fig: FigureBatch, height: int, width: int, canvas: Canvas | None = None) -> Canvas:
    """Draw the batch of figures on an empty (or the given) canvas and return it."""
    b = len(fig)
    channels = fig.materials.shape[-1]
    cv = canvas if canvas is not None else Canvas.empty(b, channels, height, width, fig.materials.device)
    proj = _Projector(fig)
    s = fig.size
    woman = fig.gender.to(torch.float32)
    build = fig.build
    zero = torch.zeros_like(s)
    skin, upper, lower = _mat(fig, SKIN), _mat(fig, UPPER), _mat(fig, LOWER)
    period = s * 0.05

    # --- body measurements (body-height units) -------------------------------------------------
    sh_hw = (0.118 - 0.02 * woman) * build  # shoulder half-width
    hip_hw = (0.09 + 0.012 * woman) * build
    body_dz = 0.058 * build
    jacket = _bool(fig.upper_type == JACKET).view(-1)
    sh_hw = sh_hw + 0.008 * jacket
    y_sh, y_hip = 0.16, 0.5

    # --- gait ---------------------------------------------------------------------------------------
    swing = 0.42 * fig.amp * torch.sin(fig.phase)
    legs = []
    for side, alpha, ph in ((1.0, swing, fig.phase), (-1.0, -swing, fig.phase + math.pi)):
        bend = fig.amp * (0.12 + 0.55 * torch.sin(ph + 2.2).clamp_min(0.0))
        hx = side * 0.05 * build
        knee_y = y_hip + 0.235 * torch.cos(alpha)
        knee_z = 0.235 * torch.sin(alpha)
        ank_y = knee_y + 0.225 * torch.cos(alpha - bend)
        ank_z = knee_z + 0.225 * torch.sin(alpha - bend)
        legs.append((side, hx, knee_y, knee_z, ank_y, ank_z))
    arms = []
    for side, beta in ((1.0, -0.75 * swing), (-1.0, 0.75 * swing)):
        ax = side * (sh_hw + 0.012)
        elbow_x = ax + side * 0.018
        elbow_y = y_sh + 0.025 + 0.165 * torch.cos(beta)
        elbow_z = 0.165 * torch.sin(beta)
        fore = beta + 0.15 + 0.35 * fig.amp * (0.5 + 0.5 * torch.sin(beta * 3.0))
        wrist_x = elbow_x + side * 0.008
        wrist_y = elbow_y + 0.15 * torch.cos(fore)
        wrist_z = elbow_z + 0.15 * torch.sin(fore)
        arms.append((side, ax, elbow_x, elbow_y, elbow_z, wrist_x, wrist_y, wrist_z))

    # --- long hair (behind the head, over the upper back) -------------------------------------------
    long_hair = fig.hair_length == 2
    if bool(long_hair.any()):
        hcx, _, hcz = proj(zero, 0.0, -body_dz - 0.004)
        hw = proj.width(torch.full_like(s, 0.052), torch.full_like(s, 0.03))
        shape = tapered_box(cv, hcx, fig.top + s * 0.045, fig.top + s * (0.22 + 0.04 * (build - 1)), hw * 0.95,
                            hw * 1.15, hcz, proj.depth(0.052, 0.03), hw * 0.6)
        paint(cv, shape, _mat(fig, HAIR) * _shade(fig, shape, 0.6), mask=long_hair)

    # --- backpack ----------------------------------------------------------------------------------
    if bool(fig.backpack.any()):
        bx, _, bz = proj(zero, 0.0, -(body_dz + 0.045))
        half_w = proj.width(torch.full_like(s, 0.078), torch.full_like(s, 0.05))
        shape = tapered_box(cv, bx, fig.top + s * 0.19, fig.top + s * 0.43, half_w * 0.92, half_w, bz,
                            proj.depth(0.078, 0.05), half_w * 0.45)
        col = _mat(fig, BACKPACK) * _shade(fig, shape)
        # a darker pocket on the lower half, seen from the back
        pocket = ((shape.t > 0.55) & (shape.u.abs() < 0.6)).to(torch.float32) * (0.5 - 0.5 * proj.cos.view(-1, 1, 1))
        paint(cv, shape, _mix(col, col * 0.7, pocket), mask=fig.backpack)

    # --- legs and shoes ----------------------------------------------------------------------------
    trousers = _bool(fig.lower_type == TROUSERS)
    shorts = _bool(fig.lower_type == SHORTS)
    leg_wide = 1.0 + 0.12 * trousers.view(-1)
    for _side, hx, knee_y, knee_z, ank_y, ank_z in legs:
        hip = proj(hx, y_hip - 0.01, zero)
        knee = proj(hx, knee_y, knee_z)
        ankle = proj(hx, ank_y, ank_z)
        shin = capsule(cv, knee[0], knee[1], ankle[0], ankle[1], s * 0.034 * build * leg_wide,
                       s * 0.026 * build * leg_wide, knee[2], ankle[2])
        col = _mix(skin, lower, trousers.expand_as(shin.sdf)) * _shade(fig, shin) if not shin.win.empty else skin
        paint(cv, shin, col)
        heel = proj(hx, ank_y + 0.025, ank_z - 0.02)
        toe = proj(hx, ank_y + 0.035, ank_z + 0.062)
        shoe = capsule(cv, heel[0], heel[1], toe[0], toe[1], s * 0.022, s * 0.02, heel[2], toe[2])
        paint(cv, shoe, _mat(fig, SHOES) * _shade(fig, shoe, 0.7), depth_bias=0.5)
        # the top of the thigh sits inside the pelvis: push it back so the torso's hem always covers it
        thigh = capsule(cv, hip[0], hip[1], knee[0], knee[1], s * 0.046 * build * leg_wide,
                        s * 0.036 * build * leg_wide, hip[2] - s * 0.04, knee[2])
        cloth = trousers + shorts * (thigh.t < 0.72).to(torch.float32)
        paint(cv, thigh, _mix(skin, lower, cloth) * _shade(fig, thigh))

    # --- skirt -------------------------------------------------------------------------------------
    skirt = fig.lower_type == SKIRT
    if bool(skirt.any()):
        kx, _, kz = proj(zero, 0.0, zero)
        hh = hip_hw + 0.012
        flare = 1.0 + 0.25 * fig.amp
        shape = tapered_box(cv, kx, fig.top + s * (y_hip - 0.07), fig.top + s * 0.69, proj.width(hh, body_dz + 0.01),
                            proj.width(hh * 1.2 * flare, (body_dz + 0.03) * flare), kz,
                            proj.depth(hh * 1.2, body_dz + 0.03), s * 0.01)
        paint(cv, shape, lower * _shade(fig, shape), depth_bias=0.3, mask=skirt)

    # --- torso -------------------------------------------------------------------------------------
    tx, _, tz = proj(zero, 0.0, zero)
    t_y0 = fig.top + s * (y_sh - 0.01)
    t_y1 = fig.top + s * (y_hip + 0.03)
    hw0 = proj.width(sh_hw, body_dz)
    hw1 = proj.width(hip_hw + 0.016, body_dz + 0.004)
    lean = 0.06 * fig.amp * proj.sin
    torso = tapered_box(cv, tx, t_y0, t_y1, hw0, hw1, tz, proj.depth(sh_hw, body_dz), s * 0.035, lean)
    if not torso.win.empty:
        cosv = proj.cos.view(-1, 1, 1)
        col = _mix(upper, _mat(fig, PATTERN), _pattern_mask(fig, torso, period))
        # open jacket: the inner top shows down the middle when the front faces the camera
        centre_u = 0.6 * proj.sin.view(-1, 1, 1)
        strip = ((0.2 * cosv.clamp_min(0) - (torso.u - centre_u).abs()) * 8).clamp(0, 1) * (torso.t > 0.04)
        col = _mix(col, _mat(fig, PATTERN), strip * _bool(fig.upper_type == JACKET))
        # logo on the chest, front only
        logo_box = torch.maximum((torso.u - centre_u).abs() - 0.28, (torso.t - 0.3).abs() - 0.12)
        logo = (-logo_box * 10).clamp(0, 1) * ((cosv - 0.3) * 4).clamp(0, 1) * _bool(fig.pattern == LOGO)
        if not fig.thermal:
            col = _mix(col, _mat(fig, PATTERN), logo)
        # backpack straps, front only
        straps = ((0.08 - ((torso.u - centre_u).abs() - 0.5).abs()) * 12).clamp(0, 1) * (torso.t < 0.6)
        straps = straps * ((cosv - 0.25) * 4).clamp(0, 1) * _bool(fig.backpack)
        col = _mix(col, _mat(fig, BACKPACK) * 0.7, straps)
        paint(cv, torso, col * _shade(fig, torso))

    # --- handbag with strap -----------------------------------------------------------------------
    if bool(fig.handbag.any()):
        side = fig.handbag_side.to(torch.float32)
        a = proj(side * sh_hw * 0.7, torch.full_like(s, y_sh + 0.005), zero)
        bag = proj(side * (hip_hw + 0.045), torch.full_like(s, y_hip - 0.04), zero)
        strap = capsule(cv, a[0], a[1], bag[0], bag[1], s * 0.008, s * 0.008, a[2] + s * 0.07, bag[2] + s * 0.07)
        paint(cv, strap, _mat(fig, HANDBAG) * 0.6, mask=fig.handbag)
        half_w = proj.width(torch.full_like(s, 0.028), torch.full_like(s, 0.07))
        y0 = bag[1] - s * 0.02
        shape = tapered_box(cv, bag[0], y0, y0 + s * 0.1, half_w * 0.9, half_w, bag[2], proj.depth(0.028, 0.07),
                            s * 0.012)
        paint(cv, shape, _mat(fig, HANDBAG) * _shade(fig, shape), depth_bias=0.5, mask=fig.handbag)

    # --- arms and hands ----------------------------------------------------------------------------
    long_sleeve = _bool(fig.upper_type != TSHIRT)
    for _side, ax, elbow_x, elbow_y, elbow_z, wrist_x, wrist_y, wrist_z in arms:
        sh = proj(ax, torch.full_like(s, y_sh + 0.03), zero)
        el = proj(elbow_x, elbow_y, elbow_z)
        wr = proj(wrist_x, wrist_y, wrist_z)
        up = capsule(cv, sh[0], sh[1], el[0], el[1], s * 0.032 * build, s * 0.026 * build, sh[2], el[2])
        if not up.win.empty:
            sleeve = torch.maximum(long_sleeve, (up.t < 0.55).to(torch.float32))
            garment = _mix(upper, _mat(fig, PATTERN), _pattern_mask(fig, up, period))
            paint(cv, up, _mix(skin, garment, sleeve) * _shade(fig, up))
        fa = capsule(cv, el[0], el[1], wr[0], wr[1], s * 0.026 * build, s * 0.021 * build, el[2], wr[2])
        if not fa.win.empty:
            garment = _mix(upper, _mat(fig, PATTERN), _pattern_mask(fig, fa, period))
            paint(cv, fa, _mix(skin, garment, long_sleeve.expand_as(fa.sdf)) * _shade(fig, fa))
        hand = ellipse(cv, wr[0], wr[1] + s * 0.018, s * 0.021, s * 0.026, wr[2], s * 0.02)
        paint(cv, hand, skin * _shade(fig, hand, 0.6))

    # --- neck, head, face and hair -----------------------------------------------------------------
    n0 = proj(zero, 0.105, zero)
    n1 = proj(zero, y_sh + 0.02, zero)
    neck = capsule(cv, n0[0], n0[1], n1[0], n1[1], s * 0.024, s * 0.028, n0[2], n1[2])
    paint(cv, neck, skin * _shade(fig, neck, 0.7) * 0.92)
    hx, hy, hz = proj(zero, 0.07, zero)
    rx = s * (0.05 + 0.004 * (fig.hair_length > 0).to(torch.float32))
    head = ellipse(cv, hx, hy, rx, s * 0.07, hz, s * 0.05)
    if not head.win.empty:
        nx, ny = head.u, head.t * 2.0 - 1.0
        nz = torch.sqrt((1.0 - nx * nx - ny * ny).clamp_min(0.0))
        fx, fz = proj.sin.view(-1, 1, 1), proj.cos.view(-1, 1, 1)
        facing = nx * fx + nz * fz
        hairline = -0.35 + 0.05 * (fig.hair_length.view(-1, 1, 1) > 0)
        nape = torch.where(fig.hair_length.view(-1, 1, 1) == 0, 0.55, 1.5)
        face = ((facing - 0.2) * 5).clamp(0, 1) * ((ny - hairline) * 6).clamp(0, 1)
        back_neck = ((ny - nape) * 6).clamp(0, 1)
        skin_w = torch.maximum(face, back_neck)
        col = _mix(_mat(fig, HAIR), skin, skin_w)
        if not fig.thermal:
            for off in (-0.42, 0.42):
                ang = fig.theta + off
                ex = (torch.sin(ang) * 0.62).view(-1, 1, 1)
                vis = ((torch.cos(ang) - 0.3) * 4).clamp(0, 1).view(-1, 1, 1)
                d2 = ((nx - ex) * rx.view(-1, 1, 1)) ** 2 + ((ny - 0.08) * s.view(-1, 1, 1) * 0.07) ** 2
                eye = (1.2 - d2).clamp(0, 1) * vis * face
                col = _mix(col, col * 0.35, eye)
        paint(cv, head, col * _shade(fig, head, 0.8))

    # --- hat -------------------------------------------------------------------------------------
    if bool(fig.hat.any()):
        dome = ellipse(cv, hx, hy - s * 0.018, rx * 1.1, s * 0.06, hz, s * 0.056)
        if not dome.win.empty:
            cut = dome.win.ys - (hy - s * 0.022).view(-1, 1, 1)
            cov = coverage(torch.maximum(dome.sdf, cut))
            paint(cv, dome, _mat(fig, HAT) * _shade(fig, dome), cov=cov, depth_bias=0.2, mask=fig.hat)
        brim = ellipse(cv, hx + rx * 0.8 * proj.sin, hy - s * 0.022, rx * (0.75 + 0.55 * proj.sin.abs()), s * 0.011,
                       hz + rx * proj.cos, s * 0.05)
        paint(cv, brim, _mat(fig, HAT) * 0.8, depth_bias=0.5, mask=fig.hat)
    return cv
