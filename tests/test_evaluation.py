"""evaluate_rank / evaluate against a brute-force per-query reference, on random data with edge cases."""

from __future__ import annotations

import json
import zlib

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from reidlab.evaluation import (
    PROTOCOLS,
    RankResult,
    compute_distance,
    cross_domain_report,
    cross_domain_table,
    evaluate,
    evaluate_rank,
    single_shot_priorities,
)
from reidlab.evaluation.ranking import rank_positives

# ----------------------------------------------------------------------------- brute-force reference


def _kept_ranking(dist_row, q_pid, q_cam, g_pids, g_cams, protocol, sysu_exclude):
    order = np.argsort(dist_row, kind="stable")  # ties: gallery index order
    if protocol in ("market", "cuhk03_classic"):
        removed = (g_pids[order] == q_pid) & (g_cams[order] == q_cam)
    elif protocol == "sysu":
        removed = (q_cam == sysu_exclude[0]) & (g_cams[order] == sysu_exclude[1])
    else:
        removed = np.zeros(len(order), dtype=bool)
    return order[~removed]


def reference(distmat, q_pids, g_pids, q_cams, g_cams, *, protocol, max_rank, ap="standard",
              sysu_exclude=(2, 1), num_repeats=10, seed=0):  # fmt: skip
    """Per-query Python loops over a stable argsort, one rule at a time."""
    priorities = single_shot_priorities(len(g_pids), num_repeats, seed).numpy()
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        kept = _kept_ranking(distmat[i], q_pids[i], q_cams[i], g_pids, g_cams, protocol, sysu_exclude)
        matches = g_pids[kept] == q_pids[i]
        if not matches.any():
            continue
        positions = np.flatnonzero(matches) + 1  # 1-based ranks of the matches
        if ap == "standard":
            aps.append(np.mean([(k + 1) / r for k, r in enumerate(positions)]))
        else:
            total = 0.0
            for k, r in enumerate(positions):
                old = 1.0 if r == 1 else k / (r - 1)
                total += (old + (k + 1) / r) / 2
            aps.append(total / len(positions))
        inps.append(len(positions) / positions[-1])
        if protocol in ("market", "regdb"):
            firsts = [positions[0]]
        elif protocol == "sysu":
            distinct = []
            for pid in g_pids[kept]:
                if pid not in distinct:
                    distinct.append(pid)
            firsts = [distinct.index(q_pids[i]) + 1]
        else:
            firsts = []
            for priority in priorities:
                chosen = {}
                for g in kept:
                    pid = g_pids[g]
                    if pid not in chosen or priority[g] > priority[chosen[pid]]:
                        chosen[pid] = g
                shot = [g for g in kept if chosen[g_pids[g]] == g]  # keeps ranking order
                firsts.append([g_pids[g] for g in shot].index(q_pids[i]) + 1)
        cmcs.append(np.mean([[1.0 if f <= k + 1 else 0.0 for k in range(max_rank)] for f in firsts], axis=0))
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


# ----------------------------------------------------------------------------- random problems


def make_problem(seed, *, n_q=40, n_g=70, n_ids=12, n_cams=4, ties=False, sysu=False):
    """Random labels with distractors (pid 0), single-image ids, queries without any match."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, n_ids + 1, n_q)
    q_pids[:3] = n_ids + 5  # identity absent from the gallery
    g_pids = rng.integers(0, n_ids + 1, n_g)  # 0 = distractors
    g_pids[-1] = n_ids + 9  # single-image identity, never queried
    if sysu:
        q_cams = rng.choice([2, 5], n_q)
        g_cams = rng.choice([0, 1, 3, 4], n_g)
    else:
        q_cams = rng.integers(0, n_cams, n_q)
        g_cams = rng.integers(0, n_cams, n_g)
        # a query whose only gallery images are in its own camera: no match after removal
        q_pids[3], q_cams[3] = n_ids + 7, 0
        g_pids[:2], g_cams[:2] = n_ids + 7, 0
    if ties:
        distmat = rng.integers(0, 5, (n_q, n_g)).astype(np.float32)
    else:
        distmat = rng.random((n_q, n_g), dtype=np.float32)
    return distmat, q_pids, g_pids, q_cams, g_cams


def assert_matches_reference(result: RankResult, expected, *, atol=1e-6):
    cmc, mAP, mINP, valid = expected
    assert result.num_valid_queries == valid
    np.testing.assert_allclose(result.cmc, cmc, atol=atol)
    assert result.mAP == pytest.approx(mAP, abs=atol)
    assert result.mINP == pytest.approx(mINP, abs=atol)


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("ap", ["standard", "devkit"])
@pytest.mark.parametrize("ties", [False, True])
def test_protocols_match_brute_force(protocol, ap, ties):
    problem = make_problem(zlib.crc32(f"{protocol}{ap}{ties}".encode()), ties=ties, sysu=protocol == "sysu")
    max_rank = PROTOCOLS[protocol].default_max_rank
    result = evaluate_rank(*problem, protocol=protocol, ap=ap)
    assert len(result.cmc) == max_rank  # gallery of 70 kept items < 50 for most queries: padded
    assert result.num_queries == len(problem[1])
    assert_matches_reference(result, reference(*problem, protocol=protocol, max_rank=max_rank, ap=ap))


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_gallery_smaller_than_max_rank_pads_with_last_value(protocol):
    problem = make_problem(7, n_q=15, n_g=9, n_ids=4, sysu=protocol == "sysu")
    result = evaluate_rank(*problem, protocol=protocol, max_rank=30)
    assert len(result.cmc) == 30
    assert np.all(result.cmc[9:] == result.cmc[8]) and result.cmc[-1] == pytest.approx(1.0)
    assert_matches_reference(result, reference(*problem, protocol=protocol, max_rank=30))


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_chunking_devices_and_dtypes_do_not_change_results(protocol):
    problem = make_problem(3, n_q=33, n_g=50, ties=True, sysu=protocol == "sysu")
    whole = evaluate_rank(*problem, protocol=protocol)
    distmat, *label_arrays = problem
    one_row_chunks = evaluate_rank(*problem, protocol=protocol, max_chunk_bytes=1)
    as_torch = evaluate_rank(
        torch.from_numpy(distmat).double(), *map(torch.from_numpy, label_arrays), protocol=protocol
    )
    for other in (one_row_chunks, as_torch):
        np.testing.assert_allclose(other.cmc, whole.cmc)
        assert other.mAP == pytest.approx(whole.mAP) and other.mINP == pytest.approx(whole.mINP)
        np.testing.assert_array_equal(other.first_match_rank, whole.first_match_rank)


def test_sysu_camera_rule_is_configurable():
    problem = make_problem(11, sysu=True)
    default = evaluate_rank(*problem, protocol="sysu")
    explicit = evaluate_rank(*problem, protocol="sysu", sysu_exclude=(2, 1))
    other = evaluate_rank(*problem, protocol="sysu", sysu_exclude=(5, 3))
    assert default.mAP == explicit.mAP
    assert_matches_reference(other, reference(*problem, protocol="sysu", max_rank=20, sysu_exclude=(5, 3)))


def test_cuhk03_classic_is_seeded_and_equals_market_with_one_image_per_identity():
    problem = make_problem(5)
    a = evaluate_rank(*problem, protocol="cuhk03_classic", seed=1)
    b = evaluate_rank(*problem, protocol="cuhk03_classic", seed=1)
    c = evaluate_rank(*problem, protocol="cuhk03_classic", seed=2, num_repeats=3)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert_matches_reference(c, reference(*problem, protocol="cuhk03_classic", max_rank=50, seed=2, num_repeats=3))
    # one gallery image per identity: single-shot sampling has nothing to choose
    rng = np.random.default_rng(0)
    g_pids = np.arange(1, 31)
    q_pids = rng.integers(1, 31, 20)
    distmat = rng.random((20, 30))
    cams = np.zeros(20, dtype=int), np.ones(30, dtype=int)
    single = evaluate_rank(distmat, q_pids, g_pids, *cams, protocol="cuhk03_classic")
    market = evaluate_rank(distmat, q_pids, g_pids, *cams, protocol="market")
    np.testing.assert_allclose(single.cmc, market.cmc)


def test_per_query_outputs_and_skipped_queries():
    problem = make_problem(9)
    result = evaluate_rank(*problem)
    assert np.isnan(result.query_ap[:4]).all() and (result.first_match_rank[:4] == 0).all()
    valid = ~np.isnan(result.query_ap)
    assert valid.sum() == result.num_valid_queries
    assert result.mAP == pytest.approx(np.mean(result.query_ap[valid]))
    assert result.cmc[0] == pytest.approx(np.mean(result.first_match_rank[valid] == 1))


def test_perfect_ranking_and_known_values():
    # query 0: matches at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2; devkit: ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2
    distmat = np.array([[0.1, 0.2, 0.3, 0.9]])
    args = (distmat, np.array([1]), np.array([1, 2, 1, 3]), np.array([0]), np.array([1, 1, 1, 1]))
    standard = evaluate_rank(*args, max_rank=4)
    devkit = evaluate_rank(*args, max_rank=4, ap="devkit")
    assert standard.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert devkit.mAP == pytest.approx((1.0 + (0.5 + 2 / 3) / 2) / 2)
    assert standard.mINP == pytest.approx(2 / 3)
    np.testing.assert_allclose(standard.cmc, [1, 1, 1, 1])
    assert standard.as_dict() == pytest.approx({"R1": 100.0, "mAP": 100 * (1 + 2 / 3) / 2, "mINP": 100 * 2 / 3})
    assert "market protocol" in str(standard)


def test_ties_break_by_gallery_index():
    # all distances equal: the match at gallery index 2 is ranked third
    distmat = np.zeros((1, 4))
    result = evaluate_rank(distmat, [1], [5, 6, 1, 7], [0], [1, 1, 1, 1], max_rank=4)
    assert result.first_match_rank[0] == 3 and result.mAP == pytest.approx(1 / 3)


def test_infinite_distances_are_ranked_last():
    distmat = np.array([[np.inf, 0.2, np.inf, 0.1]])
    result = evaluate_rank(distmat, [1], [1, 2, 1, 3], [0], [1, 1, 1, 1], max_rank=4)
    # ranking: idx3, idx1, idx0 (match, inf, lower index), idx2 (match)
    assert result.first_match_rank[0] == 3 and result.mAP == pytest.approx((1 / 3 + 2 / 4) / 2)


@pytest.mark.parametrize("num_buckets", [1, 2, 5, 64])
def test_rank_core_exact_for_any_bucket_count(num_buckets):
    rng = np.random.default_rng(num_buckets)
    dist = torch.from_numpy(rng.integers(0, 8, (25, 60)).astype(np.float64))
    dist[3, 7] = dist[4, :] = float("inf")
    # 0 = positive, 1 = same identity but removed, 2 = other identity removed, 3 and 4 = negatives
    labels = torch.from_numpy(rng.integers(0, 5, (25, 60)))
    same_rows, same_cols = (labels <= 1).nonzero(as_tuple=True)
    is_pos = labels[same_rows, same_cols] == 0
    ranked = rank_positives(dist, same_rows, same_cols, is_pos, labels == 2, num_buckets=num_buckets,
                            max_exact_elements=7)  # fmt: skip
    for i in range(25):
        order = np.argsort(dist[i].numpy(), kind="stable")
        kept = order[np.isin(labels[i].numpy()[order], [0, 3, 4])]
        expected = np.flatnonzero(labels[i].numpy()[kept] == 0) + 1
        got = ranked.ranks[i, : int(ranked.num_pos[i])].numpy()
        np.testing.assert_array_equal(got, expected)


def test_evaluate_from_features_equals_evaluate_rank():
    rng = np.random.default_rng(2)
    q, g = rng.standard_normal((30, 16)).astype(np.float32), rng.standard_normal((80, 16)).astype(np.float32)
    _, q_pids, g_pids, q_cams, g_cams = make_problem(2, n_q=30, n_g=80)
    for metric in ("euclidean", "cosine"):
        dist = compute_distance(q, g, metric=metric)
        expected = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
        got = evaluate(q, g, q_pids, g_pids, q_cams, g_cams, metric=metric, max_chunk_bytes=1)
        assert got.mAP == pytest.approx(expected.mAP) and got.mINP == pytest.approx(expected.mINP)
        np.testing.assert_allclose(got.cmc, expected.cmc)
    masks = rng.random((30, 16)).astype(np.float32)
    dpm = evaluate(q, g, q_pids, g_pids, q_cams, g_cams, metric="masked_cosine", q_masks=masks, protocol="regdb")
    expected = evaluate_rank(compute_distance(q, g, metric="masked_cosine", q_masks=masks), q_pids, g_pids,
                             q_cams, g_cams, protocol="regdb")  # fmt: skip
    assert dpm.mAP == pytest.approx(expected.mAP)


def test_evaluate_with_rerank_uses_the_rerank_distances():
    from reidlab.evaluation import re_ranking

    rng = np.random.default_rng(4)
    q, g = rng.standard_normal((20, 8)), rng.standard_normal((60, 8))
    _, q_pids, g_pids, q_cams, g_cams = make_problem(4, n_q=20, n_g=60)
    got = evaluate(q, g, q_pids, g_pids, q_cams, g_cams, metric="euclidean", rerank={"k1": 6, "k2": 3})
    dist = re_ranking(q, g, k1=6, k2=3)
    expected = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    assert got.mAP == pytest.approx(expected.mAP)
    with pytest.raises(ValueError, match="rerank"):
        evaluate(q, g, q_pids, g_pids, q_cams, g_cams, metric="masked_cosine", q_masks=q, rerank=True)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "q_pids": a["q_pids"][:-1]}, "q_pids"),
        (lambda a: {**a, "g_camids": a["g_camids"][:-1]}, "g_camids"),
        (lambda a: {**a, "distmat": a["distmat"][:, :0]}, "distmat must not be empty"),
        (lambda a: {**a, "distmat": a["distmat"][0]}, "distmat must be a 2-D"),
        (lambda a: {**a, "distmat": np.where(a["distmat"] > 0.5, np.nan, a["distmat"])}, "NaN"),
        (lambda a: {**a, "q_pids": a["q_pids"].astype(float)}, "q_pids must hold integer labels, got dtype float64"),
        (lambda a: {**a, "protocol": "duke"}, "protocol"),
        (lambda a: {**a, "ap": "interpolated"}, "ap"),
        (lambda a: {**a, "max_rank": 0}, "max_rank"),
        (lambda a: {**a, "q_pids": a["q_pids"] + 1000}, "no query has a true match"),
    ],
)
def test_bad_input_raises_clear_errors(change, message):
    distmat, q_pids, g_pids, q_cams, g_cams = make_problem(1)
    args = dict(distmat=distmat, q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(**change(args))


def test_bad_features_raise_clear_errors():
    q, g = np.ones((3, 4), np.float32), np.ones((5, 4), np.float32)
    labels = (np.arange(3), np.arange(5), np.zeros(3, int), np.ones(5, int))
    with pytest.raises(ValueError, match="g_feats contains NaN"):
        evaluate(q, np.full((5, 4), np.nan, np.float32), *labels)
    with pytest.raises(ValueError, match="g_feats must not be empty"):
        evaluate(q, np.ones((0, 4), np.float32), labels[0], labels[1][:0], labels[2], labels[3][:0])
    with pytest.raises(ValueError, match="same dimension"):
        evaluate(q, np.ones((5, 3), np.float32), *labels)
    with pytest.raises(ValueError, match="metric"):
        evaluate(q, g, *labels, metric="manhattan")


@pytest.mark.parametrize("argument", ["q_pids", "g_pids", "q_camids", "g_camids"])
@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda n: [chr(97 + i % 26) for i in range(n)], "strings"),
        (lambda n: np.array([f"id{i}" for i in range(n)]), "strings"),
        (lambda n: np.array([f"id{i}".encode() for i in range(n)]), "bytes"),
        (lambda n: [None] + list(range(n - 1)), "objects"),
        (lambda n: torch.arange(n, dtype=torch.float32), "dtype torch.float32"),
    ],
)
def test_non_integer_labels_name_the_argument(argument, make, found):
    q, g = np.random.default_rng(0).normal(size=(3, 4)), np.random.default_rng(1).normal(size=(5, 4))
    args = {"q_pids": np.arange(3), "g_pids": np.arange(5), "q_camids": np.zeros(3, int), "g_camids": np.ones(5, int)}
    args[argument] = make(len(args[argument]))
    message = rf"{argument} must hold integer labels.*{found}"
    with pytest.raises(ValueError, match=message):
        evaluate(q, g, **args)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(np.zeros((3, 5)), **args)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_collapsed_features_give_finite_metrics(metric, value):
    q, g = np.full((4, 8), value, np.float32), np.full((6, 8), value, np.float32)
    labels = (np.arange(4), np.array([0, 1, 2, 3, 0, 1]), np.zeros(4, int), np.ones(6, int))
    plain = evaluate(q, g, *labels, metric=metric)
    assert np.isfinite(plain.mAP) and np.isfinite(plain.mINP) and np.isfinite(plain.cmc).all()
    assert plain.num_valid_queries == 4
    with pytest.warns(UserWarning, match="identical"):
        reranked = evaluate(q, g, *labels, metric=metric, rerank=True)
    assert reranked.mAP == pytest.approx(plain.mAP) and np.array_equal(reranked.cmc, plain.cmc)


# ----------------------------------------------------------------------------- cross-domain helper


def test_cross_domain_table_and_heatmap(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_FIGURES", str(tmp_path))
    results = {
        "bot_market": {"market": evaluate_rank(*make_problem(1)), "duke": {"R1": 40.0, "mAP": 20.0}},
        "bot_duke": {"market": evaluate_rank(*make_problem(2)), "duke": evaluate_rank(*make_problem(3))},
    }
    table = cross_domain_table(results)
    assert list(table.columns) == ["model", "target", "metric", "value", "protocol", "ap"]
    row = table[(table.model == "bot_market") & (table.target == "market") & (table.metric == "mAP")]
    assert row.value.item() == pytest.approx(100 * results["bot_market"]["market"].mAP)
    assert set(table[table.target == "duke"].metric) >= {"R1", "mAP"}
    table2, figure = cross_domain_report(results, metric="mAP", save_as="cross.png")
    assert (tmp_path / "cross.png").stat().st_size > 0
    assert figure.axes[0].get_title() == "cross-domain mAP (%)"
    with pytest.raises(ValueError, match="metric"):
        cross_domain_report(results, metric="R99")
    with pytest.raises(ValueError, match="results"):
        cross_domain_table({})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_cuda_matches_cpu(protocol):
    distmat, *labels = make_problem(8, ties=True, sysu=protocol == "sysu")
    cpu = evaluate_rank(distmat, *labels, protocol=protocol)
    gpu = evaluate_rank(
        torch.from_numpy(distmat).cuda(), *(torch.from_numpy(x).cuda() for x in labels), protocol=protocol
    )
    np.testing.assert_allclose(gpu.cmc, cpu.cmc)
    assert gpu.mAP == pytest.approx(cpu.mAP) and gpu.mINP == pytest.approx(cpu.mINP)


# ----------------------------------------------------------------------------- the benchmark module


def test_benchmark_runs_on_tiny_sizes_and_appends_its_section(tmp_path, capsys, monkeypatch):
    from reidlab.bench import eval as bench

    argv = ["--sizes", "tiny", "--inline", "--no-write", "--repeats", "1", "--dim", "32", "--rerank-dims", "32"]
    assert bench.main(argv) == 0
    records = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(records) == 5 and all('"error"' not in r for r in records)
    # dense NumPy references agree with reidlab (the "check" column)
    assert all(json.loads(r).get("max_abs_diff", 0.0) < 1e-4 for r in records)

    # with writing: the run lands in this benchmark's own section, other sections untouched
    monkeypatch.setenv("REIDLAB_FIGURES", str(tmp_path))
    path = tmp_path / "benchmarks.md"
    path.write_text("# reidlab benchmarks\n\n## Training\n\ntrain table\n", encoding="utf-8")
    argv = ["--sizes", "tiny", "--cases", "rank", "--inline", "--repeats", "1"]
    assert bench.main(argv) == 0 and bench.main(argv) == 0
    text = path.read_text(encoding="utf-8")
    assert "## Training\n\ntrain table" in text
    assert (
        text.count(bench.HEADING) == 1
        and text.count("### ") == 2
        and text.index("## Training") < text.index(bench.HEADING)
    )
