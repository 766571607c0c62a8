"""The user's round trip on a crossMoDA 2021 release, as the README shows it: prepare, ``mim train`` and
``mim test --out DIR`` with ``$(python tools/tiny_options.py DATA ...)``, then ``tools/evaluate_volumes.py
--pred DIR/volumes --data DATA --split val``: every val case is scored under one name, the case id (the scan's
file name without ``_ceT1``/``_hrT2``/``_Label``), and its Dice is the Dice of the predicted volume against the
raw release's ``crossmoda_<n>_Label.nii.gz`` (nibabel + numpy by hand, labels stored as float64).
"""
from __future__ import annotations

import csv
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.manifest import read_manifest
from mmseg_medical.runs import last_checkpoint
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

CONFIG = 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
CLASSES = (1, 2)  # vestibular schwannoma, cochlea
# A background class weight of 0.02 makes the 2-iteration model predict both structures somewhere, so that
# the scores are not only the empty-prediction constants; val_begin=3: no validation after iteration 2.
EXTRA = "'model.decode_head.loss_decode.class_weight=[0.02,1.0,1.0]' train_cfg.val_begin=3"


def _dice(truth: np.ndarray, guess: np.ndarray) -> float:
    total = int(truth.sum() + guess.sum())
    return 2.0 * int((truth & guess).sum()) / total if total else 1.0   # protocol default: both empty -> 1


def test_mim_test_then_evaluate_volumes_gives_the_raw_labels_dice(tmp_path, shell):
    raw = write_crossmoda_release(tmp_path / 'raw', naming='2021', num_source=10, num_target=1, num_val=1, size=32,
                                  num_slices=4)
    data = tmp_path / 'crossmoda'
    prepare(CONVERTERS['crossmoda'](), raw, data, workers=2, previews=0)

    # one rule for every scan: case id = file name without the modality suffix (ceT1 source, hrT2 target)
    scans = {p.name: p for p in raw.rglob('crossmoda_*_*T?.nii.gz')}
    by_rule = {re.sub(r'_(ceT1|hrT2)\.nii\.gz$', '', name): name for name in scans}
    records = read_manifest(data)
    assert {r.case_id for r in records} == set(by_rule)
    assert {r.case_id for r in records if r.split in ('target', 'target_val')} == {'crossmoda_11', 'crossmoda_12'}
    assert sorted(p.name for p in (data / 'labels').iterdir()) == sorted(f'crossmoda_{n}.nii.gz' for n in range(1, 11))

    options = shell.tiny_options(data, '--iters', '2', '--base-channels', '8', '--batch-size', '2') + ' ' + EXTRA
    shell.bash(shell.mim('train', 'mmseg', CONFIG, '--gpus', '0', '--work-dir', tmp_path / 'train', options),
               tmp_path / 'train.log')
    pred = tmp_path / 'pred'
    shell.bash(shell.mim('test', 'mmseg', CONFIG, '--checkpoint', last_checkpoint(tmp_path / 'train'), '--gpus', '0',
                         '--work-dir', tmp_path / 'test', '--out', pred, options), tmp_path / 'test.log')

    val = sorted({r.case_id for r in records if r.split == 'val'})
    assert len(val) == 2
    assert sorted(p.name for p in (pred / 'volumes').glob('*.nii.gz')) == [f'{case}.nii.gz' for case in val]
    out = tmp_path / 'metrics.csv'
    proc = subprocess.run([sys.executable, 'tools/evaluate_volumes.py', '--pred', str(pred / 'volumes'), '--data',
                           str(data), '--split', 'val', '--classes', '1,2', '--out', str(out)],
                          cwd=shell.repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'warning' not in proc.stderr
    rows = {(r['case'], int(r['class'])): float(r['dice']) for r in csv.DictReader(out.open())}
    assert sorted(rows) == [(case, c) for case in val for c in CLASSES]

    between = 0
    for case in val:
        assert by_rule[case] == f'{case}_ceT1.nii.gz'
        [label_file] = raw.rglob(f'{case}_Label.nii.gz')
        label, volume = nib.load(str(label_file)), nib.load(str(pred / 'volumes' / f'{case}.nii.gz'))
        assert volume.shape == label.shape and np.allclose(volume.affine, label.affine, atol=1e-4)
        truth, guess = np.rint(np.asanyarray(label.dataobj)), np.asanyarray(volume.dataobj)
        for c in CLASSES:
            dice = _dice(truth == c, guess == c)
            assert rows[case, c] == pytest.approx(dice, abs=1e-12), (case, c)
            between += 0 < dice < 1
    assert between, 'the tiny model should leave a Dice strictly between 0 and 1 somewhere'
