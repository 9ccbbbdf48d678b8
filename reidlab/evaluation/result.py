"""The outcome of one ranking evaluation: CMC curve, mAP, mINP and what produced them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RankResult:
    """CMC / mAP / mINP of one query-gallery evaluation.

    ``cmc[k]`` is the fraction of valid queries whose first true match is within the top ``k + 1``
    (for ``protocol="sysu"`` the top ``k + 1`` distinct identities; for ``"cuhk03_classic"`` the
    single-gallery-shot value averaged over repeats). ``mAP`` and ``mINP`` are fractions in [0, 1];
    :meth:`as_dict` gives percentages. Queries without any match left after the protocol's removal
    rule are skipped and counted in ``num_queries - num_valid_queries``.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    protocol: str = "market"
    ap: str = "standard"
    query_ap: np.ndarray | None = field(default=None, repr=False)
    """Per-query AP in [0, 1] (NaN for skipped queries), in query order."""
    first_match_rank: np.ndarray | None = field(default=None, repr=False)
    """Per-query 1-based rank of the first match in the full kept ranking (0 when skipped)."""

    @property
    def max_rank(self) -> int:
        return len(self.cmc)

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based) as a fraction."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k must be in [1, {len(self.cmc)}] (the CMC length), got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self, ranks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
        """``{"R1": ..., "R5": ..., "R10": ..., "mAP": ..., "mINP": ...}`` in percent.

        Ranks beyond the CMC length are left out.
        """
        out = {f"R{k}": 100.0 * self.rank(k) for k in ranks if k <= len(self.cmc)}
        out["mAP"] = 100.0 * self.mAP
        out["mINP"] = 100.0 * self.mINP
        return out

    def __str__(self) -> str:
        numbers = " | ".join(f"{key} {value:.2f}" for key, value in self.as_dict().items())
        return (
            f"{numbers}  ({self.protocol} protocol, {self.ap} AP, "
            f"{self.num_valid_queries}/{self.num_queries} valid queries)"
        )
