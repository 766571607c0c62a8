"""Cranium's whole release: the diagnosis CSV against a hand-written one, the bone window against HU
windowed by hand and against the release's bone JPGs, and the subtype-stratified splits as properties."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.conversion.cranium import RELEASE, merge_rare_strata, patient_stratum, read_diagnosis_csv
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic import write_cranium_release

PATIENTS, SLICES, SIZE = 30, 6, 32

#: Written by hand as the real file is stored: UTF-8 byte-order mark, CRLF line ends.
HAND_CSV = ('\ufeffPatientNumber,SliceNumber,Intraventricular,Intraparenchymal,Subarachnoid,Epidural,Subdural,'
            'No_Hemorrhage,Fracture_Yes_No\r\n'
            '49,1,0,0,0,0,0,1,0\r\n'
            '49,2,0,1,0,0,1,0,1\r\n'
            '50,1,1,0,0,0,0,0,0\r\n')


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('raw')
    # every 6th patient does not bleed: one of each subtype index, so each stratum has 5 or more patients
    write_cranium_release(root, num_patients=PATIENTS, num_slices=SLICES, size=SIZE, seed=3, no_bleed_every=6)
    return root


def _flags(**ones):
    flags = dict.fromkeys(('Intraventricular', 'Intraparenchymal', 'Subarachnoid', 'Epidural', 'Subdural',
                           'No_Hemorrhage', 'Fracture_Yes_No'), 0)
    flags.update(ones)
    return flags


def test_diagnosis_csv_read_as_written_by_hand(tmp_path):
    path = tmp_path / 'hemorrhage_diagnosis.csv'
    path.write_bytes(HAND_CSV.encode('utf-8'))
    assert read_diagnosis_csv(path) == {
        49: {1: _flags(No_Hemorrhage=1), 2: _flags(Intraparenchymal=1, Subdural=1, Fracture_Yes_No=1)},
        50: {1: _flags(Intraventricular=1)}}
    # the stratum: most flagged subtype, ties by the CSV's column order
    assert patient_stratum({1: _flags(No_Hemorrhage=1)}) == 'none'
    assert patient_stratum({1: _flags(Subdural=1), 2: _flags(Subdural=1, Epidural=1)}) == 'Subdural'
    assert patient_stratum({1: _flags(Subdural=1, Epidural=1)}) == 'Epidural'
    assert merge_rare_strata({'a': 'Epidural', 'b': 'Epidural', 'c': 'none', 'd': 'Subdural'}, 2) == {
        'a': 'Epidural', 'b': 'Epidural', 'c': 'none', 'd': 'hemorrhage'}


@pytest.mark.parametrize('text, problem', [
    (HAND_CSV.replace(',Subdural,', ','), 'lacks column(s) Subdural'),
    (HAND_CSV.replace('50,1,1,', '50,1,2,'), 'line 4: Intraventricular must be 0 or 1, got 2'),
    (HAND_CSV + '50,1,0,0,0,0,0,1,0\r\n', 'line 5: patient 50 slice 1 listed twice'),
    (HAND_CSV.replace('49,2,', '49,x,'), 'line 3: expected whole numbers'),
])
def test_bad_diagnosis_csv_is_one_error_naming_file_and_line(tmp_path, text, problem):
    path = tmp_path / 'hemorrhage_diagnosis.csv'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(MedSegError, match=None) as exc:
        read_diagnosis_csv(path)
    assert str(exc.value.path) == str(path) and problem in exc.value.problem


def _bone_by_hand(hu: np.ndarray) -> np.ndarray:
    """Level 700 / width 3200 written out: [-900, 2300] HU -> [0, 255]."""
    return np.clip(np.rint((hu.astype(np.float64) + 900.0) * 255.0 / 3200.0), 0, 255).astype(np.uint8)


def test_nifti_bone_window_is_channel_1_computed_from_hu(release, tmp_path):
    import nibabel as nib

    out = tmp_path / 'out'
    prepare(CONVERTERS['cranium'](layout='nifti', window='ctich-brain,ctich-bone'), release, out, workers=1,
            previews=0)
    hu = np.asanyarray(nib.load(str(release / 'Cranium' / RELEASE / 'ct_scans' / '050.nii')).dataobj)
    display = hu.transpose(2, 1, 0)[:, ::-1, ::-1]   # RAS storage -> display (rows A->P, columns R->L)
    for k in range(SLICES):
        png = cv2.imread(str(out / 'images' / f'050_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        assert png.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(png[..., 1], _bone_by_hand(display[k]))
        brain = np.clip(np.rint((display[k].astype(np.float64) + 20.0) * 255.0 / 120.0), 0, 255)
        np.testing.assert_array_equal(png[..., 0], brain)
        assert not png[..., 2].any()
    assert json.loads((out / 'dataset.json').read_text())['settings']['window'] == 'ctich-brain,ctich-bone'


def test_jpg_bone_window_reads_the_bone_jpgs(release, tmp_path):
    jpgs = release / 'Cranium' / RELEASE / 'Patients_CT' / '051'
    out = tmp_path / 'bone'
    prepare(CONVERTERS['cranium'](layout='jpg', window='ctich-bone'), release, out, workers=1, previews=0)
    two = tmp_path / 'two'
    prepare(CONVERTERS['cranium'](layout='jpg', window='ctich-brain,ctich-bone'), release, two, workers=1, previews=0)
    for k in range(SLICES):
        bone = cv2.imread(str(jpgs / 'bone' / f'{k + 1}.jpg'), cv2.IMREAD_GRAYSCALE)
        brain = cv2.imread(str(jpgs / 'brain' / f'{k + 1}.jpg'), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(cv2.imread(str(out / 'images' / f'051_{k:04d}.png'), cv2.IMREAD_UNCHANGED), bone)
        png = cv2.imread(str(two / 'images' / f'051_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png[..., 0], brain)
        np.testing.assert_array_equal(png[..., 1], bone)
        assert not png[..., 2].any()


def test_jpg_layout_refuses_a_window_it_does_not_have(release, tmp_path, capsys):
    code = prepare_main(['cranium', '--src', str(release), '--out', str(tmp_path / 'o'), '--layout', 'jpg',
                         '--window', 'subdural', '--workers', '1'])
    assert code == 1 and 'the JPG layout has only the windows ctich-brain, ctich-bone' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        prepare_main(['cranium', '--src', str(release), '--out', str(tmp_path / 'o'), '--window', 'a,b,c'])
    assert exc.value.code == 2


def _csv_strata(release: Path) -> dict:
    """Each patient's main subtype, counted from the CSV with plain string handling (not the converter)."""
    lines = (release / 'Cranium' / RELEASE / 'hemorrhage_diagnosis.csv').read_text(encoding='utf-8-sig').split()
    header = lines[0].split(',')
    counts: dict = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(',')))
        c = counts.setdefault(f'{int(row["PatientNumber"]):03d}', Counter())
        c.update(t for t in header[2:7] if row[t] == '1')
    return {p: (max(header[2:7], key=lambda t: (c[t], -header.index(t))) if c else 'none') for p, c in counts.items()}


@pytest.mark.parametrize('layout', ['jpg', 'nifti'])
def test_splits_are_stratified_by_patient_subtype(release, tmp_path, layout):
    """Properties: every fold's val holds each subtype stratum's patients evenly (counts differ by at most
    one between folds), the hold-out val holds each stratum in proportion (within one patient)."""
    out = tmp_path / 'out'
    prepare(CONVERTERS['cranium'](layout=layout, folds=5), release, out, workers=1, previews=0)
    strata = _csv_strata(release)
    counts = Counter(strata.values())
    assert min(counts.values()) >= 5 and len(counts) == 6, counts   # none merged: each fills 5 folds
    lists = json.loads((out / 'splits.json').read_text())
    for stratum, n in counts.items():
        per_fold = [sum(strata[c] == stratum for c in lists[f'fold{k}_val']) for k in range(5)]
        assert sum(per_fold) == n and max(per_fold) - min(per_fold) <= 1, (stratum, per_fold)
        in_val = sum(strata[c] == stratum for c in lists['val'])
        assert abs(in_val - 0.2 * n) <= 1, (stratum, in_val, n)
    card = json.loads((out / 'dataset.json').read_text())
    assert card['split_strata']['patients'] == dict(sorted(counts.items()))
    assert card['slice_flags']['subtypes'] == ['Intraventricular', 'Intraparenchymal', 'Subarachnoid', 'Epidural',
                                               'Subdural']


def test_without_the_csv_one_warning_and_no_flag_columns(release, tmp_path, capsys):
    src = tmp_path / 'src'
    shutil.copytree(release, src)
    (src / 'Cranium' / RELEASE / 'hemorrhage_diagnosis.csv').unlink()
    out = tmp_path / 'out'
    prepare(CONVERTERS['cranium'](layout='nifti'), src, out, workers=1, previews=0)
    assert capsys.readouterr().err.count('hemorrhage_diagnosis.csv not found') == 1
    assert all(r.extra == () for r in read_manifest(out))
    assert json.loads((out / 'dataset.json').read_text())['slice_flags'] is None


def test_csv_missing_a_slice_is_one_error(release, tmp_path, capsys):
    src = tmp_path / 'src'
    shutil.copytree(release, src)
    path = src / 'Cranium' / RELEASE / 'hemorrhage_diagnosis.csv'
    lines = path.read_text(encoding='utf-8-sig').splitlines()
    path.write_text('\n'.join(l for l in lines if not l.startswith('52,3,')) + '\n', encoding='utf-8-sig')
    code = prepare_main(['cranium', '--src', str(src), '--out', str(tmp_path / 'o'), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and 'hemorrhage_diagnosis.csv: patient 052: no row for slice(s) [3]' in err
    assert not (tmp_path / 'o').exists()


def test_two_window_config_reads_brain_and_bone_channels(release, tmp_path):
    """The 2-window config's pipeline loads channel 0 = brain JPG, 1 = bone JPG of the same slice, as stored,
    and keeps them unmixed (no HSV jitter, no BGR->RGB swap)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / 'cranium-2w'
    prepare(CONVERTERS['cranium'](layout='jpg', window='ctich-brain,ctich-bone'), release, out, workers=1,
            previews=0)
    cfg = Config.fromfile(str(repo / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-2w-512x512.py'))
    assert cfg.train_dataloader.dataset.data_root == 'data/cranium-2w/'
    assert cfg.model.data_preprocessor.bgr_to_rgb is False
    assert [t['type'] for t in cfg.train_pipeline] == ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip',
                                                       'PackSegInputs']
    init_default_scope('mmseg')
    ds = DATASETS.build({**cfg.val_dataloader.dataset, 'data_root': str(out) + '/'})
    item = ds[0]
    stem = Path(item['data_samples'].img_path).stem
    patient, k = stem.split('_')
    jpgs = release / 'Cranium' / RELEASE / 'Patients_CT' / patient
    image = item['inputs'].numpy()
    brain = cv2.resize(cv2.imread(str(jpgs / 'brain' / f'{int(k) + 1}.jpg'), cv2.IMREAD_GRAYSCALE), (512, 512),
                       interpolation=cv2.INTER_LINEAR)
    bone = cv2.resize(cv2.imread(str(jpgs / 'bone' / f'{int(k) + 1}.jpg'), cv2.IMREAD_GRAYSCALE), (512, 512),
                      interpolation=cv2.INTER_LINEAR)
    assert image.shape == (3, 512, 512) and not image[2].any()
    assert np.abs(image[0].astype(int) - brain).max() <= 1 and np.abs(image[1].astype(int) - bone).max() <= 1


def test_resplit_with_more_folds_rewrites_the_strata_in_the_card(release, tmp_path):
    """Adding --folds 10 only re-splits; strata with fewer than 10 patients merge and dataset.json says so."""
    out = tmp_path / 'out'
    prepare(CONVERTERS['cranium'](layout='nifti'), release, out, workers=1, previews=0)
    before = json.loads((out / 'dataset.json').read_text())['split_strata']['patients']
    assert prepare(CONVERTERS['cranium'](layout='nifti', folds=10), release, out, workers=1, previews=0)['resplit']
    after = json.loads((out / 'dataset.json').read_text())['split_strata']['patients']
    small = {s: n for s, n in before.items() if s != 'none' and n < 10}
    assert small and after == {**{s: n for s, n in before.items() if s not in small},
                               'hemorrhage': sum(small.values())}
