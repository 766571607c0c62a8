"""A Task 1 fold config (fold 3 by --cfg-options, as documented) trains 2 iterations and ``mim test --out``
scores that fold's 16 test cases with the benchmark's protocol (covid19: DSC and NSD at 1 mm lungs, 3 mm
lesion).

Independent references: the release's ``Lung_and_Infection_Mask`` files (read with nibabel), the slice
PNGs ``--out`` writes, DSC by hand and NSD with MONAI's ``compute_surface_dice(use_subvoxels=True)`` (the
DeepMind surfel definition of the benchmark's ``utils/SurfaceDice.py``) with the ground truth's header zooms.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic.covid19 import write_covid19_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
FOLD3_TRAIN = ['coronacases_003', 'coronacases_005', 'radiopaedia_40_86625_0', 'radiopaedia_27_86410_0']  # NOTES.md
CLASSES = {1: ('left_lung', 1.0), 2: ('right_lung', 1.0), 3: ('infection', 3.0)}   # name, NSD tolerance (mm)
SLICES = 3
ROUNDED = 6e-5                               # VolumeMetric returns values rounded to 4 decimals


def _by_hand(pred_file: Path, label_file: Path) -> dict:
    """``{class: (dsc, nsd)}`` as the benchmark's script: NaN when both masks are empty, 0 when one is."""
    import torch
    from monai.metrics import compute_surface_dice

    label, pred = nib.load(str(label_file)), nib.load(str(pred_file))
    assert pred.shape == label.shape and np.allclose(pred.affine, label.affine, atol=1e-4)
    truth, guess = np.asanyarray(label.dataobj), np.asanyarray(pred.dataobj)
    spacing = [float(z) for z in label.header.get_zooms()]
    out = {}
    for c, (_, tolerance) in CLASSES.items():
        g, p = truth == c, guess == c
        if not g.any() and not p.any():
            out[c] = (float('nan'), float('nan'))
        elif not g.any() or not p.any():
            out[c] = (0.0, 0.0)
        else:
            as_tensor = [torch.from_numpy(np.stack([~m, m])[None].astype(np.float32)) for m in (p, g)]
            nsd = compute_surface_dice(*as_tensor, class_thresholds=[tolerance], spacing=spacing, use_subvoxels=True)
            out[c] = (2.0 * int((g & p).sum()) / int(g.sum() + p.sum()), float(nsd[0, 0]))
    return out


def test_fold_config_trains_and_tests_with_volume_metrics(tmp_path, reference):
    reference('monai.metrics')
    raw = write_covid19_release(tmp_path / 'raw', 'zenodo', num_slices=SLICES, size=32)
    data = tmp_path / 'covid19'
    prepare(CONVERTERS['covid19'](), tmp_path / 'raw', data, workers=2, previews=0)
    options = tiny_overrides(data, scale=32, iters=2, base_channels=8, batch_size=2, workers=0) + [
        f'{loader}.dataset.ann_file=splits/task1_fold3_{split}.txt'
        for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'test'), ('test_dataloader', 'test'))]
    no_val = ['train_cfg.val_begin=3']    # the 16 test cases would be scored after iteration 2 otherwise
    run(mim_train(CONFIG, tmp_path / 'train', options + no_val, ['--gpus', '0']), log=tmp_path / 'train.log', cwd=REPO)
    pred = tmp_path / 'pred'
    run(mim_test(CONFIG, last_checkpoint(tmp_path / 'train'), tmp_path / 'test', options,
                 ['--gpus', '0', '--out', str(pred)]), log=tmp_path / 'test.log', cwd=REPO)
    log = (tmp_path / 'test.log').read_text()
    assert 'volume metrics over 16 cases, protocol covid19' in log  # the fold's test cases, none of its training cases
    test_list = (data / 'splits' / 'task1_fold3_test.txt').read_text()
    assert not any(f'{c}_0000' in test_list for c in FOLD3_TRAIN)

    # Covid19VolumeMetric, like VolumeMetric, writes its volumes and metrics.csv to DIR/volumes, the PNGs to DIR
    volumes = pred / 'volumes'
    cases = sorted(p.name[:-len('.nii.gz')] for p in volumes.glob('*.nii.gz'))
    assert len(cases) == 16 and not set(cases) & set(FOLD3_TRAIN)
    hand = {}
    for case in cases:
        label_file = raw / 'Lung_and_Infection_Mask' / f'{case}.nii.gz'
        assert ''.join(nib.aff2axcodes(nib.load(str(label_file)).affine)) == 'LPS'   # display = the transpose
        display = np.asanyarray(nib.load(str(volumes / f'{case}.nii.gz')).dataobj).transpose(2, 1, 0)
        slices = np.stack([cv2.imread(str(pred / f'{case}_{k:04d}.png'), cv2.IMREAD_UNCHANGED) for k in range(SLICES)])
        np.testing.assert_array_equal(display, slices)
        hand[case] = _by_hand(volumes / f'{case}.nii.gz', label_file)
    assert any(0 < hand[case][c][1] < 1 for case in cases for c in CLASSES)    # MONAI's NSD was used

    with open(volumes / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['case', 'class', 'dice', 'nsd', 'empty']
    assert [(r['case'], int(r['class'])) for r in rows] == [(case, c) for case in cases for c in CLASSES]
    for r in rows:
        dsc, nsd = hand[r['case']][int(r['class'])]
        assert float(r['dice']) == pytest.approx(dsc, abs=1e-6, nan_ok=True)
        assert float(r['nsd']) == pytest.approx(nsd, abs=1e-5, nan_ok=True)     # MONAI computes in float32

    metrics = read_test_metrics(tmp_path / 'test')
    class_means = {0: [], 1: []}
    for c, (name, _) in CLASSES.items():
        for j, key in enumerate(('Dice', 'NSD')):
            values = np.array([hand[case][c][j] for case in cases])
            values = values[~np.isnan(values)]                 # as pandas' mean of the script's CSV
            class_means[j].append(values.mean())
            tol = ROUNDED + 1e-4 * j                             # NSD: MONAI's float32
            assert metrics[f'volume/{key}.{name}'] == pytest.approx(100 * values.mean(), abs=tol)
            assert metrics[f'volume/{key}_std.{name}'] == pytest.approx(100 * values.std(ddof=1), abs=tol)
    assert metrics['volume/mDice'] == pytest.approx(100 * np.mean(class_means[0]), abs=ROUNDED)
    assert metrics['volume/mNSD'] == pytest.approx(100 * np.mean(class_means[1]), abs=ROUNDED + 1e-4)
