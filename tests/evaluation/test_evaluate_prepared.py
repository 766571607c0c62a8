"""``evaluate_volumes --data PREPARED --split NAME``: the ground truth comes from the prepared dataset on the
source grid, so a user needs no hand-made label folder (HemSeg labels sit in a zip).

Predictions here are the release's own label files, extracted by the test with ``zipfile`` (HemSeg) or
copied from the release (CrossMoDA, under the challenge's ``<case>_Label`` name), one of them altered by a
known amount: the scores must be 1 for the untouched cases and equal numbers computed by hand (or by
medpy) from the release files for the altered one.
"""
from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.evaluation.cli import main as evaluate_main
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release
from mmseg_medical.synthetic.hemseg import write_hemseg_release


def _rows(path: Path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def hemseg(tmp_path_factory):
    root = tmp_path_factory.mktemp('hemseg_eval')
    raw = write_hemseg_release(root / 'raw', num_scans=6, num_slices=6, size=48)
    out = root / 'prepared'
    prepare(CONVERTERS['hemseg'](), raw, out, workers=1, previews=0)
    return raw, out


def test_hemseg_ground_truth_from_the_zip_through_the_prepared_dataset(hemseg, tmp_path, capsys):
    raw, out = hemseg
    test_cases = json.loads((out / 'splits.json').read_text())['test']
    pred = tmp_path / 'pred'
    pred.mkdir()
    with zipfile.ZipFile(raw / 'IPH_IVH_label.zip') as zf:
        members = {Path(n).name[:-len('.nii.gz')]: n for n in zf.namelist() if n.endswith('.nii.gz')}
        for case in test_cases:
            (pred / f'{case}.nii.gz').write_bytes(zf.read(members[case]))
    # one case altered: the first labelled slice of its label removed
    altered = test_cases[0]
    image = nib.load(str(pred / f'{altered}.nii.gz'))
    truth = np.asanyarray(image.dataobj).astype(np.uint8)
    k = int(np.flatnonzero(truth.reshape(-1, truth.shape[2]).any(axis=0))[0])
    changed = truth.copy()
    changed[..., k] = 0
    nib.save(nib.Nifti1Image(changed, image.affine, image.header), str(pred / f'{altered}.nii.gz'))
    removed = int(truth[..., k].sum())
    expected_dice = 2 * (truth.sum() - removed) / (truth.sum() + truth.sum() - removed)

    csv_path = tmp_path / 'metrics.csv'
    assert evaluate_main(['--pred', str(pred), '--data', str(out), '--split', 'test', '--out', str(csv_path),
                          '--bootstrap', '0']) == 0
    rows = {r['case']: r for r in _rows(csv_path)}
    assert set(rows) == set(test_cases)
    for case, row in rows.items():
        want = expected_dice if case == altered else 1.0
        assert float(row['dice']) == pytest.approx(want, abs=1e-12), case
    assert 'hemorrhage' in capsys.readouterr().out       # class names from the prepared dataset.json


def test_cases_of_the_split_without_prediction_are_named(hemseg, tmp_path, capsys):
    raw, out = hemseg
    val = json.loads((out / 'splits.json').read_text())['val']
    pred = tmp_path / 'pred'
    pred.mkdir()
    with zipfile.ZipFile(raw / 'IPH_IVH_label.zip') as zf:
        member = next(n for n in zf.namelist() if n.endswith(f'{val[0]}.nii.gz'))
        (pred / f'{val[0]}.nii.gz').write_bytes(zf.read(member))
    assert evaluate_main(['--pred', str(pred), '--data', str(out), '--split', 'val',
                          '--out', str(tmp_path / 'm.csv'), '--bootstrap', '0']) == 0
    err = capsys.readouterr().err
    if len(val) > 1:
        assert f'{len(val) - 1} labelled case(s) of split val have no prediction' in err
    assert evaluate_main(['--pred', str(pred), '--data', str(out), '--split', 'nope',
                          '--out', str(tmp_path / 'm2.csv')]) == 1
    assert "no split 'nope'" in capsys.readouterr().err
    assert not (tmp_path / 'm2.csv').exists()


def test_crossmoda_label_names_and_the_crossmoda_protocol(tmp_path, reference):
    medpy = reference('medpy.metric.binary')
    raw = write_crossmoda_release(tmp_path / 'download', naming='2021', num_source=4, num_target=1, num_val=1,
                                  size=40, num_slices=5)
    out = tmp_path / 'prepared'
    prepare(CONVERTERS['crossmoda'](crop=24, val_fraction=0.5), raw, out, workers=1, previews=0)
    pred = tmp_path / 'pred'
    pred.mkdir()
    folder = raw / 'crossmoda_training' / 'source_training'
    for path in folder.glob('*_Label.nii.gz'):
        image = nib.load(str(path))
        labels = np.rint(np.asanyarray(image.dataobj)).astype(np.uint8)
        nib.save(nib.Nifti1Image(np.roll(labels, 1, axis=0), image.affine), str(pred / path.name))
    csv_path = tmp_path / 'metrics.csv'
    assert evaluate_main(['--pred', str(pred), '--data', str(out), '--out', str(csv_path),
                          '--protocol', 'crossmoda', '--bootstrap', '0']) == 0
    rows = _rows(csv_path)
    assert {r['case'] for r in rows} == {p.name[:-len('_Label.nii.gz')] for p in folder.glob('*_Label.nii.gz')}
    for r in rows:
        image = nib.load(str(folder / f'{r["case"]}_Label.nii.gz'))
        gt = np.rint(np.asanyarray(image.dataobj)).astype(np.uint8) == int(r['class'])
        p = np.roll(gt, 1, axis=0)
        spacing = [abs(image.affine[k, k]) for k in range(3)]
        assert float(r['dice']) == medpy.dc(p, gt)
        assert float(r['assd']) == pytest.approx(medpy.assd(p, gt, voxelspacing=spacing), rel=1e-12)


def test_split_needs_data(tmp_path, capsys):
    assert evaluate_main(['--pred', str(tmp_path), '--gt', str(tmp_path), '--split', 'val',
                          '--out', str(tmp_path / 'm.csv')]) == 1
    assert '--split: needs --data' in capsys.readouterr().err


@pytest.fixture(scope='module')
def covid19(tmp_path_factory):
    """A synthetic COVID-19-CT-Seg release prepared with the default label store (``--subtask all``)."""
    from mmseg_medical.synthetic.covid19 import write_covid19_release

    root = tmp_path_factory.mktemp('covid19_eval')
    raw = write_covid19_release(root / 'raw', 'zenodo', num_slices=3, size=24)
    out = root / 'prepared'
    prepare(CONVERTERS['covid19'](), raw, out, workers=1, previews=0)
    return raw, out


#: subtask → (class names by hand, the prediction of a case made by hand from the release's own masks: the joint
#: mask as it is, the lung mask (the joint mask hides the lung under infection), infection = joint label 3).
COVID_SUBTASKS = {
    'lung_infection': (('left_lung', 'right_lung', 'infection'), lambda masks: masks['Lung_and_Infection_Mask']),
    'lung': (('left_lung', 'right_lung'), lambda masks: masks['Lung_Mask']),
    'infection': (('infection',), lambda masks: (masks['Lung_and_Infection_Mask'] == 3).astype(np.uint8)),
}


@pytest.mark.parametrize('subtask', sorted(COVID_SUBTASKS))
@pytest.mark.parametrize('named', [False, True])
def test_covid19_label_store_read_as_the_predictions_subtask(covid19, subtask, named, tmp_path, capsys):
    """The release's own masks as predictions of each subtask score Dice and NSD 1 for every class of that
    subtask, whether the subtask is read off the predicted labels or named with --subtask; a prediction of a
    training case (no case of the split) is named in one warning line and not scored."""
    raw, out = covid19
    test_cases = (out / 'splits' / 'task1_fold0_test.txt').read_text().split()
    test_cases = sorted({stem.rsplit('_', 1)[0] for stem in test_cases})
    assert len(test_cases) == 16
    names, by_hand = COVID_SUBTASKS[subtask]
    pred = tmp_path / 'pred'
    pred.mkdir()
    train_case = json.loads((out / 'splits.json').read_text())['task1_fold0_train'][0]
    for case in test_cases + [train_case]:
        masks = {}
        for folder in ('Lung_Mask', 'Lung_and_Infection_Mask'):
            image = nib.load(str(raw / folder / f'{case}.nii.gz'))
            masks[folder] = np.rint(np.asanyarray(image.dataobj)).astype(np.uint8)
        nib.save(nib.Nifti1Image(by_hand(masks), image.affine, image.header), str(pred / f'{case}.nii.gz'))
    csv_path = tmp_path / 'metrics.csv'
    argv = ['--pred', str(pred), '--data', str(out), '--split', 'task1_fold0_test', '--protocol', 'covid19',
            '--out', str(csv_path), '--bootstrap', '0'] + (['--subtask', subtask] if named else [])
    assert evaluate_main(argv) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if 'match no case' in line]
    assert len(warnings) == 1 and f'{train_case}.nii.gz' in warnings[0]
    assert f'scoring subtask {subtask} ' in captured.err
    rows = _rows(csv_path)
    assert {r['case'] for r in rows} == set(test_cases)
    assert sorted({int(r['class']) for r in rows}) == list(range(1, len(names) + 1))
    for r in rows:
        assert (float(r['dice']), float(r['nsd'])) == (1.0, 1.0), (r['case'], r['class'])
    for i, name in enumerate(names, start=1):
        assert f'{i} ({name})' in captured.out


def test_covid19_subtask_errors(covid19, tmp_path, capsys):
    raw, out = covid19
    pred = tmp_path / 'pred'
    pred.mkdir()
    case = (out / 'splits' / 'task1_fold0_test.txt').read_text().split()[0].rsplit('_', 1)[0]
    image = nib.load(str(raw / 'Lung_and_Infection_Mask' / f'{case}.nii.gz'))
    joint = np.rint(np.asanyarray(image.dataobj)).astype(np.uint8)
    nib.save(nib.Nifti1Image(joint, image.affine, image.header), str(pred / f'{case}.nii.gz'))
    base = ['--pred', str(pred), '--data', str(out), '--split', 'task1_fold0_test', '--protocol', 'covid19',
            '--bootstrap', '0']
    # labels 0..3 are no lung-model prediction (classes 0..2)
    assert evaluate_main(base + ['--out', str(tmp_path / 'a.csv'), '--subtask', 'lung']) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f'error: {pred / case}.nii.gz: holds label 3') and "'lung'" in err
    assert evaluate_main(base + ['--out', str(tmp_path / 'b.csv'), '--subtask', 'nope']) == 1
    assert "--subtask: " in capsys.readouterr().err
    joint[joint == 3] = 5     # a store code no subtask has as a class
    nib.save(nib.Nifti1Image(joint, image.affine, image.header), str(pred / f'{case}.nii.gz'))
    assert evaluate_main(base + ['--out', str(tmp_path / 'c.csv')]) == 1
    assert 'holds label 5, more than any subtask' in capsys.readouterr().err
    assert not any(tmp_path.glob('*.csv'))


def test_subtask_needs_a_label_store(hemseg, tmp_path, capsys):
    raw, out = hemseg
    assert evaluate_main(['--pred', str(tmp_path), '--data', str(out), '--subtask', 'lung',
                          '--out', str(tmp_path / 'm.csv')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: --subtask: ') and 'has no label store' in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'm.csv').exists()


def test_a_split_without_labels_says_so(tmp_path, capsys):
    raw = write_crossmoda_release(tmp_path / 'download', naming='2021', num_source=2, num_target=2, num_val=0,
                                  size=24, num_slices=3)
    out = tmp_path / 'prepared'
    prepare(CONVERTERS['crossmoda'](), raw, out, workers=1, previews=0)
    target = json.loads((out / 'splits.json').read_text())['target']
    pred = tmp_path / 'pred'
    pred.mkdir()
    image = nib.load(str(next((raw / 'crossmoda_training' / 'target_training').glob('*_hrT2.nii.gz'))))
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), str(pred / f'{target[0]}.nii.gz'))
    assert evaluate_main(['--pred', str(pred), '--data', str(out), '--split', 'target',
                          '--out', str(tmp_path / 'm.csv')]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'split target has no labelled case' in err
    assert 'no prediction for any labelled case' not in err
