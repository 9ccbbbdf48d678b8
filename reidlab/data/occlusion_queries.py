"""Paired occluded / unoccluded query sets on one gallery, for asking how much occlusion costs a model.

Occluded-Duke's queries are all occluded, so "occluded vs unoccluded queries" needs unoccluded queries of the
same people. :func:`occlusion_query_sets` takes, for every query identity, one **unoccluded** gallery image
(hidden share 0 in the synthetic world's ``manifest.csv``) seen by a camera from which another gallery image of
that identity remains, moves it out of the gallery into an "unoccluded" query set, and keeps the identity's own
occluded queries as the "occluded" set. Both sets are ranked against the same reduced gallery, so the two numbers
differ only by the queries' occlusion. Identities without such an image are left out of both sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from reidlab.data.records import ReIDDataset


def occlusion_query_sets(
    dataset: ReIDDataset, hidden: Mapping[str, float], *, seed: int = 0
) -> dict[str, ReIDDataset]:
    """``{"occluded": ..., "unoccluded": ...}``: two test sets sharing one gallery (see the module docstring).

    ``hidden`` maps image paths to the share of the person hidden (``manifest(dataset)`` of a synthetic world:
    ``dict(zip(table.path, table.hidden))``); a gallery image missing from it counts as occluded.
    """
    if not dataset.query or not dataset.gallery:
        raise ValueError(f"{dataset.name}: needs a query and a gallery split")
    rng = np.random.default_rng(seed)
    by_pid: dict[int, list[int]] = {}
    for i, s in enumerate(dataset.gallery):
        by_pid.setdefault(s.pid, []).append(i)
    moved: dict[int, int] = {}
    for pid in sorted({s.pid for s in dataset.query}):
        members = by_pid.get(pid, [])
        clear = [i for i in members if hidden.get(dataset.gallery[i].path, 1.0) == 0.0]
        usable = [i for i in clear if any(dataset.gallery[j].camid != dataset.gallery[i].camid
                                          for j in members if j != i)]  # fmt: skip
        if usable:
            moved[pid] = int(rng.choice(usable))
    if not moved:
        raise ValueError(f"{dataset.name}: no query identity has an unoccluded gallery image to use as a query")
    taken = set(moved.values())
    gallery = [s for i, s in enumerate(dataset.gallery) if i not in taken]
    occluded = [s for s in dataset.query if s.pid in moved]
    unoccluded = [dataset.gallery[i] for i in moved.values()]
    note = f"{len(moved)} of {len({s.pid for s in dataset.query})} query identities with an unoccluded image"
    return {
        name: replace(dataset, name=f"{dataset.name} ({name} queries)", train=[], query=query, gallery=gallery,
                      empty_by_design=("train",), notes={**dataset.notes, "query": f"{name} queries; {note}"})
        for name, query in (("occluded", occluded), ("unoccluded", unoccluded))
    }  # fmt: skip
