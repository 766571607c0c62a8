"""VolumeMetric restacks slice predictions by case (manifest) and scores them in mm; SegEvaluator --out."""
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

import mmseg_medical  # noqa: F401  (registers the metric and evaluator)
from mmseg_medical.evaluation import case_metrics
from mmseg_medical.evaluation.volume_metric import VolumeMetric
from mmseg_medical.manifest import read_case_geometry, read_manifest


def samples(root: Path, split: str = 'val', transform=lambda m: m):
    out = []
    for r in read_manifest(root):
        if r.split != split:
            continue
        gt = cv2.imread(str(root / r.mask), cv2.IMREAD_UNCHANGED)
        out.append(dict(img_path=str(root / r.image),
                        gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                        pred_sem_seg=dict(data=torch.from_numpy(transform(gt))[None])))
    return out


def evaluate(metric: VolumeMetric, data_samples) -> dict:
    metric.dataset_meta = dict(classes=('background', 'hemorrhage'))
    for s in data_samples[::-1]:  # order of arrival must not matter
        metric.process({}, [s])
    return metric.compute_metrics(metric.results)


def test_perfect_prediction(cranium_data):
    res = evaluate(VolumeMetric(n_bootstrap=10), samples(cranium_data))
    assert res['mDice'] == 100.0 and res['mNSD'] == 100.0 and res['mHD95'] == 0.0
    assert res['Dice.hemorrhage'] == 100.0


def test_n_bootstrap_zero_logs_no_ci(cranium_data, capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('volume_metric_test')
    res = evaluate(VolumeMetric(n_bootstrap=0), samples(cranium_data))
    assert res['mDice'] == 100.0
    out = capsys.readouterr().out
    assert 'no bootstrap CI' in out and '1.0000 ± 0.0000 |' in out


def test_empty_prediction_is_scored_not_dropped(cranium_data):
    res = evaluate(VolumeMetric(n_bootstrap=10), samples(cranium_data, transform=np.zeros_like))
    assert res['mDice'] == 0.0
    first_val = next(r.case_id for r in read_manifest(cranium_data) if r.split == 'val')
    geometry = read_case_geometry(cranium_data, first_val)
    z, h, w = geometry['shape_zhw']
    sx, sy, sz = geometry['spacing']
    assert res['mHD95'] == pytest.approx(np.sqrt((z * sz) ** 2 + (h * sy) ** 2 + (w * sx) ** 2), rel=1e-4)


def test_uses_spacing_in_zyx_order_and_writes_volumes(cranium_data, tmp_path):
    """Expected values come from the written NIfTI files alone: ``nib.load`` arrays in (i, j, k) order with
    ``header.get_zooms()``; the prediction is the ground truth shifted 3 columns (NIfTI axis i)."""
    def shift(mask):  # 3 columns = 3 * spacing_x mm
        return np.roll(mask, 3, axis=1)

    metric = VolumeMetric(n_bootstrap=0, nsd_tolerance=2.0, output_dir=str(tmp_path))
    res = evaluate(metric, samples(cranium_data, transform=shift))
    expected, wrong = [], []
    written = sorted(tmp_path.glob('*.nii.gz'))
    val_cases = {r.case_id for r in read_manifest(cranium_data) if r.split == 'val'}
    assert {p.name[:-7] for p in written} == val_cases
    for path in written:
        image = nib.load(str(path))
        pred = np.asarray(image.dataobj)
        zooms = tuple(float(z) for z in image.header.get_zooms())
        gt = np.roll(pred, -3, axis=0)
        # the rolled-back volume is the case's ground truth: same voxel count per slice as the source mask
        source = nib.load(read_case_geometry(cranium_data, path.name[:-7])['label_source'])
        per_slice = np.sort(np.asarray(source.dataobj).sum(axis=(0, 1)))
        np.testing.assert_array_equal(np.sort(gt.sum(axis=(0, 1))), per_slice)
        expected.append(case_metrics(gt, pred, zooms, [1], 2.0)[0]['hd95'])
        wrong.append(case_metrics(gt, pred, zooms[::-1], [1], 2.0)[0]['hd95'])
    assert res['mHD95'] == pytest.approx(np.mean(expected), abs=1e-3)
    assert res['mHD95'] != pytest.approx(np.mean(wrong), abs=1e-3)


def gt_empty_cases(root: Path) -> set:
    """Val cases whose ground-truth masks (read from the PNGs) hold no foreground."""
    fg = {}
    for r in read_manifest(root):
        if r.split == 'val':
            fg[r.case_id] = fg.get(r.case_id, False) or bool(cv2.imread(str(root / r.mask), cv2.IMREAD_UNCHANGED).any())
    return {c for c, has in fg.items() if not has}


def add_speck(mask):
    """A 2x2 false-positive speck in a corner of every slice: one 2x2x(slices) 3D component per case."""
    out = mask.copy()
    out[:2, :2] = 1
    return out


def test_empty_counts_are_returned(cranium_data):
    n_val = len({r.case_id for r in read_manifest(cranium_data) if r.split == 'val'})
    no_fg = gt_empty_cases(cranium_data)
    res = evaluate(VolumeMetric(n_bootstrap=0), samples(cranium_data, transform=np.zeros_like))
    assert (res['n_both_empty'], res['n_gt_empty'], res['n_pred_empty']) == (len(no_fg), 0, n_val - len(no_fg))
    assert res['n_pred_empty.hemorrhage'] == n_val - len(no_fg)
    res = evaluate(VolumeMetric(n_bootstrap=0), samples(cranium_data, transform=add_speck))
    assert (res['n_both_empty'], res['n_gt_empty'], res['n_pred_empty']) == (0, len(no_fg), 0)


def test_postprocess_removes_specks_given_or_chosen(cranium_data, tmp_path):
    """A 2x2-pixel speck on each of the 6 slices is one 24-voxel 3D component; real bleeds are larger."""
    perfect = evaluate(VolumeMetric(n_bootstrap=0), samples(cranium_data))
    specked = evaluate(VolumeMetric(n_bootstrap=0), samples(cranium_data, transform=add_speck))
    assert specked['mDice'] < perfect['mDice'] == 100.0
    given = evaluate(VolumeMetric(n_bootstrap=0, postprocess=dict(min_size={1: 25})),
                     samples(cranium_data, transform=add_speck))
    assert given == perfect
    too_small = evaluate(VolumeMetric(n_bootstrap=0, postprocess=dict(min_size={1: 24})),
                         samples(cranium_data, transform=add_speck))
    assert too_small == specked  # a component of exactly 24 voxels stays
    metric = VolumeMetric(n_bootstrap=0, postprocess='auto', output_dir=str(tmp_path))
    auto = evaluate(metric, samples(cranium_data, transform=add_speck))
    assert auto == perfect and metric.postprocess_rules[1] in ('largest', 25, 50, 100)
    from mmseg_medical.evaluation.postprocess import load_rules
    assert load_rules(tmp_path / 'postprocessing.json') == ({1: metric.postprocess_rules[1]}, 1)
    none = VolumeMetric(n_bootstrap=0, postprocess='auto')
    assert evaluate(none, samples(cranium_data)) == perfect and none.postprocess_rules == {1: None}


def test_bad_options():
    from mmseg_medical.errors import MedSegError
    with pytest.raises(MedSegError, match='n_bootstrap'):
        VolumeMetric(n_bootstrap=-1)
    with pytest.raises(MedSegError, match='postprocess'):
        VolumeMetric(postprocess='largest')
    with pytest.raises(MedSegError, match='rule'):
        VolumeMetric(postprocess=dict(min_size={1: -3}))


def test_slice_not_in_manifest_is_a_clear_error(cranium_data, tmp_path):
    from mmseg_medical.errors import MedSegError
    s = samples(cranium_data)[0]
    s['img_path'] = str(tmp_path / 'elsewhere.png')
    with pytest.raises(MedSegError, match='no manifest.csv above this slice'):
        VolumeMetric().process({}, [s])


def test_seg_evaluator_forwards_out(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import EVALUATOR
    init_default_scope('mmseg')
    ev = EVALUATOR.build(dict(type='SegEvaluator', metrics=[dict(type='IoUMetric'), dict(type='VolumeMetric')],
                              output_dir=str(tmp_path / 'pred'), keep_results=True))
    assert ev.metrics[0].output_dir == str(tmp_path / 'pred') and ev.metrics[0].keep_results
    assert ev.metrics[1].output_dir == str(tmp_path / 'pred' / 'volumes')


def test_std_keys_and_metrics_csv_against_hand_computed(cranium_data, tmp_path):
    """All six cases (train + val): cases 051 and 054 get an empty prediction, the other four a perfect one.

    By hand, per case: perfect → dice = iou = nsd = 1, hd95 = assd = 0 (case 052 has no foreground: both
    empty, also 1 / 0); empty prediction → 0 and the volume diagonal D = sqrt((6·5)² + 2·(64·3.5938)²) mm
    (6 × 64² voxels of 3.5938 × 3.5938 × 5 mm, read from the release's NIfTI header with nibabel). Over the six cases
    [1, 1, 1, 1, 0, 0]: mean 2/3, sample std sqrt((4·(1/3)² + 2·(2/3)²) / 5) = sqrt(4/15); the distances
    [0, 0, 0, 0, D, D]: mean D/3, std D·sqrt(4/15).
    """
    import csv
    empty_pred = {'051', '054'}
    data = []
    for split in ('train', 'val'):
        records = [r for r in read_manifest(cranium_data) if r.split == split]
        for r, s in zip(records, samples(cranium_data, split)):
            if r.case_id in empty_pred:
                s['pred_sem_seg']['data'] = torch.zeros_like(s['pred_sem_seg']['data'])
            data.append(s)
    assert {r.case_id for r in read_manifest(cranium_data)} == {'049', '050', '051', '052', '053', '054'}
    import nibabel as nib
    scan = next((cranium_data.parent / 'raw').rglob('ct_scans/049.nii'))    # the release file the case came from
    zooms = [float(z) for z in nib.load(str(scan)).header.get_zooms()]
    assert zooms == [float(np.float32(round(230 / 64, 4)))] * 2 + [5.0]     # the phantom's 230 mm field, float32 header
    diagonal = np.sqrt((6 * zooms[2]) ** 2 + 2 * (64 * zooms[0]) ** 2)  # 325.6 mm
    res = evaluate(VolumeMetric(n_bootstrap=0, output_dir=str(tmp_path)), data)
    share = np.sqrt(4 / 15)
    for name in ('Dice', 'IoU', 'NSD'):
        assert res[f'{name}_std.hemorrhage'] == pytest.approx(100 * share, abs=1e-4)  # 51.6398 %
    for name in ('Dice', 'IoU', 'NSD'):
        assert res[f'{name}.hemorrhage'] == pytest.approx(200 / 3, abs=1e-4)
    for name in ('HD95', 'ASSD'):
        assert res[f'{name}.hemorrhage'] == pytest.approx(diagonal / 3, abs=1e-3)
        assert res[f'{name}_std.hemorrhage'] == pytest.approx(diagonal * share, abs=1e-3)  # 168.2 mm
    assert res['HD95.hemorrhage'] == pytest.approx(diagonal / 3, abs=1e-3)
    assert all(type(v) is float for v in res.values())  # mmengine's JSON dump writes other numbers as null
    with open(tmp_path / 'metrics.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['case', 'class', 'dice', 'iou', 'nsd', 'hd95', 'assd', 'empty']
    by_case = {row[0]: row for row in rows[1:]}
    assert len(rows) == 7 and set(by_case) == {'049', '050', '051', '052', '053', '054'}
    for case, row in by_case.items():
        assert row[1] == '1'
        if case in empty_pred:
            assert [float(v) for v in row[2:5]] == [0.0, 0.0, 0.0] and row[7] == 'pred_empty'
            assert [float(v) for v in row[5:7]] == pytest.approx([diagonal, diagonal], abs=1e-3)
        else:
            assert [float(v) for v in row[2:7]] == [1.0, 1.0, 1.0, 0.0, 0.0]
            assert row[7] == ('both_empty' if case == '052' else '')


def test_single_case_std_is_zero(cranium_data):
    """One case: no spread (std 0 by the summary's convention), still Python floats."""
    records = [r for r in read_manifest(cranium_data) if r.split == 'val']
    one = [s for r, s in zip(records, samples(cranium_data)) if r.case_id == '051']
    assert len(one) == 6
    res = evaluate(VolumeMetric(n_bootstrap=0), one)
    assert res['Dice_std.hemorrhage'] == 0.0 and type(res['HD95_std.hemorrhage']) is float


def test_run_json_beside_the_volumes_folder(cranium_data, tmp_path):
    """``mim test --out DIR`` makes the metric write DIR/volumes: it also writes DIR/run.json (the prepared dataset
    as an absolute path, the protocol, and the facts RunInfoHook gave it); another output folder gets none."""
    import json
    data = samples(cranium_data, 'val')
    metric = VolumeMetric(n_bootstrap=0, output_dir=str(tmp_path / 'out' / 'volumes'))
    metric.run_facts = {'config': '/abs/c.py', 'checkpoint': '/abs/c.pth', 'other': 'left out'}
    evaluate(metric, data)
    assert json.loads((tmp_path / 'out' / 'run.json').read_text()) == {
        'config': '/abs/c.py', 'checkpoint': '/abs/c.pth', 'protocol': 'default',
        'data_root': str(cranium_data.resolve()), 'split_file': None, 'work_dir': None, 'log': None}
    evaluate(VolumeMetric(n_bootstrap=0, output_dir=str(tmp_path / 'elsewhere')), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['elsewhere', 'out']
    assert not (tmp_path / 'elsewhere' / 'run.json').exists()


def test_hemseg_paper_protocol_in_volume_metric(cranium_data):
    """VolumeMetric(protocol='hemseg-paper') over all six cases: four perfect predictions (Dice 1, HD95 0 voxels on
    the paper's grid), one empty prediction of a bleeding case (Dice 0, HD95 NaN as MONAI), and case 052, empty on
    both sides (MONAI's ignore_empty: all NaN). NaN is left out of each mean, and the CI is the paper's
    eval_bootstrap_ci.py rule (written out here) on the values left: Dice [1, 1, 1, 1, 0], HD95 [0, 0, 0, 0]."""
    data = []
    for split in ('train', 'val'):
        records = [r for r in read_manifest(cranium_data) if r.split == split]
        for r, s in zip(records, samples(cranium_data, split)):
            if r.case_id == '051':
                s['pred_sem_seg']['data'] = torch.zeros_like(s['pred_sem_seg']['data'])
            data.append(s)
    assert not any(cv2.imread(str(cranium_data / r.mask), cv2.IMREAD_UNCHANGED).any()
                   for r in read_manifest(cranium_data) if r.case_id == '052')
    res = evaluate(VolumeMetric(protocol='hemseg-paper', n_bootstrap=5000), data)
    dice = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    samples_ = np.random.RandomState(47).choice(dice, size=(5000, 5), replace=True)
    stat = np.sort(samples_.mean(axis=1))
    assert res['Dice.hemorrhage'] == pytest.approx(80.0, abs=1e-9)
    assert res['Dice.hemorrhage.ci_low'] == pytest.approx(100 * stat[125], abs=1e-9)
    assert res['Dice.hemorrhage.ci_high'] == pytest.approx(100 * stat[4875], abs=1e-9)
    assert res['IoU.hemorrhage'] == pytest.approx(80.0, abs=1e-9)
    assert res['HD95vox.hemorrhage'] == 0.0
    assert 'HD95.hemorrhage' not in res and 'NSD.hemorrhage' not in res
