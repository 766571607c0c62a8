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


def test_empty_prediction_is_scored_not_dropped(cranium_data):
    res = evaluate(VolumeMetric(n_bootstrap=10), samples(cranium_data, transform=np.zeros_like))
    assert res['mDice'] == 0.0
    geometry = read_case_geometry(cranium_data, next(r.case_id for r in read_manifest(cranium_data) if r.split == 'val'))
    z, h, w = geometry['shape_zhw']
    sx, sy, sz = geometry['spacing']
    assert res['mHD95'] == pytest.approx(np.sqrt((z * sz) ** 2 + (h * sy) ** 2 + (w * sx) ** 2), rel=1e-4)


def test_uses_spacing_in_zyx_order_and_writes_volumes(cranium_data, tmp_path):
    def shift(mask):  # 3 columns = 3 * spacing_x mm
        return np.roll(mask, 3, axis=1)

    metric = VolumeMetric(n_bootstrap=10, nsd_tolerance=2.0, output_dir=str(tmp_path))
    res = evaluate(metric, samples(cranium_data, transform=shift))
    expected, wrong = [], []
    for path in sorted(tmp_path.glob('*.nii.gz')):
        case = path.name[:-7]
        geometry = read_case_geometry(cranium_data, case)
        rows = sorted((r for r in read_manifest(cranium_data) if r.case_id == case), key=lambda r: r.slice_index)
        gt = np.stack([cv2.imread(str(cranium_data / r.mask), cv2.IMREAD_UNCHANGED) for r in rows])
        sx, sy, sz = geometry['spacing']
        expected.append(case_metrics(gt, np.roll(gt, 3, axis=2),
                                     (sz, sy, sx), [1], 2.0)[0]['hd95'])
        wrong.append(case_metrics(gt, np.roll(gt, 3, axis=2), (sx, sy, sz), [1], 2.0)[0]['hd95'])
        written = nib.load(str(path))
        np.testing.assert_allclose(written.affine, geometry['affine'], atol=1e-5)
        np.testing.assert_array_equal(np.asarray(written.dataobj).transpose(2, 1, 0), np.roll(gt, 3, axis=2))
    assert expected and res['mHD95'] == pytest.approx(np.mean(expected), abs=1e-3)
    assert res['mHD95'] != pytest.approx(np.mean(wrong), abs=1e-3)


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
