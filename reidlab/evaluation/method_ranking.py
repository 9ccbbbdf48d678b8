"""Methods ranked per setting from a long results table, and a reading of that ranking written from its numbers."""

from __future__ import annotations

import pandas as pd


def rank_methods(frame: pd.DataFrame, *, metric: str = "mAP", by: str = "setting") -> pd.DataFrame:
    """Per ``by`` group (e.g. in-domain / cross-domain / zero-shot): each method (and variant) with its mean
    ``metric`` over that group's cells, the number of cells, and its rank (1 = best)."""
    missing = {metric, by, "method"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks column(s) {sorted(missing)}; it has {list(frame.columns)}")
    label = frame["method"] + frame.get("variant", pd.Series("", index=frame.index)).fillna("").map(
        lambda v: f" [{v}]" if v else "")
    grouped = (frame.assign(entry=label).groupby([by, "entry"], sort=False)[metric]
               .agg(["mean", "count"]).reset_index()
               .rename(columns={"entry": "method", "mean": f"mean {metric}", "count": "cells"}))  # fmt: skip
    grouped[f"mean {metric}"] = grouped[f"mean {metric}"].round(2)
    grouped["rank"] = grouped.groupby(by)[f"mean {metric}"].rank(ascending=False, method="min").astype(int)
    return grouped.sort_values([by, "rank"]).reset_index(drop=True)


def describe_ranking(ranking: pd.DataFrame, *, metric: str = "mAP", by: str = "setting") -> str:
    """One paragraph: per group, the leader, its margin over the runner-up, and the spread — from the numbers."""
    column = f"mean {metric}"
    sentences = []
    for group, part in ranking.groupby(by, sort=False):
        part = part.sort_values(column, ascending=False)
        best = part.iloc[0]
        text = f"{group}: {best['method']} leads with {best[column]:.1f} mean {metric} over {best['cells']} cell(s)"
        if len(part) > 1:
            second, last = part.iloc[1], part.iloc[-1]
            margin = best[column] - second[column]
            text += (f", {margin:.1f} points ahead of {second['method']} ({second[column]:.1f})"
                     + (" — within a point, so not a clear win" if margin < 1.0 else "")
                     + (f"; the last, {last['method']}, has {last[column]:.1f}" if len(part) > 2 else ""))  # fmt: skip
        sentences.append(text + ".")
    return " ".join(sentences) if sentences else "No results to rank."
