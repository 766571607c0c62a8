"""``protocol='hemseg-paper'`` against MONAI itself (skipped without monai, a test extra).

1. The grid: label files written with nibabel in several geometries (L,P,S like the real HemSeg labels,
   R,A,S, L,A,S, a gantry-tilted direction like the real label ``08154d6b7b``, permuted axes, a source
   spacing twice the paper's so that half the samples are nearest-neighbour ties, a spacing already the
   paper's) mapped by :func:`to_paper_grid` equal MONAI's ``LoadImaged → EnsureChannelFirstd →
   EnsureTyped → Orientationd('RAS') → Spacingd(PIXDIM, nearest)`` output voxel for voxel, affine included.
2. The metrics: the protocol's rows equal ``DiceMetric`` / ``MeanIoU`` / ``HausdorffDistanceMetric(
   percentile=95)`` (``include_background=True, reduction='none'``, no spacing) computed by MONAI on its own
   resampled files, for shifted balls, random pairs, several classes, an empty prediction, an empty
   ground truth and both empty.
3. Real label geometry (``../shared/realdata/hemseg/IPH_IVH_label``): real labels (cropped in-plane around
   the lesion to stay fast; the affine keeps their geometry) with 1-voxel dilated / shifted predictions, the whole
   protocol against the MONAI pipeline on the same files.
"""
from __future__ import annotations

import math
import warnings

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.evaluation.protocols import get_protocol, protocol_names
from mmseg_medical.evaluation.protocols.hemseg_paper import PIXDIM, to_paper_grid
from mmseg_medical.evaluation.surface import BOTH_EMPTY, GT_EMPTY, NOT_EMPTY, PRED_EMPTY

PROTOCOL = get_protocol('hemseg-paper')
TILT = (0.9271838545667874, 0.3746065934159120)   # (cos, sin) of the real label 08154d6b7b's gantry tilt


def _affine(columns, origin):
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(columns, dtype=np.float64).T
    affine[:3, 3] = origin
    return affine


#: name -> (voxel-to-world affine, shape): direction columns are the world vectors of the i, j, k axes.
GEOMETRIES = {
    'LPS': (_affine([(-0.458984375, 0, 0), (0, -0.458984375, 0), (0, 0, 5.0)], (117.5, 62.5, 114.6)), (44, 40, 7)),
    'RAS': (_affine([(0.43, 0, 0), (0, 0.43, 0), (0, 0, 5.39)], (-10.0, 3.0, -20.0)), (46, 42, 6)),
    'LAS': (_affine([(-0.48828125, 0, 0), (0, 0.48828125, 0), (0, 0, 5.0)], (60.0, -40.0, 7.5)), (40, 44, 7)),
    'tilted': (_affine([(-0.488281, 0, 0), (0, -0.488281 * TILT[0], -0.488281 * TILT[1]),
                        (0, -5.3925166 * TILT[1], 5.3925166 * TILT[0])], (125.0, 126.79798, 27.97971)), (42, 40, 6)),
    'permuted': (_affine([(0, 0, 5.0), (-0.46, 0, 0), (0, -0.47, 0)], (1.0, 2.0, 3.0)), (6, 40, 42)),
    'ties': (_affine([(2 * PIXDIM[0], 0, 0), (0, 2 * PIXDIM[1], 0), (0, 0, 2 * PIXDIM[2])], (0.0, 0.0, 0.0)),
             (24, 22, 5)),
    'paper': (_affine([(0.48828125, 0, 0), (0, 0.48828125, 0), (0, 0, 4.6494)], (5.0, 5.0, 5.0)), (30, 32, 5)),
}


def _write(path, labels, affine):
    nib.save(nib.Nifti1Image(np.asarray(labels, dtype=np.int16), affine), str(path))
    return path


def _file_affine(path, labels, affine):
    """Write ``labels`` and return the affine as read back (the header stores it in float32): what a
    caller that read the file passes, and what MONAI's LoadImaged sees."""
    return nib.load(str(_write(path, labels, affine))).affine


def _monai_grid(*paths):
    """The paper's label transforms (LoadImaged ... Spacingd nearest): per file, the array and affine."""
    from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, LoadImaged, Orientationd, Spacingd
    keys = [f'k{i}' for i in range(len(paths))]
    transforms = Compose([LoadImaged(keys=keys), EnsureChannelFirstd(keys=keys), EnsureTyped(keys=keys),
                          Orientationd(keys=keys, axcodes='RAS'), Spacingd(keys=keys, pixdim=PIXDIM, mode='nearest')])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = transforms({k: str(p) for k, p in zip(keys, paths)})
    return [(out[k][0].numpy(), out[k].affine.numpy()) for k in keys]


def _monai_rows(gt, pred, classes):
    """MONAI's DiceMetric, MeanIoU, HausdorffDistanceMetric(percentile=95) per class (one-channel masks)."""
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU
    rows = []
    for c in classes:
        y_pred = torch.from_numpy((pred == c).astype(np.float32))[None, None]
        y = torch.from_numpy((gt == c).astype(np.float32))[None, None]
        row = {'class': c}
        for name, metric in (('dice', DiceMetric(include_background=True, reduction='none', get_not_nans=False)),
                             ('iou', MeanIoU(include_background=True, reduction='none', get_not_nans=False)),
                             ('hd95_vox', HausdorffDistanceMetric(include_background=True, percentile=95,
                                                                  reduction='none', get_not_nans=False))):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                metric(y_pred=y_pred, y=y)
                value = metric.aggregate()
            assert value.dtype == torch.float32
            row[name] = float(value.flatten()[0])
        rows.append(row)
    return rows


def _assert_rows_equal(ours, ref):
    assert [r['class'] for r in ours] == [r['class'] for r in ref]
    for mine, theirs in zip(ours, ref):
        for m in ('dice', 'iou', 'hd95_vox'):
            if math.isnan(theirs[m]):
                assert math.isnan(mine[m]), (m, mine, theirs)
            elif m == 'hd95_vox':   # MONAI: float32 distances, torch.quantile in float32 (q = float32(0.95));
                assert mine[m] == pytest.approx(theirs[m], rel=1e-5, abs=1e-5), (m, mine, theirs)  # ours float64
            else:                   # the float32 rounding of our exact ratio is MONAI's value
                assert np.float32(mine[m]) == np.float32(theirs[m]), (m, mine, theirs)


def _score(gt, pred, affine, classes):
    zooms = nib.affines.voxel_sizes(affine)
    return PROTOCOL.score(gt, pred, zooms, classes, PROTOCOL.tolerances(classes), affine=affine)


def _ball(shape, affine, radius, offset=(0.0, 0.0, 0.0)):
    """A ball in world mm (so it stays a ball whatever the axes) centred ``offset`` mm from the volume's
    centre, as a 0/1 map on the grid of ``affine``."""
    ijk = np.indices(shape).reshape(3, -1).astype(float)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3] + np.asarray(offset, float)
    return (np.sum((xyz - centre[:, None]) ** 2, axis=0) <= radius ** 2).reshape(shape).astype(np.int16)


# ---- spec ----------------------------------------------------------------------------------------------
def _paper_ci(values):
    """``evaluation/eval_bootstrap_ci.py`` written out: RandomState(47), 5000 resamples, stat[125], stat[4875]."""
    samples = np.random.RandomState(47).choice(np.asarray(values, float), size=(5000, len(values)), replace=True)
    stat = np.sort(np.mean(samples, axis=1))
    return stat[125], stat[4875]


def test_summary_leaves_nan_out_and_bootstraps_the_rest_as_the_paper():
    """summarize under hemseg-paper: a case MONAI scores NaN (here an empty ground truth: all three NaN, and an
    empty prediction: HD95 NaN) is left out of that metric's mean and n, and the CI is the paper's rule on the
    values left; the per-metric n differ, so each metric is bootstrapped on its own values."""
    from mmseg_medical.evaluation import summarize

    rng = np.random.default_rng(5)
    dice, hd = rng.uniform(0.2, 0.95, 9), rng.uniform(1.0, 30.0, 9)
    rows = [{'case': f'c{i}', 'class': 1, 'dice': d, 'iou': d / (2 - d), 'hd95_vox': h, 'empty': NOT_EMPTY}
            for i, (d, h) in enumerate(zip(dice, hd))]
    rows.append({'case': 'gt_empty', 'class': 1, 'dice': math.nan, 'iou': math.nan, 'hd95_vox': math.nan,
                 'empty': GT_EMPTY})
    rows.append({'case': 'pred_empty', 'class': 1, 'dice': 0.0, 'iou': 0.0, 'hd95_vox': math.nan,
                 'empty': PRED_EMPTY})
    entry = summarize(rows, n_bootstrap=5000, protocol='hemseg-paper')[1]
    expected = {'dice': np.append(dice, 0.0), 'iou': np.append(dice / (2 - dice), 0.0), 'hd95_vox': hd}
    for metric, values in expected.items():
        got = entry[metric]
        assert got['n'] == len(values)
        assert got['mean'] == pytest.approx(values.mean(), abs=1e-12)
        assert got['std'] == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert (got['ci_low'], got['ci_high']) == pytest.approx(_paper_ci(values), abs=1e-12)
    assert entry['n'] == 11 and entry['empty'][GT_EMPTY] == 1 and entry['empty'][PRED_EMPTY] == 1
    assert 'hemseg-paper' in protocol_names()


def test_2d_is_refused():
    from mmseg_medical.errors import MedSegError
    with pytest.raises(MedSegError, match='3D'):
        PROTOCOL.score(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), (1.0, 1.0), [1], {1: 1.0})


# ---- 1. the grid ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(GEOMETRIES))
def test_grid_equals_monai(name, tmp_path, reference):
    reference('monai')
    affine, shape = GEOMETRIES[name]
    rng = np.random.default_rng(sorted(GEOMETRIES).index(name))
    labels = rng.integers(0, 3, size=shape).astype(np.int16)   # every voxel differs: any wrong pick shows
    other = (rng.random(shape) > 0.5).astype(np.uint8)
    affine = _file_affine(tmp_path / 'gt.nii.gz', labels, affine)
    (ref, ref_affine), = _monai_grid(tmp_path / 'gt.nii.gz')
    (out, out_other), out_affine = to_paper_grid((labels, other), affine)
    assert out.dtype == labels.dtype and out_other.dtype == other.dtype
    assert out.shape == ref.shape
    assert np.array_equal(out, ref)
    assert np.allclose(out_affine, ref_affine, rtol=0, atol=1e-9)
    (ref_other, _), = _monai_grid(_write(tmp_path / 'other.nii.gz', other, affine))
    assert np.array_equal(out_other, ref_other)
    # to_grid returns the same arrays, the zooms of the new affine and the affine
    gt_g, pred_g, zooms, hook_affine = PROTOCOL.to_grid(labels, other, tuple(nib.affines.voxel_sizes(affine)), affine)
    assert np.array_equal(gt_g, ref) and np.array_equal(pred_g, ref_other)
    assert np.allclose(zooms, nib.affines.voxel_sizes(ref_affine)) and np.allclose(hook_affine, ref_affine)
    if name == 'paper':   # within MONAI's AFFINE_TOL of the target: no resampling at all
        assert np.array_equal(out, labels) and np.array_equal(out_affine, affine)


# ---- 2. the metrics on those grids -----------------------------------------------------------------------
def _pairs(affine, shape):
    rng = np.random.default_rng(5)
    gt = _ball(shape, affine, 7.0)
    yield 'shifted balls', gt, _ball(shape, affine, 6.0, (1.2, -1.5, 2.0)), [1]
    noisy = (rng.random(shape) > 0.7).astype(np.int16)
    yield 'random', noisy, (np.roll(noisy, 2, axis=1) | (rng.random(shape) > 0.9)).astype(np.int16), [1]
    two = gt + 2 * _ball(shape, affine, 3.5, (-5.0, 5.0, 0.0)) * (gt == 0)
    yield 'two classes', two, np.roll(two, 1, axis=1), [1, 2]
    yield 'empty prediction', gt, np.zeros(shape, np.int16), [1]
    yield 'empty ground truth', np.zeros(shape, np.int16), gt, [1]
    yield 'both empty', np.zeros(shape, np.int16), np.zeros(shape, np.int16), [1]


@pytest.mark.parametrize('name', ['LPS', 'tilted', 'permuted', 'ties'])
def test_metrics_equal_monai(name, tmp_path, reference):
    reference('monai')
    affine, shape = GEOMETRIES[name]
    expected_empty = {'empty prediction': PRED_EMPTY, 'empty ground truth': GT_EMPTY, 'both empty': BOTH_EMPTY}
    affine = _file_affine(tmp_path / 'ref.nii.gz', np.zeros(shape), affine)
    for case, gt, pred, classes in _pairs(affine, shape):
        (gt_ref, _), (pred_ref, _) = _monai_grid(_write(tmp_path / 'gt.nii.gz', gt, affine),
                                                 _write(tmp_path / 'pred.nii.gz', pred, affine))
        ref = _monai_rows(gt_ref, pred_ref, classes)
        ours = _score(gt, pred, affine, classes)
        _assert_rows_equal(ours, ref)
        assert [r['empty'] for r in ours] == [expected_empty.get(case, NOT_EMPTY)] * len(classes), case
        if case == 'shifted balls':
            assert 0 < ours[0]['dice'] < 1 and ours[0]['hd95_vox'] > 0, ours
        if case == 'two classes':
            assert all(0 < r['dice'] < 1 for r in ours), ours


def test_empty_cases_mirror_monai_nan(reference):
    """MONAI 1.6.1: empty ground truth -> Dice = IoU = HD95 = NaN; empty prediction -> 0, 0 and HD95 NaN
    (not inf: the directed distances are all inf and torch.quantile of inf is NaN)."""
    reference('monai')
    gt = np.zeros((6, 7, 8), np.int16)
    gt[2:4, 2:5, 3:6] = 1
    empty = np.zeros_like(gt)
    spacing = (1.0, 1.0, 1.0)
    for a, b, flag in ((gt, empty, PRED_EMPTY), (empty, gt, GT_EMPTY), (empty, empty, BOTH_EMPTY)):
        ref = _monai_rows(a, b, [1])[0]
        row = PROTOCOL.class_row(a == 1, b == 1, spacing, 1.0, 1.0)
        assert row['empty'] == flag
        _assert_rows_equal([{'class': 1, **row}], [ref])
        assert math.isnan(row['hd95_vox'])
    assert _monai_rows(gt, empty, [1])[0]['dice'] == 0.0


# ---- 3. real HemSeg label geometry -------------------------------------------------------------------------
#: (file, how the prediction is built)
REAL = [('test/label/03899fa456.nii.gz', 'dilate'),   # L,P,S at 0.459 mm: resampled in-plane too
        ('val/label/08154d6b7b.nii.gz', 'shift'),     # gantry tilt, 5.39 mm
        ('val/label/102415070c.nii.gz', 'dilate')]    # tilted too, qform only


@pytest.mark.parametrize('relpath,how', REAL)
def test_real_labels_equal_monai_pipeline(relpath, how, realdata, tmp_path, reference):
    reference('monai')
    from scipy.ndimage import binary_dilation
    path = realdata / 'hemseg' / 'IPH_IVH_label' / relpath
    if not path.is_file():
        pytest.skip(f'{path} is not present')
    image = nib.load(str(path))
    gt = np.asarray(image.dataobj).astype(np.int16)
    affine = image.affine
    assert gt.any()
    # the lesion's in-plane box with a margin, every slice; the affine keeps the real geometry
    lo = np.maximum(np.argwhere(gt).min(0) - 15, 0)
    hi = np.minimum(np.argwhere(gt).max(0) + 16, gt.shape)
    lo[2], hi[2] = 0, gt.shape[2]
    gt = gt[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    gt_path = tmp_path / 'gt.nii.gz'
    affine = _file_affine(gt_path, gt, affine @ nib.affines.from_matvec(np.eye(3), lo))
    if how == 'dilate':
        pred = binary_dilation(gt > 0).astype(np.int16)
    else:
        pred = np.roll(gt, 1, axis=0)
    (gt_ref, gt_affine), (pred_ref, _) = _monai_grid(gt_path, _write(tmp_path / 'pred.nii.gz', pred, affine))
    gt_ours, pred_ours, _, affine_ours = PROTOCOL.to_grid(gt, pred, tuple(nib.affines.voxel_sizes(affine)), affine)
    assert np.array_equal(gt_ours, gt_ref) and np.array_equal(pred_ours, pred_ref)
    assert np.allclose(affine_ours, gt_affine, rtol=0, atol=1e-9)
    ours = _score(gt, pred, affine, [1])
    ref = _monai_rows(gt_ref, pred_ref, [1])
    _assert_rows_equal(ours, ref)
    assert ours[0]['empty'] == NOT_EMPTY and 0.3 < ours[0]['dice'] < 1 and ours[0]['hd95_vox'] >= 1


# ---- 4. the card's command end to end ---------------------------------------------------------------------
def test_evaluate_volumes_on_a_prepared_test_split_equals_monai(tmp_path, reference):
    """``evaluate_volumes --protocol hemseg-paper --data PREPARED --split test`` (the HemSeg card's Table 1
    command) on a prepared synthetic release: per case the CSV's dice, iou and hd95_vox equal MONAI's pipeline
    on the zip's label and the prediction file (LoadImaged ... Spacingd, DiceMetric, MeanIoU, HD95 in voxels);
    an empty prediction's HD95 is NaN and left out of the summary, whose mean, sample std and CI are the paper's
    rule on the values left (eval_bootstrap_ci.py written out), columns named with their unit."""
    reference('monai')
    import csv
    import zipfile

    from scipy.ndimage import binary_dilation

    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.evaluation.cli import main as evaluate_main
    from mmseg_medical.synthetic.hemseg import write_hemseg_release

    raw = write_hemseg_release(tmp_path / 'raw', num_scans=12, num_slices=6, size=48)   # every 4th scan is test
    data = tmp_path / 'data'
    prepare(CONVERTERS['hemseg'](), raw, data, workers=2, previews=0)
    test = (data / 'splits' / 'test.txt').read_text().split()
    cases = sorted({stem.rsplit('_', 1)[0] for stem in test})
    assert len(cases) == 3
    archive = zipfile.ZipFile(raw / 'IPH_IVH_label.zip')
    pred_dir, truth_dir = tmp_path / 'pred', tmp_path / 'truth'
    pred_dir.mkdir()
    truth_dir.mkdir()
    for k, case in enumerate(cases):
        member = next(m for m in archive.namelist() if m.endswith(f'/test/label/{case}.nii.gz'))
        (truth_dir / f'{case}.nii.gz').write_bytes(archive.read(member))
        label = nib.load(str(truth_dir / f'{case}.nii.gz'))
        gt = np.asanyarray(label.dataobj) > 0
        assert gt.any()
        pred = [binary_dilation(gt), np.roll(gt, 2, axis=0), np.zeros_like(gt)][k]    # the last: empty
        nib.save(nib.Nifti1Image(pred.astype(np.uint8), label.affine, label.header), str(pred_dir / f'{case}.nii.gz'))
    out = tmp_path / 'paper.csv'
    assert evaluate_main(['--protocol', 'hemseg-paper', '--pred', str(pred_dir), '--data', str(data), '--split',
                          'test', '--bootstrap', '5000', '--out', str(out)]) == 0
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['case', 'class', 'dice', 'iou', 'hd95_vox', 'empty']
    assert [r['case'] for r in rows] == cases and {r['class'] for r in rows} == {'1'}
    values = {m: [] for m in ('dice', 'iou', 'hd95_vox')}
    for row, case in zip(rows, cases):
        (gt_ref, _), (pred_ref, _) = _monai_grid(truth_dir / f'{case}.nii.gz', pred_dir / f'{case}.nii.gz')
        ref = _monai_rows(gt_ref, pred_ref, [1])
        ours = [{'class': 1, **{m: float(row[m]) for m in values}}]
        _assert_rows_equal(ours, ref)
        for m in values:
            values[m].append(float(row[m]))
    assert rows[-1]['empty'] == PRED_EMPTY and math.isnan(float(rows[-1]['hd95_vox']))
    assert 0 < float(rows[0]['dice']) < 1 and float(rows[0]['hd95_vox']) > 0
    report = out.with_name('paper_summary.md').read_text()
    header = next(line for line in report.splitlines() if line.startswith('| class'))
    assert header.split('|')[3:6] == [' dice ', ' iou ', ' hd95_vox (voxels) ']
    for m, digits in (('dice', 4), ('iou', 4), ('hd95_vox', 2)):
        kept = np.array([v for v in values[m] if not math.isnan(v)])
        assert len(kept) == (2 if m == 'hd95_vox' else 3)
        low, high = _paper_ci(kept)
        cell = f'{kept.mean():.{digits}f} ± {kept.std(ddof=1):.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]'
        assert cell in report, (m, cell)
