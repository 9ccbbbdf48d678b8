"""Ranking evaluation: distances, CMC / mAP / mINP under every protocol, k-reciprocal re-ranking.

>>> from reidlab.evaluation import evaluate, evaluate_rank, re_ranking, RankResult
"""

from reidlab.evaluation.cross_domain import cross_domain_heatmap, cross_domain_report, cross_domain_table
from reidlab.evaluation.distances import (
    METRICS,
    compute_distance,
    cosine_distance,
    euclidean_squared_distance,
    iter_distance_chunks,
    masked_cosine_distance,
)
from reidlab.evaluation.evaluator import AP_FLAVOURS, evaluate, evaluate_rank
from reidlab.evaluation.protocols import PROTOCOLS, single_shot_priorities
from reidlab.evaluation.rerank import re_ranking
from reidlab.evaluation.result import RankResult

__all__ = [
    "AP_FLAVOURS",
    "METRICS",
    "PROTOCOLS",
    "RankResult",
    "compute_distance",
    "cosine_distance",
    "cross_domain_heatmap",
    "cross_domain_report",
    "cross_domain_table",
    "euclidean_squared_distance",
    "evaluate",
    "evaluate_rank",
    "iter_distance_chunks",
    "masked_cosine_distance",
    "re_ranking",
    "single_shot_priorities",
]
