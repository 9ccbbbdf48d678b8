"""Write each synthetic world in the folder layout and file naming of the real dataset it stands for.

A layout planner decides identities, tracklets, file names and side files (list / id / idx files)
and returns a :class:`Plan`; :mod:`.generator` renders and writes it. All names follow the real
releases (spec: methods-dmf-dpm-ivreid.md §0.8, §2.5, §3.5; methods-mudeep-clipreid-multimodal.md §4):

* market: ``{bounding_box_train,query,bounding_box_test}/0002_c1s1_000451_03.jpg`` (pid 0 distractors,
  pid -1 junk in the gallery)
* duke / occluded_duke: the same folders, ``0001_c2_f0046182.jpg``
* cuhk03: ``{detected,labeled}/{bounding_box_train,query,bounding_box_test}/0001_c1_1.png``
* msmt: ``{train,test}/0000/0000_000_01_0303morning_0015_0.jpg`` + ``list_{train,val,query,gallery}.txt``
* randperson: ``randperson_subset/000000_s00_c00_f000264.jpg``
* occluded_reid: ``{occluded_body_images,whole_body_images}/001/001_01.tif``
* sysu: ``cam{1..6}/0001/0001.jpg`` + ``exp/{train,val,test}_id.txt``
* regdb: ``{Visible,Thermal}/<id>/<file>.bmp`` + ``idx/{train,test}_{visible,thermal}_{1..10}.txt``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .catalog import (
    Cuhk03Sizes,
    MarketSizes,
    MsmtSizes,
    OccludedReidSizes,
    RandPersonSizes,
    RegdbSizes,
    SysuSizes,
    WorldSpec,
)
from .render import Shots
from .scene import Camera
from .world import (
    OCCLUDER_MIX,
    Tracklets,
    junk_shots,
    make_tracklets,
    pick_cameras,
    split_total,
    split_with_caps,
    spread_over,
)

MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass
class Plan:
    """Everything to write: one row per image plus side files and the identity table keys."""

    shots: Shots
    paths: list[str]  # relative to the world root
    infrared: np.ndarray  # bool per image
    split: list[str]  # train / val / query / gallery / distractor / junk (for the manifest)
    pid: np.ndarray  # pid as written in the name / list (-1 junk, 0 distractor)
    texts: dict[str, str] = field(default_factory=dict)  # side files: relative path -> content
    identities: dict[str, int] = field(default_factory=dict)  # attribute key -> identity row


class _Builder:
    def __init__(self) -> None:
        self.parts: list[Shots] = []
        self.paths: list[str] = []
        self.infrared: list[np.ndarray] = []
        self.split: list[str] = []
        self.pid: list[np.ndarray] = []
        self.used: set[str] = set()

    def add(self, shots: Shots, paths: list[str], split: str | list[str], pid: np.ndarray, infrared=False) -> None:
        if len(paths) != len(shots):
            raise AssertionError("one path per shot expected")
        dup = self.used.intersection(paths)
        if dup or len(set(paths)) != len(paths):
            raise AssertionError(f"duplicate file names planned, e.g. {sorted(dup)[:3]}")
        self.used.update(paths)
        self.parts.append(shots)
        self.paths.extend(paths)
        self.infrared.append(np.broadcast_to(np.asarray(infrared, bool), (len(shots),)).copy())
        self.split.extend([split] * len(shots) if isinstance(split, str) else split)
        self.pid.append(np.asarray(pid, np.int64))

    def build(self, texts: dict[str, str], identities: dict[str, int]) -> Plan:
        return Plan(
            shots=Shots.concat(self.parts), paths=self.paths, infrared=np.concatenate(self.infrared),
            split=self.split, pid=np.concatenate(self.pid), texts=texts, identities=identities,
        )


@dataclass
class Context:
    """What every planner gets: random stream, world spec, cameras and the identity rows it may use."""

    rng: np.random.Generator
    spec: WorldSpec
    cameras: list[Camera]
    anonymous: tuple[int, int]  # identity rows of anonymous people (distractors, occluding pedestrians)
    gender: np.ndarray  # 0 man / 1 woman per identity row

    def tracklets(self, ident, cam, length, occlusion=0.0) -> Tracklets:
        return make_tracklets(self.rng, self.cameras, ident, cam, length, box=self.spec.domain.box,
                              occlusion=occlusion, anonymous=self.anonymous)

    def occlusion(self, split: str) -> float:
        return float(self.spec.occlusion.get(split, 0.0))


def identities_needed(spec: WorldSpec, size: str) -> tuple[int, int]:
    """(identified people, anonymous people) a world needs at a size."""
    s = spec.size(size)
    if isinstance(s, Cuhk03Sizes):
        s = s.detected
    if isinstance(s, MarketSizes):
        named = s.train_ids + s.query_ids + s.gallery_only_ids
    elif isinstance(s, MsmtSizes):
        named = s.train_ids + s.test_ids
    elif isinstance(s, RandPersonSizes | OccludedReidSizes | RegdbSizes):
        named = s.ids
    elif isinstance(s, SysuSizes):
        named = s.train_ids + s.val_ids + s.test_ids
    else:
        raise TypeError(f"unknown sizes {type(s).__name__}")
    return named, max(40, min(2000, named // 2))


# ----------------------------------------------------------------------------- shared allocation
def _train_tracklets(ctx: Context, rows: np.ndarray, total: int, cams: np.ndarray, max_cams: int = 6):
    """(ident, cam, length) of training tracklets: every identity in >= 2 cameras when it can be."""
    rng = ctx.rng
    counts = split_total(rng, total, len(rows), minimum=min(2, total // max(1, len(rows))))
    ident, cam, length = [], [], []
    for row, n in zip(rows, counts, strict=True):
        k = int(min(n, rng.integers(2, max_cams + 1), len(cams)))
        chosen = pick_cameras(rng, cams, k)
        ident += [row] * k
        cam += chosen.tolist()
        length += spread_over(rng, int(n), k).tolist()
    return np.array(ident), np.array(cam), np.array(length)


def _test_tracklets(ctx: Context, query_rows: np.ndarray, other_rows: np.ndarray, sizes: MarketSizes, cams: np.ndarray):
    """Tracklets of the test identities and, for each, which frame is a query.

    Query identities get ``q_i`` queries in distinct cameras plus gallery images in at least one
    other camera, so that every query has a cross-camera match; gallery-only identities get
    gallery images only.
    """
    rng = ctx.rng
    n_cams = len(cams)
    if sizes.one_query_per_camera:
        q = split_with_caps(rng, sizes.query_images, np.full(len(query_rows), n_cams), minimum=1)
    else:
        q = split_total(rng, sizes.query_images, len(query_rows), minimum=1)
    cam_sets, query_cams = [], []
    for qi in q:
        k_query = int(min(qi, n_cams))
        qc = pick_cameras(rng, cams, k_query)
        extra = 1 if k_query == 1 or (k_query < n_cams and rng.random() < 0.3) else 0
        rest = np.setdiff1d(cams, qc)
        others = pick_cameras(rng, rest, extra) if extra and len(rest) else np.zeros(0, np.int64)
        cam_sets.append(np.union1d(qc, others))
        query_cams.append(qc)
    for _ in other_rows:
        cam_sets.append(pick_cameras(rng, cams, int(rng.integers(1, min(n_cams, 5) + 1))))
    need = np.array([len(s) for s in cam_sets])
    if sizes.gallery_images < need.sum():
        raise ValueError(f"gallery_images={sizes.gallery_images} too small for {need.sum()} identity-camera pairs")
    g = need + split_total(rng, sizes.gallery_images - int(need.sum()), len(cam_sets), minimum=0)
    rows = np.concatenate([query_rows, other_rows])
    ident, cam, length, queries_per_track = [], [], [], []
    for i, (row, cs, gi) in enumerate(zip(rows, cam_sets, g, strict=True)):
        per_cam = spread_over(rng, int(gi), len(cs))
        for c, n_gal in zip(cs, per_cam, strict=True):
            if i < len(query_rows) and sizes.one_query_per_camera:
                nq = int(c in query_cams[i])
            elif i < len(query_rows):
                nq = int(q[i]) if c == query_cams[i][0] else 0
            else:
                nq = 0
            ident.append(row)
            cam.append(int(c))
            length.append(int(n_gal) + nq)
            queries_per_track.append(nq)
    return np.array(ident), np.array(cam), np.array(length), np.array(queries_per_track)


def _query_mask(rng: np.random.Generator, tr: Tracklets, queries_per_track: np.ndarray) -> np.ndarray:
    """Mark ``queries_per_track[t]`` random frames of every tracklet ``t`` as queries."""
    mask = np.zeros(len(tr.track), bool)
    lengths = np.bincount(tr.track, minlength=len(queries_per_track))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for t in np.nonzero(queries_per_track)[0]:
        mask[starts[t] + rng.choice(lengths[t], size=int(queries_per_track[t]), replace=False)] = True
    return mask


def _occlude(ctx: Context, shots: Shots, rate: float) -> Shots:
    """Re-draw which images are occluded with ``rate`` (tracklet occluder kinds are kept)."""
    n = len(shots)
    occluded = ctx.rng.random(n) < rate
    kinds = np.array(list(OCCLUDER_MIX))
    kind = np.where(shots.occ_kind > 0, shots.occ_kind,
                    ctx.rng.choice(kinds, size=n, p=np.array(list(OCCLUDER_MIX.values()))))
    if ctx.anonymous[1] <= ctx.anonymous[0]:
        kind = np.where(kind == 5, 1, kind)
    return Shots(**{**shots.__dict__, "occ_kind": np.where(occluded, kind, 0).astype(np.int64)})


# ----------------------------------------------------------------------------- Market-style
Namer = Callable[[int, int, int, int], str]  # (pid, camera 1-based, tracklet key, frame) -> file name


def _market_namer(rng: np.random.Generator) -> Namer:
    seqs: dict[int, tuple[int, int, int]] = {}

    def name(pid: int, cam: int, track: int, frame: int) -> str:
        if track not in seqs:
            seqs[track] = (int(rng.integers(1, 7)), int(rng.integers(0, 150000)), int(rng.integers(4, 30)))
        seq, start, step = seqs[track]
        bbox = int(rng.integers(1, 9))
        head = "-1" if pid == -1 else f"{pid:04d}"
        return f"{head}_c{cam}s{seq}_{start + frame * step:06d}_{bbox:02d}.jpg"

    return name


def _duke_namer(rng: np.random.Generator) -> Namer:
    starts: dict[int, tuple[int, int]] = {}

    def name(pid: int, cam: int, track: int, frame: int) -> str:
        if track not in starts:
            starts[track] = (int(rng.integers(0, 400000)), int(rng.integers(10, 60)))
        start, step = starts[track]
        return f"{pid:04d}_c{cam}_f{start + frame * step:07d}.jpg"

    return name


def _cuhk_namer() -> Namer:
    running: dict[int, int] = {}

    def name(pid: int, cam: int, track: int, frame: int) -> str:
        running[pid] = running.get(pid, 0) + 1
        return f"{pid:04d}_c{cam}_{running[pid]}.png"

    return name


def _names(namer: Namer, pids: np.ndarray, shots: Shots, track: np.ndarray, frame: np.ndarray, key0: int,
           used: set[str], folder: str) -> list[str]:
    out = []
    for pid, cam, t, f in zip(pids.tolist(), shots.cam.tolist(), track.tolist(), frame.tolist(), strict=True):
        path = f"{folder}/{namer(pid, cam + 1, key0 + t, f)}"
        bump = 0
        while path in used:  # the rare collision of random frame numbers: move to the next frame
            bump += 1
            path = f"{folder}/{namer(pid, cam + 1, key0 + t, f + 1000 * bump)}"
        used.add(path)
        out.append(path)
    return out


def _assign_pids(rng: np.random.Generator, n: int, max_pid: int) -> np.ndarray:
    if n > max_pid:
        raise ValueError(f"{n} identities do not fit in pids 1..{max_pid}")
    return np.sort(rng.choice(np.arange(1, max_pid + 1), size=n, replace=False))


def _plan_market_split(ctx: Context, b: _Builder, sizes: MarketSizes, rows: np.ndarray, pids: np.ndarray,
                       namer: Namer, prefix: str, junk_and_distractors: bool) -> None:
    """Train / query / gallery of one Market-style tree: ``rows`` are [train | query ids | gallery-only ids]."""
    rng, cams = ctx.rng, np.arange(ctx.spec.num_cams)
    used: set[str] = set()
    n_tr, n_q = sizes.train_ids, sizes.query_ids
    pid_of = dict(zip(rows.tolist(), pids.tolist(), strict=True))
    # train
    ident, cam, length = _train_tracklets(ctx, rows[:n_tr], sizes.train_images, cams)
    tr = ctx.tracklets(ident, cam, length, occlusion=ctx.occlusion("train"))
    p = np.array([pid_of[i] for i in tr.shots.ident])
    b.add(tr.shots, _names(namer, p, tr.shots, tr.track, tr.frame, 0, used, prefix + MARKET_FOLDERS["train"]),
          "train", p)
    # test: queries and gallery come from the same (identity, camera) walks
    ident, cam, length, nq = _test_tracklets(ctx, rows[n_tr:n_tr + n_q], rows[n_tr + n_q:], sizes, cams)
    te = ctx.tracklets(ident, cam, length, occlusion=ctx.occlusion("gallery"))
    is_query = _query_mask(rng, te, nq)
    q_idx, g_idx = np.nonzero(is_query)[0], np.nonzero(~is_query)[0]
    key0 = 10**7
    for split, idx in (("query", q_idx), ("gallery", g_idx)):
        shots = te.shots.take(idx)
        shots = _occlude(ctx, shots, ctx.occlusion(split)) if split == "query" else shots
        p = np.array([pid_of[i] for i in shots.ident])
        folder = prefix + MARKET_FOLDERS[split]
        b.add(shots, _names(namer, p, shots, te.track[idx], te.frame[idx], key0, used, folder), split, p)
    if not junk_and_distractors:
        return
    folder = prefix + MARKET_FOLDERS["gallery"]
    key0 = 2 * 10**7
    if sizes.distractor_images:  # pid 0: people who are not part of the set, single frames
        n = sizes.distractor_images
        lo, hi = ctx.anonymous
        d = ctx.tracklets(rng.integers(lo, hi, n), rng.integers(0, len(cams), n), np.ones(n, np.int64))
        p = np.zeros(n, np.int64)
        b.add(d.shots, _names(namer, p, d.shots, d.track, d.frame, key0, used, folder), "distractor", p)
    if sizes.junk_images:  # pid -1: bad detections of test people or of nothing
        n = sizes.junk_images
        test_rows = rows[n_tr:]
        j = ctx.tracklets(rng.choice(test_rows, n), rng.integers(0, len(cams), n), np.ones(n, np.int64))
        shots = junk_shots(rng, j.shots)
        p = np.full(n, -1, np.int64)
        b.add(shots, _names(namer, p, shots, j.track, j.frame, 2 * key0, used, folder), "junk", p)


def plan_market_style(ctx: Context, size: str) -> Plan:
    """market and duke layouts (the naming differs: Market's ``c1s1_000451_03`` vs Duke's ``c2_f0046182``)."""
    sizes: MarketSizes = ctx.spec.size(size)  # type: ignore[assignment]
    n = sizes.train_ids + sizes.query_ids + sizes.gallery_only_ids
    pids = _assign_pids(ctx.rng, n, sizes.max_pid)
    rows = ctx.rng.permutation(n)  # identity row i gets pid pids[position of i]: train/test pids interleave
    b = _Builder()
    namer = _market_namer(ctx.rng) if ctx.spec.layout == "market" else _duke_namer(ctx.rng)
    order = np.argsort(rows)
    row_pids = pids[order]  # pid of each row in `rows` order
    _plan_market_split(ctx, b, sizes, rows, row_pids, namer, "", ctx.spec.layout == "market")
    identities = {str(int(p)): int(r) for r, p in zip(rows, row_pids, strict=True)}
    return b.build({}, identities)


def plan_cuhk03(ctx: Context, size: str) -> Plan:
    """detected/ and labeled/ trees of the same people (labeled boxes are tighter)."""
    sizes: Cuhk03Sizes = ctx.spec.size(size)  # type: ignore[assignment]
    s0 = sizes.detected
    n = s0.train_ids + s0.query_ids
    pids = _assign_pids(ctx.rng, n, s0.max_pid)
    rows = ctx.rng.permutation(n)
    row_pids = pids[np.argsort(rows)]
    b = _Builder()
    for subset, sub_sizes in (("detected", sizes.detected), ("labeled", sizes.labeled)):
        if sub_sizes.train_ids + sub_sizes.query_ids != n:
            raise ValueError("CUHK03-NP detected and labeled must have the same identities")
        _plan_market_split(ctx, b, sub_sizes, rows, row_pids, _cuhk_namer(), f"{subset}/", False)
    identities = {str(int(p)): int(r) for r, p in zip(rows, row_pids, strict=True)}
    plan = b.build({}, identities)
    labeled = np.array([p.startswith("labeled/") for p in plan.paths])
    plan.shots.scale[labeled] = 1.0 + 0.4 * (plan.shots.scale[labeled] - 1.0)
    plan.shots.dx[labeled] *= 0.4
    plan.shots.dy[labeled] *= 0.4
    return plan


# ----------------------------------------------------------------------------- MSMT17
_MSMT_DAYS = ("0113", "0114", "0302", "0303")
_MSMT_TIMES = ("morning", "noon", "afternoon")
_MSMT_TIME_GAIN = {"morning": 0.85, "noon": 1.12, "afternoon": 0.95}


def _msmt_names(tracks: Tracklets, idx: np.ndarray, folder: str, pid_offset: int, key0: int,
                counter: dict[int, int]) -> tuple[Shots, list[str], list[str], np.ndarray]:
    """Shots, paths and list lines of MSMT images ``idx``; the day/time slot of a walk sets its light."""
    shots = tracks.shots.take(idx)
    slot = (key0 + tracks.track[idx]) % (len(_MSMT_DAYS) * len(_MSMT_TIMES))
    shots.gain *= np.array([_MSMT_TIME_GAIN[_MSMT_TIMES[s % 3]] for s in slot.tolist()], np.float32)
    pid = shots.ident - pid_offset
    paths, lines = [], []
    for p, c, s, t, f in zip(pid.tolist(), shots.cam.tolist(), slot.tolist(), tracks.track[idx].tolist(),
                             tracks.frame[idx].tolist(), strict=True):
        k = counter.get(p, 0)
        counter[p] = k + 1
        stamp = f"{_MSMT_DAYS[s // 3]}{_MSMT_TIMES[s % 3]}"
        name = f"{p:04d}_{k:03d}_{c + 1:02d}_{stamp}_{(t * 37 + f * 3) % 10000:04d}_0.jpg"
        paths.append(f"{folder}/{p:04d}/{name}")
        lines.append(f"{p:04d}/{name} {p}")
    return shots, paths, lines, pid


def plan_msmt(ctx: Context, size: str) -> Plan:
    """MSMT17 V1: train/ and test/ folders of pid sub-folders, four list files; train and test pids both start at 0."""
    sizes: MsmtSizes = ctx.spec.size(size)  # type: ignore[assignment]
    rng, cams = ctx.rng, np.arange(ctx.spec.num_cams)
    b = _Builder()
    train_rows = np.arange(sizes.train_ids)
    test_rows = np.arange(sizes.train_ids, sizes.train_ids + sizes.test_ids)
    ident, cam, length = _train_tracklets(ctx, train_rows, sizes.train_images + sizes.val_images, cams, max_cams=8)
    tr = ctx.tracklets(ident, cam, length)
    msizes = MarketSizes(train_ids=0, train_images=0, query_ids=len(test_rows), query_images=sizes.query_images,
                         gallery_images=sizes.gallery_images)
    ident, cam, length, nq = _test_tracklets(ctx, test_rows, np.zeros(0, np.int64), msizes, cams)
    te = ctx.tracklets(ident, cam, length)
    is_query = _query_mask(rng, te, nq)
    is_val = np.zeros(len(tr.track), bool)
    is_val[rng.choice(len(is_val), size=sizes.val_images, replace=False)] = True
    texts: dict[str, str] = {}
    train_counter: dict[int, int] = {}
    test_counter: dict[int, int] = {}
    for tracks, mask, folder, split, offset, key0, counter in (
        (tr, ~is_val, "train", "train", 0, 0, train_counter),
        (tr, is_val, "train", "val", 0, 0, train_counter),
        (te, is_query, "test", "query", sizes.train_ids, 10**6, test_counter),
        (te, ~is_query, "test", "gallery", sizes.train_ids, 10**6, test_counter),
    ):
        shots, paths, lines, pid = _msmt_names(tracks, np.nonzero(mask)[0], folder, offset, key0, counter)
        b.add(shots, paths, split, pid)
        texts[f"list_{split}.txt"] = "\n".join(lines) + "\n"
    identities = {f"train/{r}": int(r) for r in train_rows}
    identities.update({f"test/{r - sizes.train_ids}": int(r) for r in test_rows})
    return b.build(texts, identities)


# ----------------------------------------------------------------------------- RandPerson
def plan_randperson(ctx: Context, size: str) -> Plan:
    sizes: RandPersonSizes = ctx.spec.size(size)  # type: ignore[assignment]
    rng = ctx.rng
    scene_cams = []
    for scene, k in enumerate(sizes.cameras_per_scene):
        scene_cams += [(scene, c) for c in range(k)]
    if len(scene_cams) != ctx.spec.num_cams:
        raise ValueError(f"{ctx.spec.name}: {len(scene_cams)} scene cameras but num_cams={ctx.spec.num_cams}")
    counts = split_total(rng, sizes.images, sizes.ids, minimum=2, spread=0.35)
    ident, cam, length = [], [], []
    for row, n in enumerate(counts.tolist()):
        scene = int(rng.integers(len(sizes.cameras_per_scene)))
        cams = np.array([i for i, (s, _) in enumerate(scene_cams) if s == scene])
        k = min(len(cams), n)
        chosen = pick_cameras(rng, cams, k)
        ident += [row] * k
        cam += chosen.tolist()
        length += spread_over(rng, n, k).tolist()
    tr = ctx.tracklets(np.array(ident), np.array(cam), np.array(length))
    frames: dict[tuple[int, int], int] = {}
    paths = []
    for p, c in zip(tr.shots.ident.tolist(), tr.shots.cam.tolist(), strict=True):
        s, sc = scene_cams[c]
        f = frames.get((p, c), int(rng.integers(0, 2000)))
        frames[(p, c)] = f + int(rng.integers(3, 12))
        paths.append(f"randperson_subset/{p:06d}_s{s:02d}_c{sc:02d}_f{f:06d}.jpg")
    b = _Builder()
    b.add(tr.shots, paths, "train", tr.shots.ident.copy())
    return b.build({}, {str(r): r for r in range(sizes.ids)})


# ----------------------------------------------------------------------------- Occluded-REID
def plan_occluded_reid(ctx: Context, size: str) -> Plan:
    sizes: OccludedReidSizes = ctx.spec.size(size)  # type: ignore[assignment]
    rng, k = ctx.rng, sizes.images_per_id
    b = _Builder()
    rows = np.arange(sizes.ids)
    cam_occ = rng.integers(0, ctx.spec.num_cams, sizes.ids)
    cam_whole = (cam_occ + rng.integers(1, ctx.spec.num_cams, sizes.ids)) % ctx.spec.num_cams
    for folder, split, cam, rate in (("occluded_body_images", "query", cam_occ, 1.0),
                                     ("whole_body_images", "gallery", cam_whole, 0.0)):
        tr = ctx.tracklets(rows, cam, np.full(sizes.ids, k), occlusion=rate)
        paths = [f"{folder}/{p + 1:03d}/{p + 1:03d}_{f + 1:02d}.tif"
                 for p, f in zip(tr.shots.ident.tolist(), tr.frame.tolist(), strict=True)]
        b.add(tr.shots, paths, split, tr.shots.ident + 1)
    return b.build({}, {str(r + 1): int(r) for r in rows})


# ----------------------------------------------------------------------------- SYSU-MM01
SYSU_RGB, SYSU_IR = np.array([0, 1, 3, 4]), np.array([2, 5])


def _modal_tracklets(ctx: Context, rows: np.ndarray, total: int, cams: np.ndarray):
    counts = split_total(ctx.rng, total, len(rows), minimum=1)
    ident, cam, length = [], [], []
    for row, n in zip(rows, counts.tolist(), strict=True):
        k = int(min(n, ctx.rng.integers(1, len(cams) + 1)))
        chosen = pick_cameras(ctx.rng, cams, k)
        ident += [row] * k
        cam += chosen.tolist()
        length += spread_over(ctx.rng, n, k).tolist()
    return ctx.tracklets(np.array(ident), np.array(cam), np.array(length))


def plan_sysu(ctx: Context, size: str) -> Plan:
    sizes: SysuSizes = ctx.spec.size(size)  # type: ignore[assignment]
    rng = ctx.rng
    n = sizes.train_ids + sizes.val_ids + sizes.test_ids
    pids = _assign_pids(rng, n, sizes.max_pid)
    perm = rng.permutation(n)
    groups = {"train": perm[: sizes.train_ids], "val": perm[sizes.train_ids: sizes.train_ids + sizes.val_ids],
              "test": perm[sizes.train_ids + sizes.val_ids:]}
    b = _Builder()
    counters: dict[tuple[int, int], int] = {}
    for rows, rgb, ir in ((np.concatenate([groups["train"], groups["val"]]), sizes.train_rgb, sizes.train_ir),
                          (groups["test"], sizes.test_rgb, sizes.test_ir)):
        for cams, total, infrared in ((SYSU_RGB, rgb, False), (SYSU_IR, ir, True)):
            tr = _modal_tracklets(ctx, np.sort(rows), total, cams)
            paths = []
            for row, c in zip(tr.shots.ident.tolist(), tr.shots.cam.tolist(), strict=True):
                pid = int(pids[row])
                k = counters.get((c, pid), 0) + 1
                counters[(c, pid)] = k
                paths.append(f"cam{c + 1}/{pid:04d}/{k:04d}.jpg")
            split = "train" if rows is not groups["test"] else ("query" if infrared else "gallery")
            b.add(tr.shots, paths, split, pids[tr.shots.ident], infrared=infrared)
    texts = {f"exp/{name}_id.txt": ",".join(str(int(p)) for p in np.sort(pids[rows])) + "\n"
             for name, rows in groups.items()}
    return b.build(texts, {str(int(pids[r])): int(r) for r in range(n)})


# ----------------------------------------------------------------------------- RegDB
def plan_regdb(ctx: Context, size: str) -> Plan:
    sizes: RegdbSizes = ctx.spec.size(size)  # type: ignore[assignment]
    rng, k = ctx.rng, sizes.images_per_modality
    rows = np.arange(sizes.ids)
    tr = ctx.tracklets(rows, np.zeros(sizes.ids, np.int64), np.full(sizes.ids, k))
    # RegDB's dual camera sees people from the front or the back only
    tr.shots.theta[:] = np.where(np.cos(tr.shots.theta) >= 0, 0.0, np.pi) + rng.normal(0, 0.15, len(tr.shots))
    gender = ctx.gender
    sex = np.where(gender == 0, "male", "female")
    view = np.where(np.cos(tr.shots.theta) >= 0, "front", "back")
    b = _Builder()
    names: dict[str, list[tuple[str, int]]] = {"visible": [], "thermal": []}
    for spectrum, folder, letter, cam in (("visible", "Visible", "v", 0), ("thermal", "Thermal", "t", 1)):
        shots = tr.shots.take(np.arange(len(tr.shots)))
        shots.cam[:] = cam
        paths = []
        for i, (row, f) in enumerate(zip(tr.shots.ident.tolist(), tr.frame.tolist(), strict=True)):
            pid = row + 1
            path = f"{folder}/{pid}/{sex[row]}_{view[i]}_{letter}_{row * k + f + 1:05d}_{f + 1}.bmp"
            paths.append(path)
            names[spectrum].append((path, pid))
        b.add(shots, paths, spectrum, rows[tr.shots.ident] + 1, infrared=spectrum == "thermal")
    texts = {}
    for trial in range(1, sizes.trials + 1):
        trial_rng = np.random.default_rng([ctx.spec.num_cams, trial, sizes.ids])
        train_ids = set((trial_rng.permutation(sizes.ids)[: sizes.ids // 2] + 1).tolist())
        for spectrum in ("visible", "thermal"):
            for split in ("train", "test"):
                lines = [f"{p} {pid}" for p, pid in names[spectrum] if (pid in train_ids) == (split == "train")]
                texts[f"idx/{split}_{spectrum}_{trial}.txt"] = "\n".join(lines) + "\n"
    return b.build(texts, {str(r + 1): int(r) for r in rows})


PLANNERS: dict[str, Callable[[Context, str], Plan]] = {
    "market": plan_market_style,
    "duke": plan_market_style,
    "cuhk03": plan_cuhk03,
    "msmt": plan_msmt,
    "randperson": plan_randperson,
    "occluded_reid": plan_occluded_reid,
    "sysu": plan_sysu,
    "regdb": plan_regdb,
}
