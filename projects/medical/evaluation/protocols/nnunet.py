"""``nnunet``: nnU-Net v2's ``compute_metrics_on_folder`` (``nnunetv2/evaluation/evaluate_predictions.py``, 2.8.1).

Per case and foreground label, on the label files as they are (no resampling, no spacing): TP, FP, FN, TN voxel
counts, ``n_pred = TP + FP``, ``n_ref = TP + FN``, Dice ``2 TP / (2 TP + FP + FN)`` and IoU ``TP / (TP + FP + FN)``,
both NaN when ``TP + FP + FN = 0`` (label absent from reference and prediction). Aggregation: ``mean`` per label
over cases with NaN left out (``np.nanmean``), ``foreground_mean`` the plain mean of the labels' means.
``evaluate_volumes --protocol nnunet`` also writes ``summary.json`` beside ``--out`` in nnU-Net's own form
(:func:`summary_json`: ``metric_per_case``, ``mean``, ``foreground_mean``; label keys as text).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ..surface import empty_category
from .base import Protocol, register_protocol

SOURCE = 'MIC-DKFZ/nnUNet v2.8.1: nnunetv2/evaluation/evaluate_predictions.py compute_metrics_on_folder'
#: Our metric column → nnU-Net's key, in nnU-Net's order of insertion.
KEYS = {'dice': 'Dice', 'iou': 'IoU', 'fp': 'FP', 'tp': 'TP', 'fn': 'FN', 'tn': 'TN', 'n_pred': 'n_pred',
        'n_ref': 'n_ref'}
COUNTS = ('tp', 'fp', 'fn', 'tn', 'n_pred', 'n_ref')


class NnUNetProtocol(Protocol):
    def class_row(self, gt_mask: np.ndarray, pred_mask: np.ndarray, spacing: Tuple[float, ...],
                  tolerance: float, diagonal: float) -> dict:
        tp = int(np.count_nonzero(gt_mask & pred_mask))
        fp = int(np.count_nonzero(pred_mask)) - tp
        fn = int(np.count_nonzero(gt_mask)) - tp
        tn = int(gt_mask.size) - tp - fp - fn
        union = tp + fp + fn
        dice, iou = (float('nan'), float('nan')) if union == 0 else (2 * tp / (2 * tp + fp + fn), tp / union)
        empty = empty_category(tp + fn > 0, tp + fp > 0)
        return {'dice': dice, 'iou': iou, 'tp': tp, 'fp': fp, 'fn': fn, 'tn': tn, 'n_pred': tp + fp,
                'n_ref': tp + fn, 'empty': empty}


NNUNET = register_protocol(NnUNetProtocol(
    name='nnunet',
    title="nnU-Net v2's compute_metrics_on_folder: Dice, IoU and voxel counts per case and label",
    source=SOURCE,
    metrics=('dice', 'iou', 'tp', 'fp', 'fn', 'tn', 'n_pred', 'n_ref'),
    spacing_rule='none (voxel counts)',
    grid_rule="the label files' voxel grid as they are",
    empty_rule='TP + FP + FN = 0: Dice = IoU = NaN',
    aggregation_rule='mean per label over cases, NaN left out (np.nanmean); foreground_mean = mean of the label means',
    default_tolerance=0.0,
    omit_nan=True,
))


def _value(metric: str, value: float):
    return int(value) if metric in COUNTS else float(value)


def summary_json(rows: Sequence[Mapping], files: Mapping[str, Tuple[str, str]]) -> dict:
    """nnU-Net's ``summary.json`` of the per-case rows of this protocol; ``files``: case → (reference, prediction)."""
    by_case: Dict[str, Dict[str, dict]] = {}
    for row in rows:
        by_case.setdefault(row['case'], {})[str(row['class'])] = {KEYS[m]: _value(m, row[m]) for m in KEYS}
    per_case: List[dict] = [{'metrics': metrics, 'reference_file': files[case][0], 'prediction_file': files[case][1]}
                            for case, metrics in by_case.items()]
    labels = list(per_case[0]['metrics']) if per_case else []
    means = {}
    for label in labels:
        means[label] = {}
        for key in KEYS.values():
            values = np.array([c['metrics'][label][key] for c in per_case], dtype=np.float64)
            means[label][key] = float(np.nanmean(values)) if not np.all(np.isnan(values)) else float('nan')
    foreground = {key: float(np.mean([means[k][key] for k in labels if k != '0'])) for key in KEYS.values()}
    return {'foreground_mean': foreground, 'mean': means, 'metric_per_case': per_case}
