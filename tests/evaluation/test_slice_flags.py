"""Per-subtype Dice in ``evaluate_volumes --data``: Cranium's hemorrhage_diagnosis.csv flags select the slices;
the table's numbers are recomputed here by hand from the release's own files (CSV read as text, masks with
nibabel), for predictions altered by known amounts."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.evaluation.cli import main as evaluate_main
from mmseg_medical.synthetic import write_cranium_release

SUBTYPES = ('Intraventricular', 'Intraparenchymal', 'Subarachnoid', 'Epidural', 'Subdural')


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('cranium_flags')
    write_cranium_release(root / 'raw', num_patients=8, num_slices=6, size=32, seed=2, layouts='nifti')
    out = root / 'prepared'
    prepare(CONVERTERS['cranium'](), root / 'raw', out, workers=1, previews=0)
    return root / 'raw' / 'Cranium' / RELEASE, out


def _csv_flags(release: Path) -> dict:
    """patient id → flag → [0/1 per slice], from the CSV as text."""
    lines = (release / 'hemorrhage_diagnosis.csv').read_bytes().decode('utf-8').lstrip('\ufeff').split()
    header = lines[0].split(',')
    out: dict = {}
    for line in lines[1:]:
        row = dict(zip(header, map(int, line.split(','))))
        flags = out.setdefault(f'{row["PatientNumber"]:03d}', {t: [] for t in SUBTYPES})
        for t in SUBTYPES:
            flags[t].append(row[t])   # rows are in SliceNumber order: slice k = SliceNumber k + 1
    return out


def _dice(p: np.ndarray, g: np.ndarray) -> float:
    return 1.0 if p.sum() + g.sum() == 0 else 2.0 * (p & g).sum() / (p.sum() + g.sum())


def test_per_subtype_dice_matches_a_hand_computation(prepared, tmp_path, capsys):
    release, out = prepared
    pred_dir = tmp_path / 'pred'
    pred_dir.mkdir()
    truth, preds = {}, {}
    for path in sorted((release / 'masks').glob('*.nii')):
        image = nib.load(str(path))
        g = np.asanyarray(image.dataobj) > 0
        p = g.copy()
        bleeding = np.flatnonzero(g.reshape(-1, g.shape[2]).any(axis=0))
        if len(bleeding) > 1:
            p[..., bleeding[0]] = False          # a missed slice
        p[0, 0, :] = True                        # a false positive voxel on every slice
        truth[path.stem], preds[path.stem] = g, p
        nib.save(nib.Nifti1Image(p.astype(np.uint8), image.affine), str(pred_dir / f'{path.stem}.nii.gz'))
    assert evaluate_main(['--data', str(out), '--pred', str(pred_dir), '--out', str(tmp_path / 'm.csv'),
                          '--bootstrap', '0']) == 0
    report = capsys.readouterr().out
    assert '## Per slice flag' in report
    table = {}
    for line in report.split('## Per slice flag')[1].splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if len(cells) == 6 and cells[2].isdigit():
            table[cells[0]] = (int(cells[2]), int(cells[3]), float(cells[4].split(' ± ')[0]), float(cells[5]))
    flags = _csv_flags(release)
    expected = {}
    for flag in (*SUBTYPES, 'any'):
        per_case, inter, total, slices = [], 0, 0, 0
        for case, f in flags.items():
            ks = [k for k in range(6) if (any(f[t][k] for t in SUBTYPES) if flag == 'any' else f[flag][k])]
            if not ks:
                continue
            p, g = preds[case][..., ks], truth[case][..., ks]
            per_case.append(_dice(p, g))
            inter, total, slices = inter + (p & g).sum(), total + p.sum() + g.sum(), slices + len(ks)
        if per_case:
            expected[flag] = (len(per_case), slices, round(float(np.mean(per_case)), 4), round(2 * inter / total, 4))
    assert set(table) == set(expected) and len(expected) >= 4
    for flag, (cases, slices, mean, pooled) in expected.items():
        assert table[flag][:2] == (cases, slices)
        assert table[flag][2] == pytest.approx(mean, abs=1e-4) and table[flag][3] == pytest.approx(pooled, abs=1e-4)
