"""``tools/evaluate_volumes.py`` / ``mmseg_medical.evaluation.cli.main`` on tiny NIfTI files."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.evaluation.cli import main

COLUMNS = ['case', 'class', 'dice', 'iou', 'nsd', 'hd95', 'assd', 'empty']
ZOOMS = (0.8, 0.8, 2.5)
AFFINE = np.diag([*ZOOMS, 1.0])


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE, dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(path))
    return path


def make_cases(tmp_path: Path):
    """Two cases; case_b has no class 2 anywhere and a spurious class 3 in the prediction."""
    gt_a = np.zeros((16, 14, 6), np.uint8)
    gt_a[3:9, 3:9, 1:4] = 1
    gt_a[10:14, 9:13, 2:5] = 2
    pred_a = np.zeros_like(gt_a)
    pred_a[4:10, 3:9, 1:4] = 1
    pred_a[10:14, 9:12, 2:5] = 2
    gt_b = np.zeros_like(gt_a)
    gt_b[5:11, 5:10, 1:5] = 1
    pred_b = np.zeros_like(gt_a)
    pred_b[5:11, 5:10, 1:5] = 1
    pred_b[0:2, 0:2, 0:2] = 3
    save(tmp_path / 'gt' / 'case_a.nii.gz', gt_a)
    save(tmp_path / 'gt' / 'case_b.nii', gt_b)
    save(tmp_path / 'pred' / 'case_a.nii.gz', pred_a)
    save(tmp_path / 'pred' / 'case_b.nii.gz', pred_b, dtype=np.float32)  # whole-valued floats are fine
    return {'case_a': (gt_a, pred_a), 'case_b': (gt_b, pred_b)}


def read_csv(path: Path):
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, row)) for row in reader]


def args(tmp_path: Path, out: Path, *extra: str):
    return ['--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'gt'), '--out', str(out), *extra]


def test_happy_path_writes_csv_and_summary(tmp_path, capsys):
    """Values counted by hand on make_cases (spacing 0.8 x 0.8 x 2.5 mm, stored as float32 zooms).

    case_a class 1: GT 6x6x3 = 108 voxels, prediction the same box one voxel further along axis 0:
    overlap 5x6x3 = 90 -> Dice 180/216, IoU 90/126. Class 2: GT 4x4x3 = 48, prediction its first 4x3x3 = 36
    -> Dice 72/84, IoU 36/48. Both predictions differ from the GT by one 0.8 mm voxel layer, so every surface
    distance is 0 or 0.8 mm, and more than 5% of the surface (a whole 36 mm^2 face of 190) is at 0.8 mm:
    NSD = 1 at 1 mm and 3 mm, HD95 = 0.8 mm, 0 < ASSD < 0.8 mm. case_b: class 1 identical, class 2 in neither.
    """
    make_cases(tmp_path)
    out = tmp_path / 'results' / 'metrics.csv'
    assert main(args(tmp_path, out, '--nsd-tolerance', '1:1.0,2:3.0', '--bootstrap', '200')) == 0
    header, rows = read_csv(out)
    assert header == COLUMNS
    # default classes: non-zero labels of any GT (1, 2); the prediction-only label 3 is not a class
    assert [(r['case'], r['class']) for r in rows] == [('case_a', '1'), ('case_a', '2'), ('case_b', '1'),
                                                       ('case_b', '2')]
    a1, a2, b1, b2 = ({k: float(v) for k, v in r.items() if k not in ('case', 'class', 'empty')} for r in rows)
    voxel = float(np.float32(0.8))
    assert a1['dice'] == pytest.approx(180 / 216, rel=1e-12) and a1['iou'] == pytest.approx(90 / 126, rel=1e-12)
    assert a2['dice'] == pytest.approx(72 / 84, rel=1e-12) and a2['iou'] == pytest.approx(36 / 48, rel=1e-12)
    for r in (a1, a2):
        assert r['nsd'] == 1.0 and r['hd95'] == pytest.approx(voxel, rel=1e-9) and 0 < r['assd'] < voxel
    assert (b1['dice'], b1['iou'], b1['nsd'], b1['hd95'], b1['assd']) == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert (b2['dice'], b2['iou'], b2['nsd'], b2['hd95'], b2['assd']) == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert [r['empty'] for r in rows] == ['', '', '', 'both_empty']

    summary_md = out.with_name('metrics_summary.md')
    text = summary_md.read_text()
    assert '| class | n | dice |' in text and '1: 1, 2: 3' in text
    # class 1 mean Dice (180/216 + 1) / 2, printed with 4 decimals; one both_empty case for class 2
    line1 = next(ln for ln in text.splitlines() if ln.startswith('| 1 | 2 | '))
    assert line1.split(' | ')[2].startswith(f'{(180 / 216 + 1) / 2:.4f} ± ')
    line2 = next(ln for ln in text.splitlines() if ln.startswith('| 2 | 2 | '))
    assert line2.endswith('| 1 | 0 | 0 |')
    printed = capsys.readouterr().out
    assert '| class | n | dice |' in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ['metrics.csv', 'metrics_summary.md']


def test_bootstrap_zero_writes_no_ci(tmp_path):
    make_cases(tmp_path)
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out, '--bootstrap', '0')) == 0
    text = out.with_name('metrics_summary.md').read_text()
    assert 'no bootstrap CI' in text
    line1 = next(ln for ln in text.splitlines() if ln.startswith('| 1 | 2 | '))
    assert '[' not in line1 and line1.split(' | ')[2].startswith(f'{(180 / 216 + 1) / 2:.4f} ± ')


def test_explicit_classes_and_bootstrap_seed(tmp_path):
    make_cases(tmp_path)
    out1, out2 = tmp_path / 'a.csv', tmp_path / 'b.csv'
    assert main(args(tmp_path, out1, '--classes', '2,3', '--seed', '3', '--bootstrap', '100')) == 0
    assert main(args(tmp_path, out2, '--classes', '2,3', '--seed', '3', '--bootstrap', '100')) == 0
    _, rows = read_csv(out1)
    assert {(r['case'], r['class']): r['empty'] for r in rows} == {
        ('case_a', '2'): '', ('case_a', '3'): 'both_empty', ('case_b', '2'): 'both_empty',
        ('case_b', '3'): 'gt_empty'}
    assert (tmp_path / 'a_summary.md').read_text().split('\n', 2)[2] == \
        (tmp_path / 'b_summary.md').read_text().split('\n', 2)[2]


def assert_failed(capsys, out: Path, *fragments: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    for fragment in fragments:
        assert fragment in err[0]
    assert not out.exists()
    assert not any(p.name.endswith('.tmp') for p in out.parent.iterdir())


def test_mismatched_shape(tmp_path, capsys):
    make_cases(tmp_path)
    bad = save(tmp_path / 'pred' / 'case_b.nii.gz', np.zeros((16, 14, 5), np.uint8))
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out)) == 1
    assert_failed(capsys, out, str(bad), '(16, 14, 5)', '(16, 14, 6)')


def test_mismatched_affine(tmp_path, capsys):
    cases = make_cases(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    bad = save(tmp_path / 'pred' / 'case_a.nii.gz', cases['case_a'][1], affine=shifted)
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out)) == 1
    assert_failed(capsys, out, str(bad), 'affine')


def test_missing_prediction(tmp_path, capsys):
    make_cases(tmp_path)
    (tmp_path / 'pred' / 'case_b.nii.gz').unlink()
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out)) == 1
    assert_failed(capsys, out, str(tmp_path / 'gt' / 'case_b.nii'), 'no prediction')


def test_extra_prediction(tmp_path, capsys):
    cases = make_cases(tmp_path)
    extra = save(tmp_path / 'pred' / 'case_c.nii.gz', cases['case_a'][1])
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out)) == 1
    assert_failed(capsys, out, str(extra), 'no ground truth')


def test_non_whole_labels_rejected(tmp_path, capsys):
    cases = make_cases(tmp_path)
    bad = save(tmp_path / 'pred' / 'case_a.nii.gz', cases['case_a'][1] * 0.5, dtype=np.float32)
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out)) == 1
    assert_failed(capsys, out, str(bad), 'whole numbers', '0.5')


def test_missing_tolerance_for_a_class(tmp_path, capsys):
    make_cases(tmp_path)
    out = tmp_path / 'metrics.csv'
    assert main(args(tmp_path, out, '--nsd-tolerance', '1:2.0')) == 1
    assert_failed(capsys, out, '--nsd-tolerance', '[2]')


def test_script_runs_as_subprocess(tmp_path, repo_root):
    make_cases(tmp_path)
    out = tmp_path / 'metrics.csv'
    proc = subprocess.run([sys.executable, str(repo_root / 'tools' / 'evaluate_volumes.py'),
                           *args(tmp_path, out, '--bootstrap', '50')], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert read_csv(out)[0] == COLUMNS
    assert '| class | n |' in proc.stdout

    (tmp_path / 'pred' / 'case_a.nii.gz').unlink()
    out2 = tmp_path / 'other.csv'
    proc = subprocess.run([sys.executable, str(repo_root / 'tools' / 'evaluate_volumes.py'),
                           *args(tmp_path, out2)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'gt' / 'case_a.nii.gz'}: no prediction for case 'case_a' in {tmp_path / 'pred'}"]
    assert not out2.exists()
