"""Occluders in front of the pedestrian: cars, poles, bins, boards and other pedestrians.

Each occluder is placed from the figure's own coverage profile so that it hides a requested
fraction (20-60 %) of the body: ground-standing objects (car, bin, board) rise from the bottom up
to the row where the fraction of the body below equals the target; a pole spans the columns
holding that fraction; another pedestrian is slid sideways until it overlaps the target fraction.
The measured fraction is returned with the images.
"""

from __future__ import annotations

import torch
from torch import Tensor

NONE, CAR, POLE, BIN, BOARD, PERSON = range(6)
OCCLUDER_NAMES = ("none", "car", "pole", "bin", "board", "person")


def _soft(d: Tensor) -> Tensor:
    """Coverage from a signed distance (negative inside)."""
    return (0.5 - d).clamp(0.0, 1.0)


def _grey(colour: Tensor) -> Tensor:
    """Thermal stand-in for an object colour: cool, weakly dependent on brightness."""
    return 0.18 + 0.15 * (colour @ torch.tensor([0.3, 0.59, 0.11])).unsqueeze(-1)


def bottom_rows(alpha: Tensor, target: Tensor) -> Tensor:
    """Per sample, the row above which a ground object must reach to hide ``target`` of the body."""
    rows = alpha.sum(-1)  # (B, H)
    below = rows.flip(-1).cumsum(-1).flip(-1) / rows.sum(-1, keepdim=True).clamp_min(1e-6)
    return (below > target.view(-1, 1)).sum(-1).to(torch.float32)


def band_columns(alpha: Tensor, target: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """Columns ``[x0, x1)`` holding ``target`` of the body, starting at body quantile ``start``."""
    cols = alpha.sum(-2)  # (B, W)
    cum = cols.cumsum(-1) / cols.sum(-1, keepdim=True).clamp_min(1e-6)
    q0 = (start * (1 - target)).view(-1, 1)
    x0 = (cum < q0).sum(-1).to(torch.float32)
    x1 = (cum < q0 + target.view(-1, 1)).sum(-1).to(torch.float32) + 1
    return x0, torch.maximum(x1, x0 + 3)


def occlude(
    img: Tensor,
    alpha: Tensor,
    kind: Tensor,
    target: Tensor,
    shift: Tensor,
    colour: Tensor,
    person: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw one occluder per image of ``img`` (B, C, H, W) over the body coverage ``alpha`` (B, H, W).

    ``kind`` (B,) occluder ids (module constants), ``target`` (B,) fraction of the body to hide,
    ``shift`` (B,) in [0, 1) a free placement choice, ``colour`` (B, 3) the object's RGB colour,
    ``person`` (B, C + 1, H, W) premultiplied colour + alpha of another pedestrian (used where
    ``kind == PERSON``). Returns the images and the measured hidden fraction of each body.
    """
    b, c, h, w = img.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, dtype=torch.float32) + 0.5).view(1, 1, w)
    col = colour if c == 3 else _grey(colour)
    occ_a = torch.zeros(b, h, w)
    occ_rgb = col.view(b, c, 1, 1).expand(b, c, h, w).clone()
    top = bottom_rows(alpha, target).view(-1, 1, 1)
    k = kind.view(-1, 1, 1)
    dark = torch.tensor([0.12, 0.13, 0.16]).view(1, 3, 1, 1)[:, :c] if c == 3 else torch.full((1, 1, 1, 1), 0.4)

    # car: a cabin with windows on a wider body, dark wheels at the bottom, darker towards the ground
    sh = shift.view(-1, 1, 1)
    body_top = top + 0.38 * (h - top)
    cab0, cab1 = w * (0.02 + 0.12 * sh), w * (0.86 + 0.12 * sh)
    cabin = torch.maximum(torch.maximum(cab0 - xs, xs - cab1), top - ys)
    above = (ys - (top + 5)).clamp(max=0) ** 2  # rounded top corners of the cabin (radius 5)
    corner = torch.maximum(torch.sqrt((xs - (cab0 + 5)).clamp(max=0) ** 2 + above),
                           torch.sqrt((xs - (cab1 - 5)).clamp(min=0) ** 2 + above)) - 5
    car = torch.maximum(_soft(torch.maximum(cabin, corner)), _soft(body_top - ys).expand(b, h, w)) * (k == CAR)
    window = (ys > top + 2) & (ys < body_top - 1) & (xs > cab0 + 3) & (xs < cab1 - 3) & ((xs - cab0) % 26 > 3)
    wheel_x = (xs - w * (0.15 + 0.7 * sh)).abs()
    wheels = _soft(torch.sqrt(wheel_x**2 + (ys - h) ** 2) - 0.2 * w)
    glass = torch.tensor([0.25, 0.32, 0.4]).view(1, 3, 1, 1)[:, :c] if c == 3 else torch.full((1, 1, 1, 1), 0.2)
    shade = (1.08 - 0.3 * ((ys - top) / (h - top).clamp_min(1)).clamp(0, 1)).unsqueeze(1)
    occ_rgb = torch.where((k == CAR).unsqueeze(1), occ_rgb * shade, occ_rgb)
    occ_rgb = torch.where((window & (k == CAR)).unsqueeze(1), glass.expand(b, c, h, w), occ_rgb)
    occ_rgb = torch.lerp(occ_rgb, dark.expand(b, c, h, w), (wheels * (k == CAR)).unsqueeze(1))
    occ_a = torch.maximum(occ_a, car)

    # bin: a box centred near the body with a darker lid
    centre = w * (0.35 + 0.3 * shift.view(-1, 1, 1))
    half = w * 0.32
    box = torch.maximum((xs - centre).abs() - half, top - ys)
    bin_a = _soft(box) * (k == BIN)
    lid = (ys < top + 3).unsqueeze(1) & (k == BIN).unsqueeze(1)
    occ_rgb = torch.where(lid, occ_rgb * 0.7, occ_rgb)
    occ_a = torch.maximum(occ_a, bin_a)

    # board: a sign on two legs, with lines of "text"
    board_bottom = top + 0.75 * (h - top)
    left = w * (0.02 + 0.1 * shift.view(-1, 1, 1))
    right = w * (0.88 + 0.1 * shift.view(-1, 1, 1))
    panel = torch.maximum(torch.maximum(left - xs, xs - right), torch.maximum(top - ys, ys - board_bottom))
    legs = torch.minimum((xs - left - 4).abs(), (xs - right + 4).abs()) - 1.5
    legs = torch.maximum(legs, board_bottom - ys)
    board_a = torch.maximum(_soft(panel), _soft(legs)) * (k == BOARD)
    text = ((ys - top) % 5 < 1.5) & (ys > top + 3) & (ys < board_bottom - 3) & ((xs - left) % 17 < 12)
    occ_rgb = torch.where((text & (k == BOARD)).unsqueeze(1), occ_rgb * 0.3, occ_rgb)
    occ_a = torch.maximum(occ_a, board_a)

    # pole / pillar: a vertical band over the requested share of the body's columns
    x0, x1 = band_columns(alpha, target, shift)
    x0, x1 = x0.view(-1, 1, 1), x1.view(-1, 1, 1)
    pole_a = _soft(torch.maximum(x0 - xs, xs - x1)).expand(b, h, w) * (k == POLE)
    u = ((xs - (x0 + x1) / 2) / ((x1 - x0) / 2).clamp_min(1)).clamp(-1, 1)
    occ_rgb = torch.where((k == POLE).unsqueeze(1), occ_rgb * (0.75 + 0.35 * (1 - u * u)).unsqueeze(1), occ_rgb)
    occ_a = torch.maximum(occ_a, pole_a)

    out = torch.lerp(img, occ_rgb, occ_a.unsqueeze(1))
    hidden = (alpha * occ_a).sum((1, 2))

    # another pedestrian: slide it sideways to the offset that hides the requested share
    is_person = kind == PERSON
    if person is not None and bool(is_person.any()):
        p_rgb, p_a = person[:, :c], person[:, c]
        offsets = torch.arange(-w // 2, w // 2 + 1, 2)
        body = alpha.sum((1, 2)).clamp_min(1e-6)
        best = torch.zeros(b, dtype=torch.long)
        best_err = torch.full((b,), 1e9)
        for o in offsets.tolist():
            frac = (alpha * torch.roll(p_a, o, dims=-1)).sum((1, 2)) / body
            err = (frac - target).abs() + 0.02 * (abs(o) < 6)  # avoid standing exactly behind each other
            better = err < best_err
            best = torch.where(better, torch.full_like(best, o), best)
            best_err = torch.where(better, err, best_err)
        shifted_a = torch.zeros_like(p_a)
        shifted_rgb = torch.zeros_like(p_rgb)
        for i in is_person.nonzero().view(-1).tolist():
            o = int(best[i])
            shifted_a[i] = torch.roll(p_a[i], o, dims=-1)
            shifted_rgb[i] = torch.roll(p_rgb[i], o, dims=-1)
            if o > 0:
                shifted_a[i, :, :o] = 0
                shifted_rgb[i, :, :, :o] = 0
            elif o < 0:
                shifted_a[i, :, o:] = 0
                shifted_rgb[i, :, :, o:] = 0
        m = is_person.view(-1, 1, 1).to(torch.float32)
        pa = shifted_a * m
        out = shifted_rgb * m.unsqueeze(1) + (1 - pa.unsqueeze(1)) * out
        hidden = torch.where(is_person, (alpha * pa).sum((1, 2)), hidden)
    return out, hidden / alpha.sum((1, 2)).clamp_min(1e-6)
