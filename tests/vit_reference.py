"""Official TransReID / DPM checkpoints written with the official key names and shapes, and an independent functional
reference of the official test forward (plain tensor operations on the state dict, no lab module involved).

Facts encoded here come from damo-cv/TransReID and stone96123/DPM: pre-norm blocks (LayerNorm eps 1e-6, qkv,
softmax(q kᵀ · head_dim^-0.5), proj, GELU MLP), ``[CLS; conv patches] + pos + coef · sie[cam]``, JPM's
``shuffle_unit`` (shift, then interleave ``group`` groups, padding with the second-to-last token) and its
branches ``b1`` / ``b2``, DPM's ``ConvLayer`` (conv3×3+BN+ReLU, max-pool 2, twice, conv, global max-pool),
``attfc`` and its grid guess ``W = int(sqrt(N / 2))``, ``H = N // W``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(shape, g, std=0.02):
    return torch.randn(shape, generator=g) * std


def _norm_params(prefix, d, g):
    return {f"{prefix}.weight": 1 + _rand(d, g, 0.1), f"{prefix}.bias": _rand(d, g, 0.1)}


def _block(prefix, d, hidden, g, qkv_bias=True):
    out = {**_norm_params(f"{prefix}.norm1", d, g), **_norm_params(f"{prefix}.norm2", d, g)}
    out[f"{prefix}.attn.qkv.weight"] = _rand((3 * d, d), g, d**-0.5)
    if qkv_bias:
        out[f"{prefix}.attn.qkv.bias"] = _rand(3 * d, g, 0.1)
    out[f"{prefix}.attn.proj.weight"] = _rand((d, d), g, d**-0.5)
    out[f"{prefix}.attn.proj.bias"] = _rand(d, g, 0.1)
    out[f"{prefix}.mlp.fc1.weight"] = _rand((hidden, d), g, d**-0.5)
    out[f"{prefix}.mlp.fc1.bias"] = _rand(hidden, g, 0.1)
    out[f"{prefix}.mlp.fc2.weight"] = _rand((d, hidden), g, hidden**-0.5)
    out[f"{prefix}.mlp.fc2.bias"] = _rand(d, g, 0.1)
    return out


def _bn1d(prefix, d, g):
    return {f"{prefix}.weight": 1 + _rand(d, g, 0.1), f"{prefix}.bias": torch.zeros(d),
            f"{prefix}.running_mean": _rand(d, g, 0.1), f"{prefix}.running_var": 0.5 + torch.rand(d, generator=g),
            f"{prefix}.num_batches_tracked": torch.tensor(100)}  # fmt: skip


def official_transreid_state(*, d, depth, num_patches, cameras, classes, jpm, mlp_ratio=4, seed=0):
    """A ``build_transformer`` (``jpm=False``) or ``build_transformer_local`` state dict, official key names."""
    g = torch.Generator().manual_seed(seed)
    hidden = mlp_ratio * d
    state = {"base.cls_token": _rand((1, 1, d), g), "base.pos_embed": _rand((1, num_patches + 1, d), g),
             "base.patch_embed.proj.weight": _rand((d, 3, 16, 16), g, (2 / (256 * d)) ** 0.5 * 4),
             "base.patch_embed.proj.bias": _rand(d, g, 0.1), **_norm_params("base.norm", d, g),
             "base.fc.weight": _rand((1000, d), g), "base.fc.bias": _rand(1000, g)}  # fmt: skip
    if cameras:
        state["base.sie_embed"] = _rand((cameras, 1, d), g)
    for i in range(depth):
        state.update(_block(f"base.blocks.{i}", d, hidden, g))
    state.update(_bn1d("bottleneck", d, g))
    state["classifier.weight"] = _rand((classes, d), g, 0.001)
    if jpm:
        for branch in ("b1", "b2"):
            state.update(_block(f"{branch}.0", d, hidden, g))
            state.update(_norm_params(f"{branch}.1", d, g))
        for k in range(1, 5):
            state.update(_bn1d(f"bottleneck_{k}", d, g))
            state[f"classifier_{k}.weight"] = _rand((classes, d), g, 0.001)
    return state


def official_dpm_state(*, d, depth, num_patches, cameras, classes, seed=0):
    """A DPM ``build_transformer`` state dict: TransReID's keys plus ``base.ConvLayer.*`` and ``base.attfc.*``."""
    state = official_transreid_state(d=d, depth=depth, num_patches=num_patches, cameras=cameras, classes=classes,
                                      jpm=False, seed=seed)  # fmt: skip
    g = torch.Generator().manual_seed(seed + 1)
    for index, (cin, cout) in zip((0, 2, 4), ((4 * d, 2 * d), (2 * d, d), (d, d)), strict=True):
        state[f"base.ConvLayer.{index}.0.weight"] = _rand((cout, cin, 3, 3), g, (2 / (9 * cin)) ** 0.5)
        state[f"base.ConvLayer.{index}.0.bias"] = _rand(cout, g, 0.1)
        bn = _bn1d(f"base.ConvLayer.{index}.1", cout, g)
        bn[f"base.ConvLayer.{index}.1.bias"] = _rand(cout, g, 0.1)
        state.update(bn)
    state["base.attfc.weight"] = _rand((d, d), g, d**-0.5)
    state["base.attfc.bias"] = _rand(d, g, 0.1)
    state["classifier.weight"] = _rand((classes, d), g, 1.0)  # ArcFace prototypes
    return state


def _ln(x, state, prefix):
    return F.layer_norm(x, (x.shape[-1],), state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-6)


def reference_block(state, prefix, x, heads):
    """One official ``Block``: returns the new tokens and the pre-softmax attention logits (B, heads, N, N)."""
    b, n, d = x.shape
    qkv = F.linear(_ln(x, state, f"{prefix}.norm1"), state[f"{prefix}.attn.qkv.weight"],
                   state.get(f"{prefix}.attn.qkv.bias"))  # fmt: skip
    qkv = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    logits = (qkv[0] @ qkv[1].transpose(-2, -1)) * (d // heads) ** -0.5
    mixed = (logits.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b, n, d)
    x = x + F.linear(mixed, state[f"{prefix}.attn.proj.weight"], state[f"{prefix}.attn.proj.bias"])
    h = F.gelu(F.linear(_ln(x, state, f"{prefix}.norm2"), state[f"{prefix}.mlp.fc1.weight"],
                        state[f"{prefix}.mlp.fc1.bias"]))  # fmt: skip
    return x + F.linear(h, state[f"{prefix}.mlp.fc2.weight"], state[f"{prefix}.mlp.fc2.bias"]), logits


def reference_embed(state, images, camids, stride, coef=3.0):
    x = F.conv2d(images, state["base.patch_embed.proj.weight"], state["base.patch_embed.proj.bias"], stride=stride)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["base.cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + state["base.pos_embed"]
    if "base.sie_embed" in state:
        x = x + coef * state["base.sie_embed"][camids]
    return x


def reference_shuffle(features, shift, group):
    """The official ``shuffle_unit`` (begin = 1) by index bookkeeping: tokens shift..N then 1..shift-1, padded with
    the second-to-last when not divisible by ``group``, then read group-interleaved."""
    n = features.shape[1] - 1
    x = features[:, list(range(shift, n + 1)) + list(range(1, shift))]
    if x.shape[1] % group:
        x = torch.cat([x, x[:, -2:-1]], dim=1)
    per = x.shape[1] // group
    return x[:, [g * per + j for j in range(per) for g in range(group)]]


def reference_transreid(state, images, camids, *, stride, heads, jpm, shift=5, group=2, coef=3.0):
    """The official test feature (``NECK_FEAT 'before'``): 768-style global, or with JPM ``[global, local_k / 4]``."""
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("base.blocks."))
    x = reference_embed(state, images, camids, stride, coef)
    for i in range(depth - 1 if jpm else depth):
        x, _ = reference_block(state, f"base.blocks.{i}", x, heads)
    if not jpm:
        return _ln(x, state, "base.norm")[:, 0]
    global_feat = _ln(reference_block(state, "b1.0", x, heads)[0], state, "b1.1")[:, 0]
    n = x.shape[1] - 1
    length = n // 4
    shuffled = reference_shuffle(x, shift, group)
    locals_ = []
    for k in range(4):
        run = torch.cat([x[:, :1], shuffled[:, k * length : (k + 1) * length]], dim=1)
        locals_.append(_ln(reference_block(state, "b2.0", run, heads)[0], state, "b2.1")[:, 0] / 4)
    return torch.cat([global_feat, *locals_], dim=1)


def _conv_bn_relu(state, prefix, x):
    x = F.conv2d(x, state[f"{prefix}.0.weight"], state[f"{prefix}.0.bias"], padding=1)
    x = F.batch_norm(x, state[f"{prefix}.1.running_mean"], state[f"{prefix}.1.running_var"],
                     state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"], training=False, eps=1e-5)  # fmt: skip
    return F.relu(x)


def reference_dpm(state, images, camids, *, stride, heads, coef=3.0):
    """The official DPM test output: (pre-BN global feature, sigmoid mask) and the last block's CLS logits."""
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("base.blocks."))
    x = reference_embed(state, images, camids, stride, coef)
    b = x.shape[0]
    n = x.shape[1] - 1
    w = int(math.sqrt(n / 2.0))
    h = n // w
    saved = {}
    for i in range(depth):
        x, logits = reference_block(state, f"base.blocks.{i}", x, heads)
        if i in (1, 3, 9):
            saved[i] = x[:, 1:].transpose(1, 2).reshape(b, -1, h, w)
    maps = torch.cat([saved[1], saved[3], saved[9], x[:, 1:].transpose(1, 2).reshape(b, -1, h, w)], dim=1)
    m = F.max_pool2d(_conv_bn_relu(state, "base.ConvLayer.0", maps), 2, 2)
    m = F.max_pool2d(_conv_bn_relu(state, "base.ConvLayer.2", m), 2, 2)
    m = F.adaptive_max_pool2d(_conv_bn_relu(state, "base.ConvLayer.4", m), 1).flatten(1)
    mask = torch.sigmoid(F.linear(m, state["base.attfc.weight"], state["base.attfc.bias"]))
    return _ln(x, state, "base.norm")[:, 0], mask, logits[:, :, 0, 1:]
