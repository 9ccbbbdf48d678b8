"""MuDeep v2 (Qian et al., TPAMI 2019): leader-based multi-scale attention, as the official code builds it.

A ResNet trunk (stem, layer1-3) feeds three streams, truncated copies of the last stage (1, 2 and 3 blocks, first
block at stride 1, no shared weights). The *leader* ``Hg = ReLU(BN(Conv1x1([x1; x2; x3])))`` sees every scale; per
scale ``i``, query and key are two 1x1 convolutions of the leader and the value is the stream's own map:
``x̂_i = γ_i · A_i V_i + x_i`` with ``A_i = softmax(Q_i K_iᵀ)``, a C×C channel affinity (the code's reading; the
paper's text speaks of spatial locations: ``attention="spatial"`` gives an N×N position affinity instead).
``γ_i`` start at 0, so training begins as the plain multi-scale network (``attention="none"`` is that network).
Each attended map gives a global average and ``num_stripes`` horizontal stripes; each of the ``3·(1 + stripes)``
parts has its own head ``Conv1x1 -> BN2d -> ReLU`` (the embedding) and classifier ``Dropout(0.5) -> Linear``.

The test descriptor is the concatenation of the head embeddings, scale by scale (global, stripe 0, 1, 2): 6144-d
for ResNet-50. The official test code averages it with the flipped image's and L2-normalises (the lab's flip TTA
and cosine distance do exactly that).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.models.backbones import set_last_stride_one
from reidlab.models.registry import register_model
from reidlab.weights import Pretrained, load_timm_backbone

AttentionKind = Literal["channel", "spatial", "none"]
ATTENTION_KINDS = ("channel", "spatial", "none")


class LeaderAttention(nn.Module):
    """One scale's attention: query and key from the leader, value = the scale's own map.

    ``"channel"`` (the official code): ``A = softmax_rows(Q Kᵀ)`` over channels (C×C, Q and K have C channels),
    output ``A V``. ``"spatial"`` (the paper's wording): ``A = softmax_rows(Qᵀ K)`` over positions (N×N, Q and K
    have ``qk_channels``), output ``V Aᵀ``. ``scaled`` divides the logits by √(contracted length) (N for channel,
    ``qk_channels`` for spatial); the code does not scale. Returns ``(output (B, C, H, W), affinity)``.
    """

    def __init__(self, guidance: int, channels: int, kind: str = "channel", *, scaled: bool = False,
                 qk_channels: int | None = None) -> None:  # fmt: skip
        super().__init__()
        if kind not in ("channel", "spatial"):
            raise ValueError(f"LeaderAttention kind must be 'channel' or 'spatial', got {kind!r}")
        width = channels if kind == "channel" else (qk_channels or max(guidance // 8, 1))
        self.kind = kind
        self.scaled = scaled
        self.query = nn.Conv2d(guidance, width, 1, bias=False)
        self.key = nn.Conv2d(guidance, width, 1, bias=False)

    def forward(self, leader: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = value.shape
        q, k, v = self.query(leader).flatten(2), self.key(leader).flatten(2), value.flatten(2)
        if self.kind == "channel":
            logits = torch.bmm(q, k.transpose(1, 2))  # (B, C, C): contracted over the N positions
            scale = q.shape[2]
        else:
            logits = torch.bmm(q.transpose(1, 2), k)  # (B, N, N): contracted over the query/key channels
            scale = q.shape[1]
        if self.scaled:
            logits = logits / math.sqrt(scale)
        affinity = logits.softmax(dim=-1)
        out = torch.bmm(affinity, v) if self.kind == "channel" else torch.bmm(v, affinity.transpose(1, 2))
        return out.view(b, c, h, w), affinity


class PartHead(nn.Module):
    """One pooled part: ``embed`` = Conv1x1 (no bias) -> BN2d -> ReLU; ``classifier`` = Dropout -> Linear.

    Initialisation as the official code: Kaiming-normal (fan-in) convolution, BN2d at PyTorch's default,
    classifier weights N(0, 0.001²) and zero bias.
    """

    def __init__(self, in_channels: int, embed_dim: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(in_channels, embed_dim, 1, bias=False), nn.BatchNorm2d(embed_dim),
                                   nn.ReLU(inplace=True))  # fmt: skip
        nn.init.kaiming_normal_(self.embed[0].weight, a=0, mode="fan_in")
        self.classifier: nn.Sequential | None = None
        if num_classes > 0:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, num_classes))
            nn.init.normal_(self.classifier[1].weight, std=0.001)
            nn.init.zeros_(self.classifier[1].bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, 1) -> (B, E); ``flatten`` keeps the batch axis for a batch of one."""
        return self.embed(pooled).flatten(1)


class MuDeepV2(nn.Module):
    """MuDeep v2 (see the module docstring).

    ``forward(images, camids=None)``: train mode returns ``{"logits": (B, H, K), "features": (B, S, E)}`` (the H =
    S·(1 + stripes) classifiers' logits and each scale's global embedding, for the triplet loss); eval mode the
    (B, H·E) descriptor, heads in the order scale 1 (global, stripes), scale 2, scale 3. ``head_names`` names them.
    ``stream_blocks`` gives each stream's depth in last-stage blocks; a trunk whose last stage has fewer blocks
    (ResNet-18: 2) repeats copies of its last block to reach it.
    """

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        num_classes: int = 0,
        pretrained: Pretrained = "auto",
        attention: AttentionKind = "channel",
        scaled_attention: bool = False,
        guidance_channels: int = 512,
        qk_channels: int | None = None,
        embed_dim: int = 512,
        num_stripes: int = 3,
        stream_blocks: Sequence[int] = (1, 2, 3),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if num_classes < 0 or num_stripes < 0 or embed_dim < 1 or guidance_channels < 1:
            raise ValueError("num_classes and num_stripes must be >= 0, embed_dim and guidance_channels >= 1; got "
                             f"{num_classes}, {num_stripes}, {embed_dim}, {guidance_channels}")  # fmt: skip
        stream_blocks = tuple(int(n) for n in stream_blocks)
        if not stream_blocks or min(stream_blocks) < 1:
            raise ValueError(f"stream_blocks must be a non-empty list of block counts >= 1, got {stream_blocks}")
        trunk = load_timm_backbone(backbone, pretrained=pretrained, num_classes=0, global_pool="")
        if not hasattr(trunk, "layer4"):
            raise ValueError(f"backbone {backbone!r} is not a ResNet (no layer4); MuDeep v2 copies its last stage")
        set_last_stride_one(trunk)
        last_stage = list(trunk.layer4)
        self.streams = nn.ModuleList(
            nn.Sequential(*(copy.deepcopy(last_stage[min(j, len(last_stage) - 1)]) for j in range(n)))
            for n in stream_blocks
        )
        trunk.layer4 = nn.Identity()  # the trunk ends at layer3; the streams replace the last stage
        self.trunk = trunk
        channels = int(trunk.num_features)
        self.attention_kind = attention
        self.num_scales = len(stream_blocks)
        self.num_stripes = num_stripes
        self.head_dim = embed_dim
        self.channels = channels
        if attention != "none":
            self.leader = nn.Sequential(nn.Conv2d(channels * self.num_scales, guidance_channels, 1, bias=False),
                                        nn.BatchNorm2d(guidance_channels), nn.ReLU(inplace=True))  # fmt: skip
            self.attention = nn.ModuleList(
                LeaderAttention(
                    guidance_channels, channels, attention, scaled=scaled_attention, qk_channels=qk_channels
                )
                for _ in range(self.num_scales)
            )
            self.gamma = nn.Parameter(torch.zeros(self.num_scales))
        self.heads = nn.ModuleList(
            PartHead(channels, embed_dim, num_classes, dropout) for _ in range(self.num_scales * (1 + num_stripes))
        )
        self.num_classes = num_classes
        self.embed_dim = embed_dim * len(self.heads)

    @property
    def head_names(self) -> list[str]:
        """``"s1/global"``, ``"s1/stripe0"``, ... in descriptor order."""
        parts = ["global", *(f"stripe{j}" for j in range(self.num_stripes))]
        return [f"s{s + 1}/{p}" for s in range(self.num_scales) for p in parts]

    def forward_streams(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The streams' maps ``x_s`` (B, C, h, w), before attention."""
        shared = self.trunk.forward_features(images)
        return [stream(shared) for stream in self.streams]

    def forward_maps(self, images: torch.Tensor) -> dict[str, list[torch.Tensor] | torch.Tensor | None]:
        """Every intermediate of the attention layer: ``streams`` (x_s), ``updates`` (γ_s·A_s V_s, zeros without
        attention), ``attended`` (x̂_s), ``affinity`` (A_s: (B, C, C) or (B, N, N); empty without attention) and
        ``leader`` (Hg, or None)."""
        streams = self.forward_streams(images)
        if self.attention_kind == "none":
            zeros = [torch.zeros_like(x) for x in streams]
            return {"streams": streams, "updates": zeros, "attended": streams, "affinity": [], "leader": None}
        leader = self.leader(torch.cat(streams, dim=1))
        updates, affinities = [], []
        for gate, attend, x in zip(self.gamma, self.attention, streams, strict=True):
            out, affinity = attend(leader, x)
            updates.append(gate * out)
            affinities.append(affinity)
        attended = [u + x for u, x in zip(updates, streams, strict=True)]
        return {"streams": streams, "updates": updates, "attended": attended, "affinity": affinities,
                "leader": leader}  # fmt: skip

    def attended_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``x̂_s = γ_s·A_s V_s + x_s`` for each scale."""
        if self.attention_kind == "none":
            return self.forward_streams(images)
        return self.forward_maps(images)["attended"]  # type: ignore[return-value]

    def embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, E): every head's embedding (post-ReLU, before dropout)."""
        out = []
        heads = iter(self.heads)
        for x in self.attended_maps(images):
            pooled = [F.adaptive_avg_pool2d(x, 1)]
            if self.num_stripes:
                stripes = F.adaptive_avg_pool2d(x, (self.num_stripes, 1))
                pooled += [stripes[:, :, j : j + 1] for j in range(self.num_stripes)]
            out += [next(heads)(p) for p in pooled]
        return torch.stack(out, dim=1)

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor] | torch.Tensor:
        embeddings = self.embeddings(images)
        if not self.training:
            return embeddings.flatten(1)
        if self.num_classes == 0:
            raise RuntimeError("MuDeepV2 was built with num_classes=0 and cannot be trained; pass num_classes")
        logits = torch.stack([head.classifier(embeddings[:, i]) for i, head in enumerate(self.heads)], dim=1)
        return {"logits": logits, "features": embeddings[:, :: 1 + self.num_stripes]}


@register_model
def mudeep_v2_resnet50(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> MuDeepV2:
    """The paper's MuDeep v2: ResNet-50, leader 6144 -> 512, 12 heads of 512 (6144-d descriptor)."""
    return MuDeepV2(backbone="resnet50", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def mudeep_v2_resnet18(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> MuDeepV2:
    """The CPU / smoke-test size: ResNet-18 widths (512 channels; stream 3 repeats layer4's last block), leader
    1536 -> 128, 12 heads of 128 (1536-d descriptor)."""
    kwargs = {"guidance_channels": 128, "embed_dim": 128, **kwargs}
    return MuDeepV2(backbone="resnet18", num_classes=num_classes, pretrained=pretrained, **kwargs)
