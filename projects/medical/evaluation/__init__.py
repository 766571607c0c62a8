"""Volume-level segmentation metrics per case and class (Dice, IoU, NSD, HD95, ASSD) and their summary.

Every score is computed under a named evaluation protocol (:mod:`.protocols`: ``default``, ``hemseg``,
``hemseg-paper``, ``crossmoda``, ``covid19``), which fixes the metrics, their definitions, the spacing and
grid, empty structures, tolerances and aggregation. The ``default`` surface metrics follow DeepMind's
``surface-distance`` definitions (:mod:`.surface`); nnU-Net-style connected-component post-processing in
:mod:`.postprocess`.
"""
from .metrics import METRIC_NAMES, case_metrics, class_tolerances, empty_row
from .postprocess import (LARGEST, apply_postprocessing, choose_min_sizes, load_rules, remove_small_components,
                          save_rules)
from .protocols import Protocol, get_protocol, protocol_names, register_protocol
from .summary import bootstrap_mean_ci, format_summary_markdown, summarize, summarize_by_site
from .surface import (BOTH_EMPTY, EMPTY_CATEGORIES, GT_EMPTY, NOT_EMPTY, PRED_EMPTY, SurfaceDistances, assd,
                      average_surface_distance, contour_length_table, hd95, nsd, robust_hausdorff,
                      surface_area_table, surface_distances, volume_diagonal)

__all__ = [
    'Protocol', 'get_protocol', 'protocol_names', 'register_protocol', 'summarize_by_site',
    'BOTH_EMPTY', 'EMPTY_CATEGORIES', 'GT_EMPTY', 'LARGEST', 'METRIC_NAMES', 'NOT_EMPTY', 'PRED_EMPTY',
    'SurfaceDistances', 'apply_postprocessing', 'assd', 'average_surface_distance', 'bootstrap_mean_ci', 'case_metrics',
    'choose_min_sizes', 'class_tolerances', 'contour_length_table', 'empty_row', 'format_summary_markdown',
    'hd95', 'load_rules', 'nsd', 'remove_small_components', 'robust_hausdorff', 'save_rules', 'summarize',
    'surface_area_table', 'surface_distances', 'volume_diagonal',
]
