"""The CrossMoDA source config trains 2 iterations on a synthetic 2022-named release prepared with ``--crop``
and ``mim test --out`` scores the val patients (none of the train patients) with the crossmoda protocol.
A background class weight of 0.02 makes the 2-iteration model predict both structures somewhere, so the
scores are not only the empty-prediction constants.

Independent references: the source label files of the release (read with nibabel, the London labels by their
2021 names), the slice predictions ``--out`` writes as PNGs (put back into the crop window by hand), Dice by
hand and ASSD with medpy (``scores.py``'s rules: spacing |diagonal of the label's affine|, 350 mm for an
empty prediction), and the means, standard deviations, quartiles and site means written out here.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
SIZE, CROP, SLICES = 32, 20, 4
LO = (SIZE - CROP) // 2                      # the centred crop window: rows and columns LO .. LO + CROP - 1
STRUCTURES = {1: 'vestibular_schwannoma', 2: 'cochlea'}
SITES = {'ldn': 'London', 'etz': 'Tilburg'}  # the site codes of crossMoDA 2022 names
ROUNDED = 6e-5                               # VolumeMetric returns values rounded to 4 decimals


def _label_file(raw: Path, case: str) -> Path:
    """The release's label of a 2022 case: London labels kept their 2021 names."""
    _, site, n = case.split('_')
    name = f'crossmoda2021_ldn_{n}_Label.nii.gz' if site == 'ldn' else f'{case}_Label.nii.gz'
    return raw / 'crossmoda2022_training' / name


def _cell(text: str) -> list:
    """'median [q1, q3]; mean ± std [ci_low, ci_high]' -> [median, q1, q3, mean, std]."""
    numbers = [float(x) for x in re.findall(r'-?\d+\.\d+', text)]
    assert len(numbers) in (5, 7), text
    return numbers[:5]


def test_source_config_trains_and_tests_with_volume_metrics(tmp_path, crossmoda_by_hand):
    raw = write_crossmoda_release(tmp_path / 'raw', naming='2022', num_source=10, num_target=1, num_val=1,
                                  size=SIZE, num_slices=SLICES)
    data = tmp_path / 'crossmoda'
    prepare(CONVERTERS['crossmoda'](crop=CROP), raw, data, workers=2, previews=0)
    options = tiny_overrides(data, scale=32, iters=2, base_channels=8, batch_size=2, workers=0) + [
        'model.decode_head.loss_decode.class_weight=[0.02,1.0,1.0]']
    no_val = ['train_cfg.val_begin=3']    # the val split would be scored after iteration 2 otherwise
    run(mim_train(CONFIG, tmp_path / 'train', options + no_val, ['--gpus', '0']), log=tmp_path / 'train.log', cwd=REPO)
    pred = tmp_path / 'pred'
    run(mim_test(CONFIG, last_checkpoint(tmp_path / 'train'), tmp_path / 'test', options,
                 ['--gpus', '0', '--out', str(pred)]), log=tmp_path / 'test.log', cwd=REPO)

    # val patients: the case ids of the slice stems in splits/val.txt (<case>_<4-digit slice>); one per site
    val_stems = (data / 'splits/val.txt').read_text().split()
    val_cases = sorted({re.sub(r'_\d{4}$', '', s) for s in val_stems})
    train_cases = {re.sub(r'_\d{4}$', '', s) for s in (data / 'splits/train.txt').read_text().split()}
    assert not set(val_cases) & train_cases and len(val_stems) == SLICES * len(val_cases)
    assert set(val_cases) | train_cases == {f'crossmoda2022_{"ldn" if n % 2 == 0 else "etz"}_{n}' for n in range(1, 11)}
    assert sorted(c.split('_')[1] for c in val_cases) == ['etz', 'ldn']

    # the written volumes: the source label's grid; inside the crop window the slice PNGs, outside background
    assert sorted(p.name for p in (pred / 'volumes').glob('*.nii.gz')) == [f'{c}.nii.gz' for c in val_cases]
    for case in val_cases:
        volume = nib.load(str(pred / 'volumes' / f'{case}.nii.gz'))
        label = nib.load(str(_label_file(raw, case)))
        assert ''.join(nib.aff2axcodes(label.affine)) == 'LPS'          # display (z, y, x) = the transpose
        assert volume.shape == label.shape and np.allclose(volume.affine, label.affine, atol=1e-4)
        display = np.asanyarray(volume.dataobj).transpose(2, 1, 0)
        slices = np.stack([cv2.imread(str(pred / f'{case}_{k:04d}.png'), cv2.IMREAD_UNCHANGED) for k in range(SLICES)])
        assert slices.shape == (SLICES, CROP, CROP)
        np.testing.assert_array_equal(display[:, LO:LO + CROP, LO:LO + CROP], slices)
        outside = np.ones(display.shape, bool)
        outside[:, LO:LO + CROP, LO:LO + CROP] = False
        assert not display[outside].any()
        truth = np.rint(np.asanyarray(label.dataobj)).transpose(2, 1, 0)
        assert (truth[outside] == 2).any()           # label voxels the crop removed: scored all the same

    # per case and structure: scores.py's values by hand, = the metrics.csv rows
    hand = {case: crossmoda_by_hand(pred / 'volumes' / f'{case}.nii.gz', _label_file(raw, case)) for case in val_cases}
    with open(pred / 'volumes' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['case', 'class', 'dice', 'assd', 'empty']
    assert [(r['case'], int(r['class'])) for r in rows] == [(c, k) for c in val_cases for k in STRUCTURES]
    for r in rows:
        dice, assd = hand[r['case']][int(r['class'])]
        assert float(r['dice']) == pytest.approx(dice, abs=1e-6, nan_ok=True)
        assert float(r['assd']) == pytest.approx(assd, abs=1e-6)
        assert r['empty'] == ('pred_empty' if assd == 350.0 else '')
    assert any(0 < hand[case][c][1] < 350 for case in val_cases for c in STRUCTURES)   # medpy's ASSD was used

    # the returned keys and the logged table: mean, std (ddof 1), median and quartiles, site means, by hand
    metrics = read_test_metrics(tmp_path / 'test')
    log = (tmp_path / 'test.log').read_text()
    assert f'volume metrics over {len(val_cases)} cases, protocol crossmoda' in log
    header = re.search(r'^\| class \| n \| (.*) \|$', log, re.M).group(1).split(' | ')
    for c, structure in STRUCTURES.items():
        row = re.search(rf'^\| {structure} \| {len(val_cases)} \| (.*) \|$', log, re.M)
        assert row, f'no VolumeMetric row for {structure}'
        cells = row.group(1).split(' | ')
        for j, (metric, key, scale, digits) in enumerate((('dice', 'Dice', 100.0, 4), ('assd (mm)', 'ASSD', 1.0, 2))):
            values = np.array([hand[case][c][j] for case in val_cases])
            values = values[~np.isnan(values)]
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            expected = [median, q1, q3, values.mean(), values.std(ddof=1)]
            assert _cell(cells[header.index(metric)]) == pytest.approx(expected, abs=0.51 * 10 ** -digits)
            for name, value in zip(('_median', '_q1', '_q3', '', '_std'), expected):
                assert metrics[f'volume/{key}{name}.{structure}'] == pytest.approx(scale * value, abs=ROUNDED)
            for case in val_cases:                   # one case per site: the site mean is its value
                site = SITES[case.split('_')[1]]
                expected = scale * hand[case][c][j]
                assert metrics[f'volume/{key}.{structure}.{site}'] == pytest.approx(expected, abs=ROUNDED)
    for j, key, scale in ((0, 'Dice', 100.0), (1, 'ASSD', 1.0)):
        means = [np.nanmean([hand[case][c][j] for case in val_cases]) for c in STRUCTURES]
        assert metrics[f'volume/m{key}'] == pytest.approx(scale * np.mean(means), abs=ROUNDED)
    assert 'per site:' in log and 'Site London (1 cases)' in log and 'Site Tilburg (1 cases)' in log
