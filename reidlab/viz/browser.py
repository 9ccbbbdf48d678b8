"""Interactive ranking browser (ipywidgets): pick a model and a query, see its ranking, toggle Grad-CAM.

The browser renders matplotlib figures to PNG inside an ``ipywidgets.Image``, so it builds and
renders without a display (papermill, tests); in Jupyter the controls are live. A model may be
given as a loader (a function returning its :class:`RetrievalView`), called when it is first
picked: the model list can name every trained run without ranking them all up front.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import nn

from reidlab.viz.gradcam import CAM_METHODS, EmbeddingCAM
from reidlab.viz.images import IMAGENET_MEAN, IMAGENET_STD
from reidlab.viz.per_query import PerQueryResult, per_query_metrics
from reidlab.viz.ranking import plot_ranking


@dataclass
class RetrievalView:
    """One model's retrieval result. Grad-CAM needs ``model`` and its input recipe: ``transform``
    (PIL -> normalised tensor, e.g. ``reidlab.data.build_test_transform``) or ``image_size`` + ``mean``/``std``."""

    distmat: np.ndarray | torch.Tensor
    query: Sequence[Any]
    gallery: Sequence[Any]
    model: nn.Module | None = None
    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    transform: Callable | None = None
    target_layer: nn.Module | str | None = None  # Grad-CAM layer (None: the model's default)
    metrics: PerQueryResult | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.distmat, torch.Tensor):
            self.distmat = self.distmat.detach().cpu().numpy()
        shape = (len(self.query), len(self.gallery))
        if self.distmat.shape != shape:
            raise ValueError(f"distmat: expected shape {shape} (queries, gallery), got {self.distmat.shape}")
        if self.metrics is None:
            pids = lambda samples: [s.pid for s in samples]  # noqa: E731
            cams = lambda samples: [s.camid for s in samples]  # noqa: E731
            self.metrics = per_query_metrics(
                self.distmat, pids(self.query), pids(self.gallery), cams(self.query), cams(self.gallery)
            )

    @property
    def can_explain(self) -> bool:
        return self.model is not None and (self.image_size is not None or self.transform is not None)


ViewSource = RetrievalView | Callable[[], RetrievalView]


class RankingBrowser(widgets.VBox):
    """The widget: model and query pickers, a failures-only filter, top-k, Grad-CAM toggle and method.

    ``views`` maps a name to a :class:`RetrievalView` or to a loader returning one (called once, when the
    name is first picked)."""

    def __init__(self, views: Mapping[str, ViewSource], *, topk: int = 8, cam_method: str = "gradcam"):
        if not views:
            raise ValueError("views: expected at least one named RetrievalView (or a loader of one)")
        for name, source in views.items():
            if not isinstance(source, RetrievalView) and not callable(source):
                raise TypeError(f"views[{name!r}]: expected a RetrievalView or a function returning one, "
                                f"got {type(source).__name__}")  # fmt: skip
        self.views: dict[str, ViewSource] = dict(views)
        self.figure: Figure | None = None
        self._model = widgets.Dropdown(options=list(self.views), description="model")
        self._failures = widgets.Checkbox(value=False, description="failures only (rank-1 wrong)", indent=False)
        self._query = widgets.Dropdown(description="query", layout=widgets.Layout(width="420px"))
        self._topk = widgets.IntSlider(value=topk, min=1, max=20, description="top-k")
        self._cam = widgets.Checkbox(value=False, description="Grad-CAM overlay", indent=False)
        self._method = widgets.Dropdown(options=list(CAM_METHODS), value=cam_method, description="method")
        self._status = widgets.HTML()
        self._image = widgets.Image(format="png")
        controls = [
            widgets.HBox([self._model, self._failures]),
            widgets.HBox([self._query, self._topk]),
            widgets.HBox([self._cam, self._method]),
        ]
        super().__init__(children=[*controls, self._status, self._image])
        self._quiet = True  # no renders while options are being (re)filled
        self._update_queries()
        self._quiet = False
        self._model.observe(self._on_model, names="value")
        self._failures.observe(self._on_model, names="value")
        for control in (self._query, self._topk, self._cam, self._method):
            control.observe(self._on_change, names="value")
        self.render()

    @property
    def status_text(self) -> str:
        """The status line under the controls, as plain text."""
        return re.sub(r"<[^>]+>", "", self._status.value)

    @property
    def view(self) -> RetrievalView:
        """The picked model's view (a loader is called on first use and replaced by its view)."""
        name = self._model.value
        source = self.views[name]
        if not isinstance(source, RetrievalView):
            self._status.value = f"loading {name}…"
            source = source()
            if not isinstance(source, RetrievalView):
                raise TypeError(f"the loader of {name!r} returned {type(source).__name__}, not a RetrievalView")
            self.views[name] = source
        return source

    def _update_queries(self) -> None:
        quiet, self._quiet = self._quiet, True
        view, m = self.view, self.view.metrics
        indices = m.failures if self._failures.value else np.flatnonzero(m.valid)
        options = []
        for i in indices:
            q = view.query[i]
            mark = "" if m.rank1[i] else "  ✗ rank-1 wrong"
            options.append((f"#{i}  ID {q.pid} · cam {q.camid} · AP {m.ap[i]:.2f}{mark}", int(i)))
        previous = self._query.value
        self._query.options = options
        values = [v for _, v in options]
        self._query.value = previous if previous in values else (values[0] if values else None)
        self._cam.disabled = not view.can_explain
        if not view.can_explain:
            self._cam.value = False
        self._quiet = quiet

    def _on_model(self, _change) -> None:
        self._update_queries()
        self._on_change(_change)

    def _on_change(self, _change) -> None:
        if not self._quiet:
            self.render()

    def select(
        self,
        *,
        model: str | None = None,
        query: int | None = None,
        failures: bool | None = None,
        cam: bool | None = None,
        method: str | None = None,
        topk: int | None = None,
    ) -> Figure | None:
        """Set controls programmatically (as a user would), render once, and return the figure."""
        self._quiet = True
        try:
            if model is not None:
                self._model.value = model
            if failures is not None:
                self._failures.value = failures
            if query is not None:
                valid = [v for _, v in self._query.options]
                if query not in valid:
                    raise ValueError(f"query {query} is not offered by the current filter (e.g. {valid[:10]})")
                self._query.value = query
            if cam is not None:
                if cam and not self.view.can_explain:
                    raise ValueError(f"view {self._model.value!r} has no model or input recipe: Grad-CAM unavailable")
                self._cam.value = cam
            if method is not None:
                self._method.value = method
            if topk is not None:
                self._topk.value = topk
        finally:
            self._quiet = False
        return self.render()

    def render(self) -> Figure | None:
        """Draw the selected query's ranking into the widget; returns the figure (None if no query)."""
        if self._query.value is None:
            self._status.value = "<b>No queries match the filter.</b>"
            self._image.value = b""
            self.figure = None
            return None
        view, qi = self.view, int(self._query.value)
        cam = None
        if self._cam.value and view.can_explain:
            cam = EmbeddingCAM(view.model, method=self._method.value, target_layer=view.target_layer)
        fig = plot_ranking(
            view.distmat, view.query, view.gallery, [qi], topk=self._topk.value, cam=cam,
            image_size=view.image_size, mean=view.mean, std=view.std, transform=view.transform,
            title=f"{self._model.value}: query #{qi}",
        )  # fmt: skip
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self._image.value = buffer.getvalue()
        m = view.metrics
        self._status.value = (
            f"query #{qi}: AP {m.ap[qi]:.3f}, first true match at rank {m.first_match[qi] + 1}, "
            f"{m.num_matches[qi]} valid match(es) in the gallery"
        )
        self.figure = fig
        return fig


def build_browser(
    views: Mapping[str, ViewSource] | RetrievalView, *, topk: int = 8, cam_method: str = "gradcam"
) -> RankingBrowser:
    """Build the ranking browser over one or several named :class:`RetrievalView` s (or loaders of them);
    returns the widget."""
    if isinstance(views, RetrievalView):
        views = {"model": views}
    return RankingBrowser(views, topk=topk, cam_method=cam_method)
