"""Benchmark: ``python -m reidlab.bench eval`` — reidlab's evaluator and re-ranking vs dense NumPy.

Random features shaped like Market-1501 (3,368 x 15,913) and MSMT17 (11,659 x 82,161) with a
realistic identity / camera structure (every identity seen by several cameras, Market's pid-0
distractors). Each case runs in its own subprocess so its peak memory (``ru_maxrss``; plus
``torch.cuda.max_memory_allocated`` on GPU) is its own. The dense baselines are written here:

* :func:`dense_evaluate_market` — the straightforward vectorised NumPy formulation of the Market rule
  (one full argsort, boolean masks, cumsums), what a fast peer evaluator does;
* :func:`dense_re_ranking` — a line-by-line NumPy transcription of the authors' k-reciprocal code
  (N x N matrices, per-row loops), with squared Euclidean distances between features.

Results are appended to ``figures/benchmarks.md`` under "## Evaluation (`python -m reidlab.bench eval`)".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

HEADING = "## Evaluation (`python -m reidlab.bench eval`)"


@dataclass(frozen=True)
class Size:
    num_query: int
    num_gallery: int
    num_ids: int
    num_cams: int
    num_distractors: int


SIZES = {
    "market": Size(3368, 15913, 750, 6, 2793),
    "msmt": Size(11659, 82161, 3060, 15, 0),
    "tiny": Size(60, 300, 20, 4, 30),
}

# ----------------------------------------------------------------------------- synthetic problem


def make_labels(size: Size, seed: int = 0):
    """pids / camids: each identity appears in 2..num_cams cameras; queries one per (id, camera) first."""
    rng = np.random.default_rng(seed)
    cams_of = [
        rng.choice(size.num_cams, rng.integers(2, size.num_cams + 1), replace=False) for _ in range(size.num_ids)
    ]
    pairs = [(pid + 1, cam) for pid in range(size.num_ids) for cam in cams_of[pid]]
    order = rng.permutation(len(pairs))
    picks = [pairs[i] for i in order[: size.num_query]]
    picks += [pairs[i] for i in rng.integers(0, len(pairs), max(0, size.num_query - len(picks)))]
    q_pids = np.array([p for p, _ in picks], dtype=np.int64)
    q_cams = np.array([c for _, c in picks], dtype=np.int64)
    n_real = size.num_gallery - size.num_distractors
    g_ids = np.concatenate([np.arange(size.num_ids), rng.integers(0, size.num_ids, n_real - size.num_ids)])
    g_pids = np.concatenate([g_ids + 1, np.zeros(size.num_distractors, dtype=np.int64)])
    g_cams = np.concatenate(
        [np.array([rng.choice(cams_of[i]) for i in g_ids]), rng.integers(0, size.num_cams, size.num_distractors)]
    )
    return q_pids, g_pids, q_cams, g_cams


def make_features(size: Size, dim: int, seed: int = 0, noise: float = 1.4, chunk: int = 8192):
    """Float32 features: identity centre + camera bias + noise (about 85-90% R1 under cosine).

    The noise grows like ``dim ** 0.25`` so that the difficulty does not depend on the dimension.
    """
    noise = noise * (dim / 128) ** 0.25
    q_pids, g_pids, q_cams, g_cams = make_labels(size, seed)
    rng = np.random.default_rng(seed + 1)
    centres = rng.standard_normal((size.num_ids + 1, dim), dtype=np.float32)
    centres[0] = 0.0  # distractors: noise around the origin
    cam_bias = 0.4 * rng.standard_normal((size.num_cams, dim), dtype=np.float32)

    def draw(pids, cams):
        out = np.empty((len(pids), dim), dtype=np.float32)
        for s in range(0, len(pids), chunk):
            p, c = pids[s : s + chunk], cams[s : s + chunk]
            out[s : s + chunk] = centres[p] + cam_bias[c] + noise * rng.standard_normal((len(p), dim), dtype=np.float32)
        return out

    return draw(q_pids, q_cams), draw(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def make_distmat(size: Size, seed: int = 0, dim: int = 128):
    """A float32 cosine-distance matrix, filled chunk by chunk into one preallocated array."""
    q, g, *labels = make_features(size, dim, seed)
    q_t = torch.nn.functional.normalize(torch.from_numpy(q), dim=1)
    g_t = torch.nn.functional.normalize(torch.from_numpy(g), dim=1)
    distmat = np.empty((len(q), len(g)), dtype=np.float32)
    for s in range(0, len(q), 1024):
        distmat[s : s + 1024] = (1.0 - q_t[s : s + 1024] @ g_t.T).numpy()
    return (distmat, *labels)


# ----------------------------------------------------------------------------- dense NumPy baselines


def dense_evaluate_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """``(cmc, mAP, mINP)`` of the Market rule: one full stable argsort, boolean masks, cumsums."""
    order = np.argsort(distmat, axis=1, kind="stable")
    matches = g_pids[order] == q_pids[:, None]
    keep = ~(matches & (g_camids[order] == q_camids[:, None]))
    pos = matches & keep
    del order, matches
    kept_rank = np.cumsum(keep, axis=1)
    num_pos = pos.sum(1)
    valid = num_pos > 0
    hits = np.cumsum(pos, axis=1)
    ap = np.where(pos, hits / np.maximum(kept_rank, 1), 0.0).sum(1)[valid] / num_pos[valid]
    rows = np.arange(len(distmat))
    first = kept_rank[rows, np.argmax(pos, axis=1)][valid]
    last = kept_rank[rows, pos.shape[1] - 1 - np.argmax(pos[:, ::-1], axis=1)][valid]
    cmc = np.array([(first <= k + 1).mean() for k in range(max_rank)])
    return cmc, float(ap.mean()), float((num_pos[valid] / last).mean())


def dense_re_ranking(q_feats, g_feats, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """The authors' k-reciprocal algorithm transcribed with dense N x N NumPy arrays and per-row loops.

    Squared Euclidean distances between the features (clamped at 0); V and the Jaccard matrix in the
    features' float dtype (float32 in the authors' Python version); ``argsort(kind="stable")``.
    """
    feats = np.concatenate([q_feats, g_feats])
    dtype = feats.dtype
    query_num, all_num = len(q_feats), len(feats)
    sq = (feats * feats).sum(1)
    original_dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T, 0.0).astype(dtype)
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist, dtype=dtype)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    half = int(np.around(k1 / 2))
    for i in range(all_num):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            c_forward = initial_rank[candidate, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, k_reciprocal)) > 2 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        V[i, expansion] = weight / np.sum(weight)
    original_dist = original_dist[:query_num]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=dtype)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=dtype)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=dtype)
        non_zero = np.where(V[i, :] != 0)[0]
        images = [inv_index[ind] for ind in non_zero]
        for j in range(len(non_zero)):
            temp_min[0, images[j]] = temp_min[0, images[j]] + np.minimum(V[i, non_zero[j]], V[images[j], non_zero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


# ----------------------------------------------------------------------------- one case (child process)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _timed(fn, repeats: int, device: torch.device):
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return out, times


def run_case(case: str, size_name: str, impl: str, dim: int, device_name: str, repeats: int, threads: int = 0) -> dict:
    """Run one benchmark case in this process; returns a JSON-able record."""
    from reidlab.evaluation import evaluate, evaluate_rank, re_ranking

    if threads:
        torch.set_num_threads(threads)
    size, device = SIZES[size_name], torch.device(device_name)
    record = dict(case=case, size=size_name, impl=impl, dim=dim, device=device_name, threads=torch.get_num_threads())
    if case == "rank":
        distmat, q_pids, g_pids, q_cams, g_cams = make_distmat(size)
        record["input_gb"] = distmat.nbytes / 2**30
        if impl == "reidlab":
            data = torch.from_numpy(distmat).to(device)
            baseline = _rss_gb()
            result, times = _timed(lambda: evaluate_rank(data, q_pids, g_pids, q_cams, g_cams), repeats, device)
            record.update(R1=100 * result.cmc[0], mAP=100 * result.mAP, mINP=100 * result.mINP)
        else:
            baseline = _rss_gb()
            (cmc, mAP, mINP), times = _timed(
                lambda: dense_evaluate_market(distmat, q_pids, g_pids, q_cams, g_cams), repeats, device
            )
            record.update(R1=100 * cmc[0], mAP=100 * mAP, mINP=100 * mINP)
    elif case == "features":
        q, g, q_pids, g_pids, q_cams, g_cams = make_features(size, dim)
        record["input_gb"] = (q.nbytes + g.nbytes) / 2**30
        q_t, g_t = torch.from_numpy(q).to(device), torch.from_numpy(g).to(device)
        baseline = _rss_gb()
        result, times = _timed(lambda: evaluate(q_t, g_t, q_pids, g_pids, q_cams, g_cams), repeats, device)
        record.update(R1=100 * result.cmc[0], mAP=100 * result.mAP, mINP=100 * result.mINP)
    elif case == "rerank":
        q, g, *_ = make_features(size, dim)
        q, g = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q, g))  # BoT: L2-normalised features
        record["input_gb"] = (q.nbytes + g.nbytes) / 2**30
        if impl == "reidlab":
            q_t, g_t = torch.from_numpy(q).to(device), torch.from_numpy(g).to(device)
            baseline = _rss_gb()
            _, times = _timed(lambda: re_ranking(q_t, g_t), repeats, device)
        else:
            baseline = _rss_gb()
            dense, times = _timed(lambda: dense_re_ranking(q, g), 1, device)
            ours = re_ranking(q, g)  # after the timing: its memory is below the dense peak
            record["max_abs_diff"] = float(np.abs(ours - dense).max())
    else:
        raise ValueError(f"unknown case {case!r}")
    if case == "rank" and impl == "dense":  # agreement with reidlab, computed after the timing
        ours = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
        record["max_abs_diff"] = max(abs(100 * ours.mAP - record["mAP"]), abs(100 * ours.cmc[0] - record["R1"]))
    record.update(
        seconds=min(times),
        seconds_all=times,
        baseline_rss_gb=baseline,
        peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    )
    if device.type == "cuda":
        record["peak_gpu_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return record


# ----------------------------------------------------------------------------- driver


def _machine(device: str) -> str:
    from reidlab.device import describe_device

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        mem = float("nan")
    return f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB RAM; {describe_device(device)}"


def _plan(args) -> list[tuple[str, str, str, int]]:
    cases = []
    for size in args.sizes:
        if "rank" in args.cases:
            cases.append(("rank", size, "reidlab", 128))
            if not (size == "msmt" and args.skip_dense_msmt):
                cases.append(("rank", size, "dense", 128))
        if "features" in args.cases:
            cases.append(("features", size, "reidlab", args.dim))
        if "rerank" in args.cases and (size != "msmt" or args.rerank_msmt):
            for dim in args.rerank_dims:
                cases.append(("rerank", size, "reidlab", dim))
            if not args.skip_dense_rerank and size != "msmt":
                cases.append(("rerank", size, "dense", args.rerank_dims[0]))
    return cases


def _run_child(case, size, impl, dim, args) -> dict:
    command = [sys.executable, "-m", "reidlab.bench.eval", "--child", case, size, impl, str(dim),
               "--device", args.device, "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(case=case, size=size, impl=impl, dim=dim, error=" / ".join(tail) or f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


WHAT = {
    ("rank", "reidlab"): "`evaluate_rank` from a distmat (market rule)",
    ("rank", "dense"): "dense NumPy evaluator (argsort + masks + cumsums)",
    ("features", "reidlab"): "`evaluate` from features (cosine, chunked distances)",
    ("rerank", "reidlab"): "`re_ranking` (k1=20, k2=6, λ=0.3)",
    ("rerank", "dense"): "dense NumPy re-ranking (authors' algorithm)",
}


def markdown_table(records: list[dict]) -> str:
    lines = [
        "| case | size | what | feature dim | torch threads | seconds (best of runs) | peak RSS GB (inputs GB) "
        "| peak GPU GB | R1 / mAP | check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        what = WHAT.get((r["case"], r["impl"]), r["impl"])
        dim = str(r["dim"]) if r["case"] != "rank" else "-"
        if "error" in r:
            lines.append(f"| {r['case']} | {r['size']} | {what} | {dim} | | failed: {r['error']} | | | | |")
            continue
        runs = ", ".join(f"{t:.2f}" for t in r["seconds_all"])
        gpu = f"{r['peak_gpu_gb']:.2f}" if "peak_gpu_gb" in r else "-"
        score = f"{r['R1']:.2f} / {r['mAP']:.2f}" if "R1" in r else "-"
        check = f"max abs diff vs reidlab {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        lines.append(
            f"| {r['case']} | {r['size']} | {what} | {dim} | {r['threads']} | **{r['seconds']:.2f}** ({runs}) "
            f"| {r['peak_rss_gb']:.2f} ({r['input_gb']:.2f}) | {gpu} | {score} | {check} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    def names(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    parser = argparse.ArgumentParser(prog="python -m reidlab.bench eval", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=names, default=["market", "msmt"], help="market,msmt,tiny")
    parser.add_argument("--cases", type=names, default=["rank", "features", "rerank"], help="rank,features,rerank")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension of the `evaluate` case")
    parser.add_argument("--rerank-dims", type=lambda v: [int(x) for x in names(v)], default=[2048, 768])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per case (0: torch's default)")
    parser.add_argument("--skip-dense-msmt", action="store_true", help="skip the dense NumPy MSMT17 evaluator")
    parser.add_argument("--skip-dense-rerank", action="store_true", help="skip the dense NumPy re-ranking")
    parser.add_argument("--rerank-msmt", action="store_true", help="also re-rank at MSMT17 size (GPU)")
    parser.add_argument("--inline", action="store_true", help="run cases in this process (no memory isolation)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave figures/benchmarks.md alone")
    parser.add_argument("--note", default="", help="a sentence added to the notes of this run")
    parser.add_argument("--child", nargs=4, metavar=("CASE", "SIZE", "IMPL", "DIM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"--sizes: unknown {unknown}; expected names from {sorted(SIZES)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        case, size, impl, dim = args.child
        print(json.dumps(run_case(case, size, impl, int(dim), args.device, args.repeats, args.threads)))
        return 0
    load_before = os.getloadavg()
    records = []
    for case, size, impl, dim in _plan(args):
        if args.inline:
            record = run_case(case, size, impl, dim, args.device, args.repeats, args.threads)
        else:
            record = _run_child(case, size, impl, dim, args)
        records.append(record)
        print(json.dumps(record), flush=True)
    table = markdown_table(records)
    load_after = os.getloadavg()
    command = "python -m reidlab.bench eval " + " ".join(argv)
    notes = [
        f"Machine: {_machine(args.device)}.",
        f"Load average (1 min) {load_before[0]:.2f} before and {load_after[0]:.2f} after the run"
        + (
            " — the cores were shared with other jobs, so CPU timings are upper bounds." if os.cpu_count() <= 4 else "."
        ),
        "Each case runs in a fresh subprocess; peak RSS includes the inputs, Python and torch "
        "(about 0.4 GB). `rank` cases evaluate a float32 cosine distmat of 128-d random features; "
        "`rerank` uses L2-normalised random features of the stated dimension.",
    ]
    if "msmt" in args.sizes and args.skip_dense_msmt and "rank" in args.cases:
        notes.append(
            "The dense NumPy evaluator was not run at MSMT17 size: its argsort alone is 7.7 GB and its masks "
            "and cumsums about 40 GB more, beyond this machine's memory."
        )
    if "msmt" in args.sizes and "rerank" in args.cases and not args.rerank_msmt:
        notes.append("Re-ranking at MSMT17 size (N = 93,820) was not run here (a GPU job: `--rerank-msmt`).")
    if args.note:
        notes.append(args.note)
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = f"### {stamp} — {args.device}\n\nCommand: `{command}`\n\n" + "\n".join(f"- {n}" for n in notes)
    section += "\n\n" + table + "\n"
    print(section)
    if not args.no_write:
        from reidlab.bench.record import append_section

        append_section(HEADING, section)
    return 0 if all("error" not in r for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
