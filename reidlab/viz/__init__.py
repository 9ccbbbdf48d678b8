"""Seeing what the model sees: ranking grids, similarity Grad-CAM, ViT attention, plots and a browser;
and what the data looks like: images per identity and camera, montages, the synthetic world's pictures.

Every figure function returns the matplotlib ``Figure`` and takes ``save=``: a bare file name is
written under ``reidlab.paths.figures_dir()``, a path with a folder is used as given (PNG, atomic).
"""

from reidlab.viz.attention import (
    AttentionRecorder,
    attention_maps,
    attention_rollout,
    cls_attention_map,
    collect_attentions,
    plot_attention_maps,
    rollout_map,
)
from reidlab.viz.browser import RankingBrowser, RetrievalView, build_browser
from reidlab.viz.dataset_plots import (
    camera_montage,
    description_examples,
    identity_montage,
    infrared_examples,
    occlusion_examples,
    plot_images_per_camera,
    plot_images_per_identity,
)
from reidlab.viz.dpm_masks import dpm_masks, mask_agreement, mask_region_map, plot_dpm_masks
from reidlab.viz.figures import figure_path, save_figure
from reidlab.viz.gradcam import (
    CAM_METHODS,
    EmbeddingCAM,
    SimilarityTarget,
    find_target_layer,
    find_vit,
    plot_gradcam_pairs,
    vit_grid_size,
    vit_reshape_transform,
)
from reidlab.viz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_rgb,
    denormalize,
    load_image,
    load_tensor,
    overlay_heatmap,
)
from reidlab.viz.per_query import PerQueryResult, per_query_metrics, pick_queries, top_k
from reidlab.viz.plots import (
    distance_histograms,
    embed_2d,
    per_camera_accuracy,
    plot_cmc,
    plot_distance_histograms,
    plot_embedding_map,
    plot_per_camera_accuracy,
)
from reidlab.viz.ranking import MATCH_COLOR, MISMATCH_COLOR, QUERY_COLOR, plot_ranking
from reidlab.viz.reid_vit import (
    head_attention_maps,
    head_overlap,
    model_inputs,
    plot_head_attention,
    plot_reid_vit_attention,
    reid_vit_attention_maps,
)

__all__ = [
    "CAM_METHODS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MATCH_COLOR",
    "MISMATCH_COLOR",
    "QUERY_COLOR",
    "AttentionRecorder",
    "EmbeddingCAM",
    "PerQueryResult",
    "RankingBrowser",
    "RetrievalView",
    "SimilarityTarget",
    "as_rgb",
    "attention_maps",
    "attention_rollout",
    "build_browser",
    "camera_montage",
    "cls_attention_map",
    "collect_attentions",
    "denormalize",
    "description_examples",
    "distance_histograms",
    "dpm_masks",
    "embed_2d",
    "figure_path",
    "find_target_layer",
    "find_vit",
    "head_attention_maps",
    "head_overlap",
    "identity_montage",
    "infrared_examples",
    "load_image",
    "load_tensor",
    "mask_agreement",
    "mask_region_map",
    "model_inputs",
    "occlusion_examples",
    "overlay_heatmap",
    "per_camera_accuracy",
    "per_query_metrics",
    "pick_queries",
    "plot_attention_maps",
    "plot_cmc",
    "plot_distance_histograms",
    "plot_dpm_masks",
    "plot_embedding_map",
    "plot_gradcam_pairs",
    "plot_head_attention",
    "plot_images_per_camera",
    "plot_images_per_identity",
    "plot_per_camera_accuracy",
    "plot_ranking",
    "plot_reid_vit_attention",
    "reid_vit_attention_maps",
    "rollout_map",
    "save_figure",
    "top_k",
    "vit_grid_size",
    "vit_reshape_transform",
]
