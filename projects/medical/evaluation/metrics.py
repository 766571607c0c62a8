"""Per-case, per-class volume metrics: Dice, IoU, NSD, HD95 and ASSD.

Distances follow DeepMind's ``surface-distance`` definitions (see :mod:`.surface`); ``spacing`` gives one
voxel size (mm) per array axis. Empty classes follow the policy documented in :mod:`.surface`:

========================  ====  ====  ====  ===============  ===============
``empty``                 dice  iou   nsd   hd95             assd
========================  ====  ====  ====  ===============  ===============
``''`` (both present)     computed from the masks
``'both_empty'``          1     1     1     0                0
``'gt_empty'`` (FP)       0     0     0     volume diagonal  volume diagonal
``'pred_empty'`` (FN)     0     0     0     volume diagonal  volume diagonal
========================  ====  ====  ====  ===============  ===============

The volume diagonal is ``sqrt(sum((shape_i * spacing_i)^2))`` mm, the largest distance possible in the
volume: a finite worst case, so every case stays in every mean.

``protocol='hemseg'`` computes HD95 as the HemSeg paper's evaluation code does (MONAI's
``HausdorffDistanceMetric(percentile=95)``, :func:`monai_hd95`): boundary *voxels* (mask XOR its binary
erosion), Euclidean distances between their centres, the linear-interpolated 95th percentile of each
directed set and the larger of the two; not surfel-area weighted. Empty masks keep the policy above
(MONAI itself returns NaN / inf there).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Union

import numpy as np

from ..errors import MedSegError
from .surface import (BOTH_EMPTY, NOT_EMPTY, check_spacing, assd, bounding_box, empty_category, hd95, nsd,
                      surface_distances_in_box, union_box, volume_diagonal)

#: Metric columns of a per-case row, in report order.
METRIC_NAMES = ('dice', 'iou', 'nsd', 'hd95', 'assd')
#: ``default``: surface-distance (surfel-weighted) HD95, seeded percentile bootstrap; ``hemseg``: the
#: HemSeg paper's protocol (MONAI HD95, :func:`mmseg_medical.evaluation.summary.hemseg_bootstrap_ci`).
PROTOCOLS = ('default', 'hemseg')


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise MedSegError(None, f'unknown evaluation protocol {protocol!r}; choose from {list(PROTOCOLS)}')
    return protocol


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

Tolerance = Union[float, Mapping[int, float]]


def class_tolerances(classes: Sequence[int], nsd_tolerance: Tolerance) -> Dict[int, float]:
    """NSD tolerance (mm) for each class: one value for all, or a mapping that must cover every class."""
    if isinstance(nsd_tolerance, Mapping):
        missing = [c for c in classes if c not in nsd_tolerance]
        if missing:
            raise MedSegError(None, f'no NSD tolerance given for class(es) {missing}')
        tolerances = {c: float(nsd_tolerance[c]) for c in classes}
    else:
        tolerances = {c: float(nsd_tolerance) for c in classes}
    bad = {c: t for c, t in tolerances.items() if not (math.isfinite(t) and t >= 0)}
    if bad:
        raise MedSegError(None, f'NSD tolerances must be finite and >= 0 mm, got {bad}')
    return tolerances


def empty_row(cls: int, empty: str, max_distance: float) -> dict:
    """The policy row of a class whose ground truth and/or prediction is empty."""
    if empty == BOTH_EMPTY:
        return {'class': cls, 'dice': 1.0, 'iou': 1.0, 'nsd': 1.0, 'hd95': 0.0, 'assd': 0.0, 'empty': empty}
    return {'class': cls, 'dice': 0.0, 'iou': 0.0, 'nsd': 0.0, 'hd95': float(max_distance),
            'assd': float(max_distance), 'empty': empty}


def _check_labels(name: str, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.view(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise MedSegError(None, f'{name} labels must be an integer array, got dtype {labels.dtype}')
    return labels


def case_metrics(gt_labels: np.ndarray, pred_labels: np.ndarray, spacing: Sequence[float],
                 classes: Sequence[int], nsd_tolerance: Tolerance = 1.0, protocol: str = 'default') -> List[dict]:
    """Metrics of one case for each class in ``classes``.

    Args:
        gt_labels, pred_labels: integer label maps of the same 2D or 3D shape.
        spacing: voxel size in mm, one value per array axis.
        classes: label values to evaluate (each gets a row, even when absent from both maps).
        nsd_tolerance: NSD tolerance in mm, one for all classes or a mapping class -> tolerance.
        protocol: ``'default'`` or ``'hemseg'`` (HD95 by :func:`monai_hd95`; see the module docstring).

    Returns:
        One dict per class with keys ``class, dice, iou, nsd, hd95, assd, empty`` (``empty`` is
        ``''``, ``'both_empty'``, ``'gt_empty'`` or ``'pred_empty'``; see the module docstring).
    """
    gt_labels, pred_labels = _check_labels('ground truth', gt_labels), _check_labels('prediction', pred_labels)
    if gt_labels.shape != pred_labels.shape:
        raise MedSegError(None, f'ground truth shape {gt_labels.shape} differs from prediction shape '
                                f'{pred_labels.shape}')
    if gt_labels.ndim not in (2, 3):
        raise MedSegError(None, f'only 2D and 3D label maps are supported, got shape {gt_labels.shape}')
    spacing = check_spacing(spacing, gt_labels.ndim)
    check_protocol(protocol)
    classes = [int(c) for c in classes]
    tolerances = class_tolerances(classes, nsd_tolerance)
    diagonal = volume_diagonal(gt_labels.shape, spacing)
    rows = []
    for cls in classes:
        gt_mask, pred_mask = gt_labels == cls, pred_labels == cls
        gt_box, pred_box = bounding_box(gt_mask), bounding_box(pred_mask)
        empty = empty_category(gt_box is not None, pred_box is not None)
        if empty != NOT_EMPTY:
            rows.append(empty_row(cls, empty, diagonal))
            continue
        box = union_box(gt_box, pred_box)
        gt_crop, pred_crop = gt_mask[box], pred_mask[box]
        n_gt, n_pred = int(np.count_nonzero(gt_crop)), int(np.count_nonzero(pred_crop))
        n_both = int(np.count_nonzero(gt_crop & pred_crop))
        sd = surface_distances_in_box(gt_crop, pred_crop, spacing, diagonal)
        distance95 = monai_hd95(gt_crop, pred_crop, spacing) if protocol == 'hemseg' else hd95(sd)
        rows.append({'class': cls, 'dice': 2.0 * n_both / (n_gt + n_pred),
                     'iou': n_both / (n_gt + n_pred - n_both), 'nsd': nsd(sd, tolerances[cls]),
                     'hd95': distance95, 'assd': assd(sd), 'empty': NOT_EMPTY})
    return rows
