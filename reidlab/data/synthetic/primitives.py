"""Batched soft rasterisation of 2-D primitives with per-pixel depth (a tiny z-buffered painter).

Every primitive is evaluated for a whole batch at once, but only inside the window (row/column
range) that the union of its per-sample extents covers, so small parts (head, hands, shoes) cost
little. Edges are anti-aliased with a one-pixel ramp of the signed distance. Each primitive also
returns a signed lateral coordinate ``u`` in [-1, 1] across its width and a per-pixel depth, which
the figure uses for shading and occlusion (nearer = larger depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Canvas:
    """Premultiplied colour ``rgb`` (B, C, H, W), coverage ``alpha`` (B, H, W) and depth ``zbuf`` (B, H, W)."""

    rgb: Tensor
    alpha: Tensor
    zbuf: Tensor

    @classmethod
    def empty(cls, batch: int, channels: int, height: int, width: int, device: torch.device | str = "cpu") -> Canvas:
        return cls(
            rgb=torch.zeros(batch, channels, height, width, device=device),
            alpha=torch.zeros(batch, height, width, device=device),
            zbuf=torch.full((batch, height, width), -1e4, device=device),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.rgb.shape[-2]), int(self.rgb.shape[-1])


@dataclass
class Window:
    """Pixel-centre coordinates of a rectangular window: ``ys`` (1, h, 1), ``xs`` (1, 1, w) and its slices."""

    rows: slice
    cols: slice
    ys: Tensor
    xs: Tensor

    @property
    def empty(self) -> bool:
        return self.rows.stop <= self.rows.start or self.cols.stop <= self.cols.start


def window(canvas: Canvas, x_min: Tensor, x_max: Tensor, y_min: Tensor, y_max: Tensor, pad: float = 1.5) -> Window:
    """The window covering every sample's box ``[x_min, x_max] x [y_min, y_max]`` (per-sample tensors)."""
    height, width = canvas.shape
    y0 = max(0, int(torch.floor(y_min.min() - pad)))
    y1 = min(height, int(torch.ceil(y_max.max() + pad)) + 1)
    x0 = max(0, int(torch.floor(x_min.min() - pad)))
    x1 = min(width, int(torch.ceil(x_max.max() + pad)) + 1)
    y1, x1 = max(y0, y1), max(x0, x1)
    dev = canvas.rgb.device
    ys = (torch.arange(y0, y1, device=dev, dtype=torch.float32) + 0.5).view(1, -1, 1)
    xs = (torch.arange(x0, x1, device=dev, dtype=torch.float32) + 0.5).view(1, 1, -1)
    return Window(slice(y0, y1), slice(x0, x1), ys, xs)


_ONE = torch.ones(())


def _col(t: Tensor) -> Tensor:
    """Per-sample scalar (B,) -> (B, 1, 1) for broadcasting against a window."""
    return t.view(-1, 1, 1)


def coverage(sdf: Tensor) -> Tensor:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return (0.5 - sdf).clamp_(0.0, 1.0)


@dataclass
class Shape:
    """Result of evaluating a primitive on a window."""

    win: Window
    sdf: Tensor  # (B, h, w) signed distance in pixels
    u: Tensor  # (B, h, w) signed lateral coordinate, -1..1 across the width
    t: Tensor  # (B, h, w) coordinate along the main axis, 0..1
    depth: Tensor  # (B, h, w)


def capsule(
    canvas: Canvas, ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor, ra: Tensor, rb: Tensor, za: Tensor, zb: Tensor
) -> Shape:
    """Tapered capsule from ``a`` (radius ``ra``, depth ``za``) to ``b`` (radius ``rb``, depth ``zb``)."""
    r_max = torch.maximum(ra, rb)
    win = window(
        canvas, torch.minimum(ax, bx) - r_max, torch.maximum(ax, bx) + r_max,
        torch.minimum(ay, by) - r_max, torch.maximum(ay, by) + r_max,
    )
    if win.empty:
        return Shape(win, *(torch.empty(0),) * 4)
    dx, dy = _col(bx - ax), _col(by - ay)
    length2 = (dx * dx + dy * dy).clamp_min(1e-6)
    px = win.xs - _col(ax)  # (B, 1, w)
    py = win.ys - _col(ay)  # (B, h, 1)
    t = ((px * dx) / length2 + (py * dy) / length2).clamp_(0.0, 1.0)
    qx = px - t * dx
    qy = py - t * dy
    r = _col(ra) + t * _col(rb - ra)
    dist = torch.sqrt(qx * qx + qy * qy)
    sdf = dist - r
    cross = (px * dy - py * dx) / torch.sqrt(length2)
    u = (cross / r).clamp_(-1.0, 1.0)
    bulge = (r - dist * dist / r).clamp_min(0.0)  # parabolic cross-section, cheaper than a circle
    depth = _col(za) + t * _col(zb - za) + bulge
    return Shape(win, sdf, u, t, depth)


def ellipse(canvas: Canvas, cx: Tensor, cy: Tensor, rx: Tensor, ry: Tensor, cz: Tensor, rz: Tensor) -> Shape:
    """Axis-aligned ellipse (an ellipsoid seen from the front: depth bulges by ``rz``)."""
    win = window(canvas, cx - rx, cx + rx, cy - ry, cy + ry)
    if win.empty:
        return Shape(win, *(torch.empty(0),) * 4)
    nx = (win.xs - _col(cx)) / _col(rx)  # (B, 1, w)
    ny = (win.ys - _col(cy)) / _col(ry)  # (B, h, 1)
    rho2 = nx * nx + ny * ny
    rho = torch.sqrt(rho2)
    # Distance approximation: radial distance scaled by the local radius (exact for circles).
    local_r = torch.sqrt((nx * _col(rx)) ** 2 + (ny * _col(ry)) ** 2) / rho.clamp_min(1e-4)
    sdf = (rho - 1.0) * local_r
    depth = _col(cz) + _col(rz) * (1.0 - rho2).clamp_min(0.0)
    t = (ny * 0.5 + 0.5).expand_as(sdf)
    return Shape(win, sdf, nx.expand_as(sdf).clamp(-1.0, 1.0), t, depth)


def tapered_box(
    canvas: Canvas,
    cx: Tensor,
    y0: Tensor,
    y1: Tensor,
    hw0: Tensor,
    hw1: Tensor,
    cz: Tensor,
    dz: Tensor,
    rounding: Tensor,
    lean: Tensor | None = None,
) -> Shape:
    """Vertical box from ``y0`` to ``y1`` whose half-width goes linearly from ``hw0`` to ``hw1``.

    ``lean`` shifts the centre by ``lean * (y - y0)`` (a body leaning forward); corners are rounded by
    ``rounding`` pixels; the depth bulges by ``dz`` across the width (an elliptic cylinder).
    """
    lean = torch.zeros_like(cx) if lean is None else lean
    hw_max = torch.maximum(hw0, hw1)
    shift = lean * (y1 - y0)
    win = window(
        canvas, cx + torch.minimum(shift, torch.zeros_like(shift)) - hw_max,
        cx + torch.maximum(shift, torch.zeros_like(shift)) + hw_max, y0, y1,
    )
    if win.empty:
        return Shape(win, *(torch.empty(0),) * 4)
    height = _col(y1 - y0).clamp_min(1e-3)
    t = (win.ys - _col(y0)) / height  # (B, h, 1)
    hw = _col(hw0) + t.clamp(0.0, 1.0) * _col(hw1 - hw0)
    x = win.xs - _col(cx) - _col(lean) * (win.ys - _col(y0))  # (B, h, w)
    rr = _col(rounding)
    qx = x.abs() - hw + rr
    qy = (torch.abs(win.ys - _col(y0 + y1) * 0.5) - height * 0.5 + rr)
    outside = torch.sqrt(qx.clamp_min(0.0) ** 2 + qy.clamp_min(0.0) ** 2)
    inside = torch.maximum(qx, qy.expand_as(qx)).clamp_max(0.0)
    sdf = outside + inside - rr
    u = (x / hw).clamp_(-1.0, 1.0)
    depth = _col(cz) + _col(dz) * (1.0 - u * u)
    return Shape(win, sdf, u, t.expand_as(sdf), depth)


def paint(
    canvas: Canvas,
    shape: Shape,
    colour: Tensor,
    cov: Tensor | None = None,
    depth_bias: float = 0.0,
    mask: Tensor | None = None,
) -> None:
    """Composite ``colour`` (B, C, h, w) or (B, C, 1, 1) where ``shape`` covers the canvas and is nearest.

    ``mask`` (B,) bool limits the primitive to some samples (an accessory only some people carry).
    """
    if shape.win.empty:
        return
    rows, cols = shape.win.rows, shape.win.cols
    cov = coverage(shape.sdf) if cov is None else cov
    if mask is not None:
        cov = cov * mask.to(cov.dtype).view(-1, 1, 1)
    depth = shape.depth + depth_bias if depth_bias else shape.depth
    zb = canvas.zbuf[:, rows, cols]
    nearer = depth > zb
    vis = cov * nearer
    canvas.rgb[:, :, rows, cols].lerp_(colour.expand(-1, -1, vis.shape[1], vis.shape[2]), vis.unsqueeze(1))
    canvas.alpha[:, rows, cols].lerp_(_ONE, vis)
    zb.copy_(torch.where(vis > 0.5, depth, zb))  # vis > 0.5 <=> nearer and mostly covered
