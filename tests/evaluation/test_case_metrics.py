"""Per-case, per-class metrics of label maps (Dice, IoU, NSD, HD95, ASSD and the empty-mask policy)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import (BOTH_EMPTY, GT_EMPTY, METRIC_NAMES, PRED_EMPTY, average_surface_distance,
                                      case_metrics, nsd, surface_distances)

KEYS = {'class', 'dice', 'iou', 'nsd', 'hd95', 'assd', 'empty'}


def two_class_labels(shape=(20, 24, 16)):
    labels = np.zeros(shape, np.uint8)
    labels[2:8, 3:12, 2:9] = 1
    labels[10:17, 12:20, 5:13] = 2
    return labels


def test_identical_label_maps_are_perfect():
    labels = two_class_labels()
    rows = case_metrics(labels, labels.copy(), (0.8, 0.8, 2.5), [1, 2])
    assert [r['class'] for r in rows] == [1, 2]
    for row in rows:
        assert set(row) == KEYS
        assert row['empty'] == ''
        assert (row['dice'], row['iou'], row['nsd'], row['hd95'], row['assd']) == (1.0, 1.0, 1.0, 0.0, 0.0)


def test_dice_and_iou_from_voxel_counts():
    gt = np.zeros((10, 10), np.int16)
    pred = np.zeros((10, 10), np.int16)
    gt[2:6, 2:6] = 3  # 16 voxels
    pred[4:8, 2:6] = 3  # 16 voxels, 8 shared
    (row,) = case_metrics(gt, pred, (1.0, 1.0), [3])
    assert row['dice'] == pytest.approx(2 * 8 / 32)
    assert row['iou'] == pytest.approx(8 / 24)


def test_larger_tolerance_never_lowers_nsd():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (18, 15, 12))
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 3, gt.shape))
    spacing = (0.6, 1.1, 2.0)
    values = [[r['nsd'] for r in case_metrics(gt, pred, spacing, [1, 2], t)] for t in (0.0, 0.5, 1.0, 2.0, 5.0)]
    assert all(b >= a for lo, hi in zip(values, values[1:]) for a, b in zip(lo, hi))
    assert values[0] != values[-1]


def test_concentric_spheres_per_class():
    """Spheres of radius 8 and 12 voxels: every surface corner lies within sqrt(3)/2 of its true sphere, so
    every surface distance is in [4 - sqrt(3), 4 + sqrt(3)] mm; pred contains gt, so Dice = 2|gt| / (|gt| + |pred|)."""
    spacing = (1.0, 1.0, 1.0)
    grid = np.indices((40, 40, 40)) - 19.5
    r = np.sqrt((grid ** 2).sum(axis=0))
    gt = (r <= 8).astype(np.uint8)
    pred = (r <= 12).astype(np.uint8)
    low, high = 4.0 - math.sqrt(3), 4.0 + math.sqrt(3)
    (row,) = case_metrics(gt, pred, spacing, [1], nsd_tolerance=low - 1e-9)
    assert row['nsd'] == 0.0
    assert low <= row['hd95'] <= high and low <= row['assd'] <= high
    assert case_metrics(gt, pred, spacing, [1], nsd_tolerance=high)[0]['nsd'] == 1.0
    n_gt, n_pred = int((r <= 8).sum()), int((r <= 12).sum())
    assert row['dice'] == pytest.approx(2 * n_gt / (n_gt + n_pred), rel=1e-12)
    assert row['iou'] == pytest.approx(n_gt / n_pred, rel=1e-12)


def test_nested_cubes_hand_distances():
    """A 10^3 cube inside a 14^3 cube (2 voxels of 1.5 mm on each side): every ground-truth surface corner
    is exactly 3 mm from the prediction's surface; the prediction's corners are 3 mm (faces) to
    sqrt(3 * 3^2) mm (its 8 outer corners) away."""
    gt = np.zeros((30, 30, 30), np.uint8)
    gt[10:20, 10:20, 10:20] = 1
    pred = np.zeros_like(gt)
    pred[8:22, 8:22, 8:22] = 1
    sd = surface_distances(gt == 1, pred == 1, (1.5, 1.5, 1.5))
    np.testing.assert_array_equal(sd.distances_gt_to_pred, 3.0)
    assert sd.distances_pred_to_gt.min() == 3.0 and sd.distances_pred_to_gt.max() == pytest.approx(math.sqrt(27))
    assert average_surface_distance(sd)[0] == pytest.approx(3.0, rel=1e-12)
    assert nsd(sd, 2.999) == 0.0 and nsd(sd, math.sqrt(27)) == 1.0
    (row,) = case_metrics(gt, pred, (1.5, 1.5, 1.5), [1])
    assert row['dice'] == pytest.approx(2 * 1000 / (1000 + 14 ** 3)) and row['iou'] == pytest.approx(1000 / 14 ** 3)


def test_empty_policy_all_three_cases():
    shape, spacing = (12, 10, 8), (0.5, 1.0, 4.0)
    diag = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[2:5, 2:5, 2:5] = 1  # class 1 only in GT -> pred_empty (false negative)
    pred[6:9, 6:9, 3:6] = 2  # class 2 only in prediction -> gt_empty (false positive)
    rows = {r['class']: r for r in case_metrics(gt, pred, spacing, [1, 2, 3])}
    assert rows[1]['empty'] == PRED_EMPTY and rows[2]['empty'] == GT_EMPTY and rows[3]['empty'] == BOTH_EMPTY
    for c in (1, 2):
        assert (rows[c]['dice'], rows[c]['iou'], rows[c]['nsd']) == (0.0, 0.0, 0.0)
        assert rows[c]['hd95'] == pytest.approx(diag) and rows[c]['assd'] == pytest.approx(diag)
    assert (rows[3]['dice'], rows[3]['iou'], rows[3]['nsd'], rows[3]['hd95'], rows[3]['assd']) == (1, 1, 1, 0, 0)
    for row in rows.values():
        assert all(math.isfinite(row[m]) for m in METRIC_NAMES)


def test_2d_label_maps_and_border_touching_structures():
    gt = np.zeros((8, 9), np.uint8)
    pred = np.zeros((8, 9), np.uint8)
    gt[0:4, 0:9] = 1  # touches three borders
    pred[0:5, 0:9] = 1
    (row,) = case_metrics(gt, pred, (2.0, 1.0), [1])
    assert row['hd95'] == pytest.approx(2.0)
    assert row['dice'] == pytest.approx(2 * 36 / (36 + 45))


def test_bool_labels_are_accepted():
    gt = np.zeros((6, 6), bool)
    gt[1:4, 1:4] = True
    (row,) = case_metrics(gt, gt, (1.0, 1.0), [1])
    assert row['dice'] == 1.0


def test_bad_inputs():
    labels = two_class_labels()
    with pytest.raises(MedSegError, match='shape'):
        case_metrics(labels, labels[:-1], (1, 1, 1), [1])
    with pytest.raises(MedSegError, match='integer'):
        case_metrics(labels.astype(float), labels, (1, 1, 1), [1])
    with pytest.raises(MedSegError, match='spacing'):
        case_metrics(labels, labels, (1, 1), [1])
    with pytest.raises(MedSegError, match=r'class\(es\) \[2\]'):
        case_metrics(labels, labels, (1, 1, 1), [1, 2], {1: 1.0})
    with pytest.raises(MedSegError, match='tolerance'):
        case_metrics(labels, labels, (1, 1, 1), [1], -1.0)
