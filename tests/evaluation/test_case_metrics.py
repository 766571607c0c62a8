"""Per-case, per-class metrics of label maps (Dice, IoU, NSD, HD95, ASSD and the empty-mask policy)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import (BOTH_EMPTY, GT_EMPTY, METRIC_NAMES, PRED_EMPTY, assd, case_metrics, hd95,
                                      nsd, surface_distances)

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


def test_surface_metrics_match_surface_distances_on_full_masks():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (18, 15, 12))
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 3, gt.shape))
    spacing = (0.6, 1.1, 2.0)
    tolerances = {1: 0.5, 2: 2.0}
    rows = case_metrics(gt, pred, spacing, [1, 2], tolerances)
    for row in rows:
        c = row['class']
        sd = surface_distances(gt == c, pred == c, spacing)
        assert row['nsd'] == pytest.approx(nsd(sd, tolerances[c]))
        assert row['hd95'] == pytest.approx(hd95(sd))
        assert row['assd'] == pytest.approx(assd(sd))
    # a larger tolerance can only raise NSD
    loose = case_metrics(gt, pred, spacing, [1, 2], 5.0)
    assert all(b['nsd'] >= a['nsd'] for a, b in zip(rows, loose))


def test_concentric_spheres_per_class():
    spacing = (1.0, 1.0, 1.0)
    grid = np.indices((40, 40, 40)) - 19.5
    r = np.sqrt((grid ** 2).sum(axis=0))
    gt = (r <= 8).astype(np.uint8)
    pred = (r <= 12).astype(np.uint8)
    (row,) = case_metrics(gt, pred, spacing, [1], nsd_tolerance=6.0)
    assert row['hd95'] == pytest.approx(4.0, abs=1.0)
    assert row['assd'] == pytest.approx(4.0, abs=1.0)
    assert row['nsd'] == 1.0
    assert row['dice'] == pytest.approx(2 * 8 ** 3 / (8 ** 3 + 12 ** 3), abs=0.03)


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
