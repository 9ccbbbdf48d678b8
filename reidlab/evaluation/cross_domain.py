"""Cross-domain result tables: ``{model: {target: RankResult}}`` -> tidy DataFrame and a seaborn heatmap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from reidlab.evaluation.result import RankResult

TABLE_COLUMNS = ("model", "target", "metric", "value", "protocol", "ap")


def _numbers(result: RankResult | Mapping[str, float], where: str) -> tuple[dict[str, float], str, str]:
    if isinstance(result, RankResult):
        return result.as_dict(), result.protocol, result.ap
    if isinstance(result, Mapping):
        return {str(k): float(v) for k, v in result.items()}, "", ""
    raise ValueError(
        f"results[{where}] must be a RankResult or a mapping of metric -> percent, got {type(result).__name__}"
    )


def cross_domain_table(results: Mapping[str, Mapping[str, RankResult | Mapping[str, float]]]) -> pd.DataFrame:
    """Tidy table with one row per (model, target, metric); ``value`` in percent.

    ``results[model][target]`` is a :class:`RankResult` (or an ``as_dict()``-style mapping, e.g. loaded
    from JSON). Rows keep the insertion order of models and targets.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty mapping {model: {target: RankResult}}")
    rows: list[dict[str, Any]] = []
    for model, per_target in results.items():
        if not isinstance(per_target, Mapping) or not per_target:
            raise ValueError(f"results[{model!r}] must be a non-empty mapping {{target: RankResult}}")
        for target, result in per_target.items():
            numbers, protocol, ap = _numbers(result, f"{model!r}][{target!r}")
            for metric, value in numbers.items():
                rows.append(dict(model=model, target=target, metric=metric, value=value, protocol=protocol, ap=ap))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def cross_domain_heatmap(table: pd.DataFrame, *, metric: str = "mAP", ax=None, save_as: str | None = None, **heatmap):
    """Heatmap of ``metric`` (models as rows, targets as columns) from :func:`cross_domain_table`'s output.

    ``save_as``: a PNG file name written (atomically) under :func:`reidlab.paths.figures_dir`.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    available = sorted(set(table["metric"]))
    if metric not in available:
        raise ValueError(f"metric must be one of {available}, got {metric!r}")
    subset = table[table["metric"] == metric]
    grid = subset.pivot(index="model", columns="target", values="value")
    grid = grid.reindex(index=list(dict.fromkeys(subset["model"])), columns=list(dict.fromkeys(subset["target"])))
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 1.3 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
    options = dict(annot=True, fmt=".1f", cmap="viridis", vmin=0.0, vmax=100.0, cbar_kws={"label": f"{metric} (%)"})
    options.update(heatmap)
    sns.heatmap(grid, ax=ax, **options)
    ax.set_xlabel("target")
    ax.set_ylabel("model")
    ax.set_title(f"cross-domain {metric} (%)")
    figure = ax.figure
    figure.tight_layout()
    if save_as is not None:
        from reidlab.io import atomic_path
        from reidlab.paths import figures_dir

        with atomic_path(figures_dir() / save_as) as tmp:
            figure.savefig(tmp, format="png", dpi=150)
    return figure


def cross_domain_report(
    results: Mapping[str, Mapping[str, RankResult | Mapping[str, float]]],
    *,
    metric: str = "mAP",
    save_as: str | None = None,
):
    """``(tidy table, heatmap Figure)`` in one call (see the two functions above)."""
    table = cross_domain_table(results)
    return table, cross_domain_heatmap(table, metric=metric, save_as=save_as)
