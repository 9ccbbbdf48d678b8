"""Official CLIP-ReID checkpoints written with the official key names and shapes (Syliz517/CLIP-ReID
``model/make_model_clipreid.py``: ``image_encoder.*``, ``cv_embed``, ``bottleneck[_proj]``, ``classifier[_proj]``,
``prompt_learner.*``, ``text_encoder.*``), and an independent functional reference of the official test forward
(plain tensor operations on the state dict; no lab or open_clip module involved).

Facts encoded here, from ``model/clip/model.py``: the ViT adds the camera embedding to the CLS token before the
position embedding, runs pre-norm blocks (LayerNorm eps 1e-5, multi-head attention with packed in-projection,
QuickGELU MLP of 4× width) and reads ``f = ln_post(x)[:, 0]``, ``f_proj = f @ proj``; the ModifiedResNet has a 3-conv
stem with a 2×2 average pool, anti-aliased strided blocks (average pool after conv2 and before the downsample
conv), **layer4 at stride 1**, and an attention pool whose query is the mean token; ``f`` is GAP(layer4) and
``f_proj`` the pool's output at the mean-token position. The test feature is ``concat(f, f_proj)`` before the BN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rand(shape, g, std=0.02):
    return torch.randn(shape, generator=g) * std


def _ln(prefix, d, g):
    return {f"{prefix}.weight": 1 + _rand(d, g, 0.1), f"{prefix}.bias": _rand(d, g, 0.1)}


def _bn(prefix, d, g, zero_bias=False):
    bias = torch.zeros(d) if zero_bias else _rand(d, g, 0.1)
    return {f"{prefix}.weight": 1 + _rand(d, g, 0.1), f"{prefix}.bias": bias,
            f"{prefix}.running_mean": _rand(d, g, 0.1), f"{prefix}.running_var": 0.5 + torch.rand(d, generator=g),
            f"{prefix}.num_batches_tracked": torch.tensor(100)}  # fmt: skip


def _block(prefix, d, g):
    return {**_ln(f"{prefix}.ln_1", d, g), **_ln(f"{prefix}.ln_2", d, g),
            f"{prefix}.attn.in_proj_weight": _rand((3 * d, d), g, d**-0.5),
            f"{prefix}.attn.in_proj_bias": _rand(3 * d, g),
            f"{prefix}.attn.out_proj.weight": _rand((d, d), g, d**-0.5), f"{prefix}.attn.out_proj.bias": _rand(d, g),
            f"{prefix}.mlp.c_fc.weight": _rand((4 * d, d), g, d**-0.5), f"{prefix}.mlp.c_fc.bias": _rand(4 * d, g),
            f"{prefix}.mlp.c_proj.weight": _rand((d, 4 * d), g, (4 * d) ** -0.5),
            f"{prefix}.mlp.c_proj.bias": _rand(d, g)}  # fmt: skip


def _heads_and_text(state, feat_dim, proj_dim, classes, g, text_width=64, context=16):
    state.update(_bn("bottleneck", feat_dim, g, zero_bias=True))
    state.update(_bn("bottleneck_proj", proj_dim, g, zero_bias=True))
    state["classifier.weight"] = _rand((classes, feat_dim), g, 0.001)
    state["classifier_proj.weight"] = _rand((classes, proj_dim), g, 0.001)
    state["prompt_learner.cls_ctx"] = _rand((classes, 4, text_width), g)
    state["prompt_learner.token_prefix"] = _rand((1, 5, text_width), g)
    state["prompt_learner.token_suffix"] = _rand((1, context - 9, text_width), g)
    state["text_encoder.positional_embedding"] = _rand((context, text_width), g)
    state.update(_block("text_encoder.transformer.resblocks.0", text_width, g))
    state.update(_ln("text_encoder.ln_final", text_width, g))
    state["text_encoder.text_projection"] = _rand((text_width, proj_dim), g)


def official_vit_state(*, width=128, layers=2, grid=(21, 10), proj_dim=64, cameras=0, classes=7, seed=0):
    """A ViT CLIP-ReID state dict (ViT-B/16 has width 768, 12 layers, 12 heads, proj 512; 211 tokens with OLP)."""
    g = torch.Generator().manual_seed(seed)
    p = "image_encoder."
    state = {p + "class_embedding": _rand(width, g, width**-0.5),
             p + "positional_embedding": _rand((1 + grid[0] * grid[1], width), g, width**-0.5),
             p + "conv1.weight": _rand((width, 3, 16, 16), g, (3 * 256) ** -0.5), **_ln(p + "ln_pre", width, g),
             **_ln(p + "ln_post", width, g), p + "proj": _rand((width, proj_dim), g, width**-0.5)}  # fmt: skip
    for i in range(layers):
        state.update(_block(f"{p}transformer.resblocks.{i}", width, g))
    if cameras:
        state["cv_embed"] = _rand((cameras, width), g)
    _heads_and_text(state, width, proj_dim, classes, g)
    return state


def official_rn_state(*, layers=(1, 1, 1, 1), width=8, grid=(4, 2), proj_dim=32, classes=5, seed=0):
    """A ModifiedResNet CLIP-ReID state dict (RN50: layers (3, 4, 6, 3), width 64, proj 1024, 16×8 + 1 positions)."""
    g = torch.Generator().manual_seed(seed)
    p = "image_encoder."
    state = {}
    for i, (cin, cout) in enumerate([(3, width // 2), (width // 2, width // 2), (width // 2, width)], start=1):
        state[f"{p}conv{i}.weight"] = _rand((cout, cin, 3, 3), g, (cin * 9) ** -0.5)
        state.update(_bn(f"{p}bn{i}", cout, g))
    inplanes = width
    for stage, blocks in enumerate(layers, start=1):
        planes = width * 2 ** (stage - 1)
        for b in range(blocks):
            q = f"{p}layer{stage}.{b}"
            state[f"{q}.conv1.weight"] = _rand((planes, inplanes, 1, 1), g, inplanes**-0.5)
            state[f"{q}.conv2.weight"] = _rand((planes, planes, 3, 3), g, (planes * 9) ** -0.5)
            state[f"{q}.conv3.weight"] = _rand((planes * 4, planes, 1, 1), g, planes**-0.5)
            for k, c in ((1, planes), (2, planes), (3, planes * 4)):
                state.update(_bn(f"{q}.bn{k}", c, g))
            if b == 0:  # every first block: stride 2 or a channel change
                state[f"{q}.downsample.0.weight"] = _rand((planes * 4, inplanes, 1, 1), g, inplanes**-0.5)
                state.update(_bn(f"{q}.downsample.1", planes * 4, g))
            inplanes = planes * 4
    embed = width * 32
    state[p + "attnpool.positional_embedding"] = _rand((1 + grid[0] * grid[1], embed), g, embed**-0.5)
    for name in ("q_proj", "k_proj", "v_proj"):
        state[f"{p}attnpool.{name}.weight"] = _rand((embed, embed), g, embed**-0.5)
        state[f"{p}attnpool.{name}.bias"] = _rand(embed, g)
    state[p + "attnpool.c_proj.weight"] = _rand((proj_dim, embed), g, embed**-0.5)
    state[p + "attnpool.c_proj.bias"] = _rand(proj_dim, g)
    _heads_and_text(state, embed, proj_dim, classes, g)
    return state


def _layer_norm(x, s, prefix):
    return F.layer_norm(x, x.shape[-1:], s[f"{prefix}.weight"], s[f"{prefix}.bias"], eps=1e-5)


def official_vit_feature(s, images, *, stride, camids=None, sie_coef=1.0):
    """``concat(img_feature, img_feature_proj)`` of the official ViT ``build_transformer`` in eval mode."""
    p = "image_encoder."
    x = F.conv2d(images, s[p + "conv1.weight"], stride=stride)
    b, width = x.shape[:2]
    x = x.reshape(b, width, -1).permute(0, 2, 1)
    x = torch.cat([s[p + "class_embedding"] + torch.zeros(b, 1, width), x], dim=1)
    if camids is not None:
        x[:, 0] = x[:, 0] + sie_coef * s["cv_embed"][camids]
    x = _layer_norm(x + s[p + "positional_embedding"], s, p + "ln_pre").permute(1, 0, 2)
    layers = len({k.split(".")[3] for k in s if k.startswith(p + "transformer.resblocks.")})
    for i in range(layers):
        q = f"{p}transformer.resblocks.{i}"
        h = _layer_norm(x, s, f"{q}.ln_1")
        a, _ = F.multi_head_attention_forward(
            h, h, h, width, width // 64, s[f"{q}.attn.in_proj_weight"], s[f"{q}.attn.in_proj_bias"], None, None, False,
            0.0, s[f"{q}.attn.out_proj.weight"], s[f"{q}.attn.out_proj.bias"], training=False, need_weights=False)
        x = x + a
        h = F.linear(_layer_norm(x, s, f"{q}.ln_2"), s[f"{q}.mlp.c_fc.weight"], s[f"{q}.mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), s[f"{q}.mlp.c_proj.weight"], s[f"{q}.mlp.c_proj.bias"])
    f = _layer_norm(x.permute(1, 0, 2), s, p + "ln_post")[:, 0]
    return torch.cat([f, f @ s[p + "proj"]], dim=1)


def _bn_eval(x, s, prefix):
    return F.batch_norm(x, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"], s[f"{prefix}.weight"],
                        s[f"{prefix}.bias"], training=False, eps=1e-5)  # fmt: skip


def _bottleneck(x, s, q, stride):
    out = F.relu(_bn_eval(F.conv2d(x, s[f"{q}.conv1.weight"]), s, f"{q}.bn1"))
    out = F.relu(_bn_eval(F.conv2d(out, s[f"{q}.conv2.weight"], padding=1), s, f"{q}.bn2"))
    if stride > 1:
        out = F.avg_pool2d(out, stride)
    out = _bn_eval(F.conv2d(out, s[f"{q}.conv3.weight"]), s, f"{q}.bn3")
    identity = x
    if f"{q}.downsample.0.weight" in s:
        identity = F.avg_pool2d(x, stride) if stride > 1 else x
        identity = _bn_eval(F.conv2d(identity, s[f"{q}.downsample.0.weight"]), s, f"{q}.downsample.1")
    return F.relu(out + identity)


def official_rn_feature(s, images):
    """``concat(img_feature, img_feature_proj)`` of the official RN50 ``build_transformer`` in eval mode."""
    p = "image_encoder."
    x = images
    for i, stride in ((1, 2), (2, 1), (3, 1)):
        x = F.relu(_bn_eval(F.conv2d(x, s[f"{p}conv{i}.weight"], stride=stride, padding=1), s, f"{p}bn{i}"))
    x = F.avg_pool2d(x, 2)
    for stage, stride in ((1, 1), (2, 2), (3, 2), (4, 1)):  # CLIP-ReID: layer4 at stride 1
        blocks = len({k.split(".")[2] for k in s if k.startswith(f"{p}layer{stage}.")})
        for b in range(blocks):
            x = _bottleneck(x, s, f"{p}layer{stage}.{b}", stride if b == 0 else 1)
    c = x.shape[1]
    t = x.flatten(2).permute(2, 0, 1)
    t = torch.cat([t.mean(dim=0, keepdim=True), t], dim=0) + s[p + "attnpool.positional_embedding"][:, None, :]
    a = p + "attnpool."
    out, _ = F.multi_head_attention_forward(
        t, t, t, c, c // 64, None, torch.cat([s[a + "q_proj.bias"], s[a + "k_proj.bias"], s[a + "v_proj.bias"]]),
        None, None, False, 0.0, s[a + "c_proj.weight"], s[a + "c_proj.bias"], training=False, need_weights=False,
        use_separate_proj_weight=True, q_proj_weight=s[a + "q_proj.weight"], k_proj_weight=s[a + "k_proj.weight"],
        v_proj_weight=s[a + "v_proj.weight"])  # fmt: skip
    return torch.cat([x.mean(dim=(2, 3)), out[0]], dim=1)
