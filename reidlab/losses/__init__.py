"""ReID losses, one module per family: ``reid`` (CE-LS, batch-hard triplet, centre, BoT's sum); methods add
their own modules here (e.g. KL between heads, SupCon image-text) and import them directly."""

from reidlab.losses.reid import (
    BoTLoss,
    CenterLoss,
    TripletLoss,
    cross_entropy_ls,
    euclidean_dist,
    hard_example_mining,
    triplet_loss,
)

__all__ = [
    "BoTLoss",
    "CenterLoss",
    "TripletLoss",
    "cross_entropy_ls",
    "euclidean_dist",
    "hard_example_mining",
    "triplet_loss",
]
