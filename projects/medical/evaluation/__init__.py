"""Volume-level segmentation metrics per case and class (Dice, IoU, NSD, HD95, ASSD) and their summary.

Surface metrics follow DeepMind's ``surface-distance`` definitions; the empty-mask policy is documented
in :mod:`.surface` and :mod:`.metrics`; nnU-Net-style connected-component post-processing in
:mod:`.postprocess`.
"""
from .metrics import METRIC_NAMES, case_metrics, class_tolerances, empty_row
from .postprocess import (LARGEST, apply_postprocessing, choose_min_sizes, load_rules, remove_small_components,
                          save_rules)
from .summary import bootstrap_mean_ci, format_summary_markdown, summarize
from .surface import (BOTH_EMPTY, EMPTY_CATEGORIES, GT_EMPTY, NOT_EMPTY, PRED_EMPTY, SurfaceDistances, assd,
                      average_surface_distance, contour_length_table, hd95, nsd, robust_hausdorff,
                      surface_area_table, surface_distances, volume_diagonal)

__all__ = [
    'BOTH_EMPTY', 'EMPTY_CATEGORIES', 'GT_EMPTY', 'LARGEST', 'METRIC_NAMES', 'NOT_EMPTY', 'PRED_EMPTY',
    'SurfaceDistances', 'apply_postprocessing', 'assd', 'average_surface_distance', 'bootstrap_mean_ci', 'case_metrics',
    'choose_min_sizes', 'class_tolerances', 'contour_length_table', 'empty_row', 'format_summary_markdown',
    'hd95', 'load_rules', 'nsd', 'remove_small_components', 'robust_hausdorff', 'save_rules', 'summarize',
    'surface_area_table', 'surface_distances', 'volume_diagonal',
]
