"""TransReID's jigsaw patch module (JPM): shifted and shuffled patch groups through a copy of the last block.

From the tokens *before* the backbone's last block (``(B, 1 + N, D)``):

1. rearrange (optional, on in TransReID): rotate the N patch tokens left by ``shift − 1`` positions (the
   official ``SHIFT_NUM`` 5 rotates by 4), pad with copies of the second-to-last token until N divides into
   ``groups``, then interleave the groups (view as ``(groups, N/groups)``, transpose, flatten);
2. cut the first ``parts · (N // parts)`` tokens into ``parts`` equal runs (the remainder is dropped);
3. each run, with the CLS token in front, goes through the module's own copy of the last block and the final
   norm; its CLS output is the part's local feature ``(B, D)``, with its own BNNeck and classifier.

At test time TransReID concatenates the global feature with the four local features each divided by 4.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from reidlab.models.heads import BNNeck


def shift_and_shuffle(patches: torch.Tensor, shift: int = 5, groups: int = 2) -> torch.Tensor:
    """The JPM rearrangement of ``(B, N, D)`` patch tokens (see the module docstring); ``(B, N', D)``, N' ≥ N."""
    if shift < 1:
        raise ValueError(f"shift must be >= 1 (the official SHIFT_NUM), got {shift}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    b, n, d = patches.shape
    x = torch.cat([patches[:, shift - 1 :], patches[:, : shift - 1]], dim=1)
    pad = (-n) % groups
    if pad:
        x = torch.cat([x, x[:, -2:-1].expand(b, pad, d)], dim=1)
    return x.reshape(b, groups, -1, d).transpose(1, 2).reshape(b, -1, d)


class JigsawPatchModule(nn.Module):
    """Local branch of TransReID: ``forward(tokens) -> [part features (B, D)] * parts`` (before their BNs).

    ``block`` / ``norm`` are copied (the backbone's last block and final norm, typically after loading
    pretrained weights), as TransReID's ``b2`` branch is.
    """

    def __init__(
        self,
        block: nn.Module,
        norm: nn.Module,
        *,
        embed_dim: int,
        num_classes: int = 0,
        shift: int = 5,
        groups: int = 2,
        parts: int = 4,
        rearrange: bool = True,
    ) -> None:
        super().__init__()
        if parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        self.block = copy.deepcopy(block)
        self.norm = copy.deepcopy(norm)
        self.necks = nn.ModuleList(BNNeck(embed_dim, num_classes) for _ in range(parts))
        self.shift, self.groups, self.parts, self.rearrange = int(shift), int(groups), int(parts), bool(rearrange)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        n = tokens.shape[1] - 1
        length = n // self.parts
        if length < 1:
            raise ValueError(f"{n} patch tokens cannot be cut into {self.parts} parts")
        cls = tokens[:, :1]
        patches = shift_and_shuffle(tokens[:, 1:], self.shift, self.groups) if self.rearrange else tokens[:, 1:]
        b, _, d = patches.shape
        runs = patches[:, : self.parts * length].reshape(b, self.parts, length, d).transpose(0, 1)
        runs = torch.cat([cls.unsqueeze(0).expand(self.parts, b, 1, d), runs], dim=2)  # (parts, B, 1 + L, D)
        out = self.norm(self.block(runs.reshape(self.parts * b, 1 + length, d)))[:, 0]  # parts in one pass
        return list(out.reshape(self.parts, b, d).unbind(0))
