"""``protocol='hemseg'``: HD95 against MONAI's ``compute_hausdorff_distance(percentile=95)`` on fixed pairs
(skipped without monai, a bench/test extra), the CI against the paper's RandomState(47) rule written out
on a fixed vector, and both through ``VolumeMetric``-free entry points (``case_metrics``, ``summarize``,
``evaluate_volumes``)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import case_metrics, summarize
from mmseg_medical.evaluation.cli import main as evaluate_main
from mmseg_medical.evaluation.metrics import monai_hd95
from mmseg_medical.evaluation.summary import hemseg_bootstrap_ci


def _ball(shape, center, radius, spacing=(1, 1, 1)):
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, spacing))
    return d2 <= radius ** 2


def _pairs():
    """Fixed (gt, pred, spacing) pairs: shifted balls, an irregular random pair, a 2D pair, a border-touching pair."""
    rng = np.random.default_rng(3)
    noisy = rng.random((12, 20, 20)) > 0.6
    yield _ball((16, 24, 24), (8, 12, 12), 5), _ball((16, 24, 24), (9, 13, 10), 4), (1.0, 1.0, 1.0)
    yield _ball((10, 32, 32), (5, 16, 16), 6, (5, 0.5, 0.5)), _ball((10, 32, 32), (4, 15, 18), 7, (5, 0.5, 0.5)), \
        (5.0, 0.48, 0.49)
    yield noisy, np.roll(noisy, 2, axis=1) | _ball((12, 20, 20), (3, 3, 3), 2), (4.6494, 0.4883, 0.4883)
    yield _ball((1, 30, 30), (0, 10, 10), 6)[0], _ball((1, 30, 30), (0, 14, 11), 5)[0], (0.7, 0.9)
    border = np.zeros((6, 12, 12), bool)
    border[:, :5, :] = True
    yield border, np.roll(border, 3, axis=1), (2.0, 1.0, 1.0)


@pytest.mark.parametrize('index', range(5))
def test_hd95_equals_monai(index, reference):
    monai_hd = reference('monai.metrics').compute_hausdorff_distance
    import torch

    gt, pred, spacing = list(_pairs())[index]
    with np.errstate(all='ignore'):
        ref = float(monai_hd(torch.from_numpy(pred[None, None].astype(np.float32)),
                             torch.from_numpy(gt[None, None].astype(np.float32)),
                             include_background=True, percentile=95, spacing=list(spacing))[0, 0])
    assert monai_hd95(gt, pred, spacing) == pytest.approx(ref, rel=1e-5, abs=1e-5)
    row = case_metrics(gt.astype(np.uint8), pred.astype(np.uint8), spacing, [1], protocol='hemseg')[0]
    assert row['hd95'] == pytest.approx(ref, rel=1e-5, abs=1e-5)
    default = case_metrics(gt.astype(np.uint8), pred.astype(np.uint8), spacing, [1])[0]
    assert {k: row[k] for k in ('dice', 'iou', 'nsd', 'assd')} == {k: default[k] for k in ('dice', 'iou', 'nsd', 'assd')}


def test_hd95_hand_computed():
    """Two 1-voxel-thick planes 3 voxels apart along an axis of spacing 2 mm: every edge distance is 6 mm."""
    gt, pred = np.zeros((10, 5, 5), bool), np.zeros((10, 5, 5), bool)
    gt[2], pred[5] = True, True
    assert monai_hd95(gt, pred, (2.0, 1.0, 1.0)) == 6.0


def test_ci_is_the_papers_rule_on_a_fixed_vector():
    """The paper's eval_bootstrap_ci.py written out; values with ties and an outlier."""
    x = np.array([0.91, 0.85, 0.0, 0.77, 0.93, 0.88, 0.62, 0.85, 0.97, 0.71, 0.5, 0.8])
    rng = np.random.RandomState(47)
    stat = np.sort(np.mean(rng.choice(x, size=(5000, len(x)), replace=True), axis=1))
    expected = (stat[125], stat[4875])   # int(0.025 * 5000), int(0.975 * 5000)
    low, high = hemseg_bootstrap_ci(x[:, None])[:, 0]
    assert (low, high) == expected
    rows = [{'class': 1, 'dice': v, 'iou': v / 2, 'nsd': v, 'hd95': 10 * v, 'assd': v, 'empty': ''} for v in x]
    summary = summarize(rows, protocol='hemseg', seed=123)[1]     # seed does not matter: always 47
    assert (summary['dice']['ci_low'], summary['dice']['ci_high']) == expected
    assert summary['hd95']['ci_low'] == pytest.approx(10 * expected[0])
    assert summary['dice']['mean'] == pytest.approx(np.average(x))


def test_unknown_protocol_is_an_error():
    with pytest.raises(MedSegError, match='protocol'):
        case_metrics(np.ones((3, 3), np.uint8), np.ones((3, 3), np.uint8), (1, 1), [1], protocol='paper')


def test_evaluate_volumes_protocol_option(tmp_path, capsys, reference):
    """The CLI's per-case HD95 against MONAI's compute_hausdorff_distance on the files as nibabel reads them
    (arrays and header zooms), its Dice against the count by hand."""
    import csv

    import torch
    monai_hd = reference('monai.metrics').compute_hausdorff_distance
    gt, pred, spacing = list(_pairs())[1]
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    for name, mask in (('gt', gt), ('pred', pred)):
        (tmp_path / name).mkdir()
        for case, shift in (('a', 0), ('b', 1)):
            nib.save(nib.Nifti1Image(np.roll(mask, shift, axis=1).transpose(2, 1, 0).astype(np.uint8) if name == 'pred'
                                     else mask.transpose(2, 1, 0).astype(np.uint8), affine),
                     str(tmp_path / name / f'{case}.nii.gz'))
    assert evaluate_main(['--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'gt'),
                          '--out', str(tmp_path / 'm.csv'), '--protocol', 'hemseg']) == 0
    with open(tmp_path / 'm.csv', newline='') as f:
        rows = {r['case']: r for r in csv.DictReader(f)}
    assert sorted(rows) == ['a', 'b']
    for case, row in rows.items():
        g_file, p_file = nib.load(str(tmp_path / 'gt' / f'{case}.nii.gz')), nib.load(str(tmp_path / 'pred' / f'{case}.nii.gz'))
        g, q = np.asanyarray(g_file.dataobj) == 1, np.asanyarray(p_file.dataobj) == 1
        with np.errstate(all='ignore'):
            ref = float(monai_hd(torch.from_numpy(q[None, None].astype(np.float32)),
                                 torch.from_numpy(g[None, None].astype(np.float32)), include_background=True,
                                 percentile=95, spacing=[float(z) for z in g_file.header.get_zooms()])[0, 0])
        assert float(row['hd95']) == pytest.approx(ref, rel=1e-5, abs=1e-5), case
        assert float(row['dice']) == pytest.approx(2 * (g & q).sum() / (g.sum() + q.sum()), abs=1e-12)
    assert rows['a']['hd95'] != rows['b']['hd95']
    assert 'RandomState(47)' in capsys.readouterr().out


@pytest.mark.parametrize('side', ['prediction', 'ground truth', 'both'])
def test_one_side_empty_scores_the_volume_diagonal(side):
    """Protocol hemseg keeps the default empty-mask policy (its docstring; monai_hd95 itself needs two non-empty
    masks): one side empty gives Dice = IoU = NSD = 0 and HD95 = ASSD = the volume diagonal in mm, typed here as
    sqrt(sum((n_i s_i)^2)); both empty gives 1, 1, 1, 0, 0. Other classes of the same case are scored normally."""
    shape, spacing = (7, 30, 26), (5.0, 0.46, 0.49)
    lesion = _ball(shape, (3, 15, 13), 4, spacing)
    empty = np.zeros(shape, bool)
    gt, pred = {'prediction': (lesion, empty), 'ground truth': (empty, lesion), 'both': (empty, empty)}[side]
    labels_gt, labels_pred = gt.astype(np.uint8), pred.astype(np.uint8)
    labels_gt[0, 0, :3] = labels_pred[0, 0, :3] = 2          # class 2 identical on both sides
    rows = {r['class']: r for r in case_metrics(labels_gt, labels_pred, spacing, [1, 2], protocol='hemseg')}
    diagonal = float(np.sqrt((7 * 5.0) ** 2 + (30 * 0.46) ** 2 + (26 * 0.49) ** 2))
    if side == 'both':
        expected = {'dice': 1.0, 'iou': 1.0, 'nsd': 1.0, 'hd95': 0.0, 'assd': 0.0, 'empty': 'both_empty'}
    else:
        flag = 'pred_empty' if side == 'prediction' else 'gt_empty'
        expected = {'dice': 0.0, 'iou': 0.0, 'nsd': 0.0, 'hd95': diagonal, 'assd': diagonal, 'empty': flag}
    assert {k: rows[1][k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert (rows[2]['dice'], rows[2]['hd95'], rows[2]['empty']) == (1.0, 0.0, '')   # '': both non-empty
