"""CE with label smoothing, batch-hard triplet (by labels, any layout), centre loss and BoTLoss."""

import math

import pytest
import torch
import torch.nn.functional as F

from reidlab.losses import BoTLoss, CenterLoss, cross_entropy_ls, euclidean_dist, hard_example_mining, triplet_loss


def test_label_smoothing_matches_the_bot_formula():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.1
    smooth = torch.full((6, 5), eps / 5).scatter_(1, targets[:, None], 1 - eps + eps / 5)
    expected = (-smooth * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(cross_entropy_ls(logits, targets, eps), expected, atol=1e-6)
    assert torch.allclose(cross_entropy_ls(logits, targets, 0.0), F.cross_entropy(logits, targets))
    with pytest.raises(ValueError, match="epsilon"):
        cross_entropy_ls(logits, targets, 1.0)


def test_euclidean_dist_matches_cdist_and_is_clamped():
    x, y = torch.randn(5, 8), torch.randn(3, 8)
    assert torch.allclose(euclidean_dist(x, y), torch.cdist(x, y), atol=1e-5)
    assert torch.all(euclidean_dist(x, x).diagonal() < 1e-2)  # float rounding of the expanded formula


def _brute_force_triplet(feats, labels, margin):
    losses = []
    for i in range(len(feats)):
        d = torch.linalg.norm(feats - feats[i], dim=1)
        pos = d[labels == labels[i]].max()
        neg = d[labels != labels[i]].min()
        losses.append(F.relu(pos - neg + margin) if margin is not None else F.softplus(pos - neg))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("margin", [0.3, None])
def test_triplet_mines_by_labels_regardless_of_layout(margin):
    torch.manual_seed(0)
    feats = torch.randn(12, 16)
    labels = torch.tensor([3, 1, 3, 2, 1, 1, 2, 3, 2, 1, 3, 2])  # shuffled, unequal counts are fine too
    expected = _brute_force_triplet(feats, labels, margin)
    assert torch.allclose(triplet_loss(feats, labels, margin=margin), expected, atol=1e-4)
    perm = torch.randperm(12)
    assert torch.allclose(triplet_loss(feats[perm], labels[perm], margin=margin), expected, atol=1e-4)


def test_triplet_zero_for_well_separated_clusters_and_no_negative_case():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    feats = centers[labels] + 0.01 * torch.randn(4, 2)
    assert triplet_loss(feats, labels, margin=0.3).item() == 0.0
    d_ap, d_an = hard_example_mining(euclidean_dist(feats, feats), torch.zeros(4, dtype=torch.long))
    assert torch.isinf(d_an).all()
    assert triplet_loss(feats, torch.zeros(4, dtype=torch.long), margin=0.3).item() == 0.0


def test_center_loss_is_mean_squared_distance():
    loss = CenterLoss(3, 4)
    feats, labels = torch.randn(5, 4), torch.tensor([0, 2, 1, 2, 0])
    expected = (feats - loss.centers[labels]).pow(2).sum(1).mean()
    assert torch.allclose(loss(feats, labels), expected)


def test_bot_loss_parts_and_total():
    torch.manual_seed(0)
    crit = BoTLoss(num_classes=4, feat_dim=8, triplet_margin=0.3)
    outputs = {"logits": torch.randn(8, 4, requires_grad=True), "features": torch.randn(8, 8, requires_grad=True)}
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    total, parts = crit(outputs, {"pid": pids})
    assert set(parts) == {"id", "triplet"}
    assert math.isclose(total.item(), parts["id"].item() + parts["triplet"].item(), rel_tol=1e-6)
    total.backward()
    assert outputs["features"].grad is not None and outputs["logits"].grad is not None


def test_bot_center_loss_weight_and_centre_gradient_rule():
    torch.manual_seed(0)
    w = 5e-4
    crit = BoTLoss(num_classes=3, feat_dim=4, center_weight=w)
    feats = torch.randn(6, 4, requires_grad=True)
    outputs = {"logits": torch.randn(6, 3), "features": feats}
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    total, parts = crit(outputs, pids)
    expected = parts["id"] + parts["triplet"] + w * parts["center"]
    assert torch.allclose(total, expected)
    total.backward()
    # the centres learn from the unweighted centre loss: grad = d(center)/dc, not w * d(center)/dc
    plain = CenterLoss(3, 4)
    plain.centers.data.copy_(crit.center.centers.data)
    plain(feats.detach(), pids).backward()
    assert torch.allclose(crit.center.centers.grad, plain.centers.grad, atol=1e-6)


def test_triplet_distances_stay_float32_under_autocast():
    torch.manual_seed(0)
    feats = (30 * torch.randn(8, 256)).bfloat16()
    labels = torch.arange(4).repeat_interleave(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = euclidean_dist(feats, feats)
        loss = triplet_loss(feats, labels)
    assert dist.dtype == torch.float32
    reference = torch.cdist(feats.float(), feats.float())
    off = ~torch.eye(8, dtype=torch.bool)
    assert torch.allclose(dist[off], reference[off], rtol=1e-4)  # bf16 matmul would be off by whole units
    assert dist.diagonal().max() < 1.0
    assert torch.allclose(loss, triplet_loss(feats.float(), labels), atol=1e-4)
