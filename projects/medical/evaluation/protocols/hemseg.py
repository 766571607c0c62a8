"""``hemseg``: the default metrics with the HemSeg paper's HD95 rule and bootstrap CI, in mm on the source grid.

HD95 as MONAI's ``HausdorffDistanceMetric(percentile=95)`` computes it (:func:`monai_hd95`): boundary
*voxels* (mask XOR its binary erosion), Euclidean distances between their centres, the linear-interpolated
95th percentile of each directed set and the larger of the two; not surfel-area weighted. Here in mm with
the header spacing on the source grid (the paper's own grid and voxel units are ``hemseg-paper``). CI as
the paper's ``evaluation/eval_bootstrap_ci.py`` (``RandomState(47)``). Empty masks keep the default policy.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..surface import bounding_box, union_box
from .base import Protocol, register_protocol

SOURCE = ('songchangwei/3DCT-SD-IVH-ICH: model_inference/*_test.py @ d8e2199 (MONAI HausdorffDistanceMetric) and '
          'evaluation/eval_bootstrap_ci.py @ 2ba87cf')


def monai_hd95(gt_mask: np.ndarray, pred_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """HD95 with MONAI's semantics (``compute_hausdorff_distance(percentile=95)``, euclidean, symmetric).

    Both masks must be non-empty. Edges = mask XOR ``scipy.ndimage.binary_erosion(mask)`` (face
    connectivity) on the union bounding box; distances from each edge voxel of one mask to the nearest
    edge voxel of the other, in mm with ``spacing``; ``max`` of the two directed 95th percentiles.
    """
    from scipy.ndimage import binary_erosion, distance_transform_edt

    box = union_box(bounding_box(gt_mask), bounding_box(pred_mask))
    gt, pred = np.pad(gt_mask[box], 1), np.pad(pred_mask[box], 1)
    gt_edges, pred_edges = gt ^ binary_erosion(gt), pred ^ binary_erosion(pred)
    to_gt = distance_transform_edt(~gt_edges, sampling=spacing)[pred_edges]
    to_pred = distance_transform_edt(~pred_edges, sampling=spacing)[gt_edges]
    return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))


class HemSegProtocol(Protocol):
    def hd95(self, gt_crop: np.ndarray, pred_crop: np.ndarray, spacing: Tuple[float, ...], sd) -> float:
        return monai_hd95(gt_crop, pred_crop, spacing)

    def bootstrap_ci(self, values: np.ndarray, n_bootstrap: int, seed: int, cls: int, ci: float) -> np.ndarray:
        from ..summary import hemseg_bootstrap_ci
        return hemseg_bootstrap_ci(values, n_bootstrap, ci)


HEMSEG = register_protocol(HemSegProtocol(
    name='hemseg',
    title="default metrics in mm on the source grid, with the HemSeg paper's HD95 rule and bootstrap CI",
    source=SOURCE,
    metrics=('dice', 'iou', 'nsd', 'hd95', 'assd'),
    aggregation_rule='mean ± sample std over cases; percentile CI of the mean from RandomState(47) resamples as the HemSeg paper',
))
