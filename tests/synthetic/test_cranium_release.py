"""The synthetic CT-ICH release: exact folder/file names, formats and consistency of the two layouts."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.synthetic import RELEASE_DIR, cranium_has_hemorrhage, write_cranium_release
from mmseg_medical.synthetic.cli import main

PATIENTS, SLICES, SIZE, SEED = 4, 24, 128, 5
IDS = ['049', '050', '051', '052']


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('raw')
    return write_cranium_release(root, num_patients=PATIENTS, num_slices=SLICES, size=SIZE, seed=SEED)


def _gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _nifti(release: Path, kind: str, patient: str) -> nib.Nifti1Image:
    return nib.load(str(release / kind / f'{patient}.nii'))


def _slice_major(img: nib.Nifti1Image) -> np.ndarray:
    return np.asanyarray(img.dataobj).transpose(2, 1, 0)


def _display(release: Path, kind: str, patient: str) -> np.ndarray:
    """SimpleITK's reading of the NIfTI reoriented to LPS, as (z, y, x): the radiological display
    orientation the real release's JPGs are in (image top = anterior, image left = patient's right)."""
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(release / kind / f'{patient}.nii')), 'LPS'))


def _window_by_hand(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip(np.rint((hu.astype(np.float64) - (level - width / 2)) * 255 / width), 0, 255).astype(np.uint8)


def test_release_folder_and_top_level_names(release, tmp_path_factory):
    assert release.name == RELEASE_DIR
    assert release.parent.name == 'Cranium'
    assert sorted(p.name for p in release.iterdir()) == ['Patients_CT', 'ct_scans', 'hemorrhage_diagnosis.csv',
                                                        'masks']
    assert sorted(p.name for p in (release / 'Patients_CT').iterdir()) == IDS
    assert sorted(p.name for p in (release / 'ct_scans').iterdir()) == [f'{i}.nii' for i in IDS]
    assert sorted(p.name for p in (release / 'masks').iterdir()) == [f'{i}.nii' for i in IDS]


@pytest.mark.parametrize('patient', IDS)
def test_jpg_file_names_match_the_mask_slices(release, patient):
    folder = release / 'Patients_CT' / patient
    assert sorted(p.name for p in folder.iterdir()) == ['bone', 'brain']
    mask = _slice_major(_nifti(release, 'masks', patient))
    bleeding = [z + 1 for z in range(SLICES) if mask[z].any()]
    expected = {f'{n}.jpg' for n in range(1, SLICES + 1)}
    assert {p.name for p in (folder / 'bone').iterdir()} == expected
    assert {p.name for p in (folder / 'brain').iterdir()} == expected | {f'{n}_HGE_Seg.jpg' for n in bleeding}


def test_every_fourth_patient_has_no_hemorrhage(release):
    for index, patient in enumerate(IDS):
        mask = _slice_major(_nifti(release, 'masks', patient))
        assert bool(mask.any()) == cranium_has_hemorrhage(index) == (patient != '052')
    assert not list((release / 'Patients_CT' / '052' / 'brain').glob('*_HGE_Seg.jpg'))


def test_nifti_geometry_dtypes_and_content(release):
    """Geometry typed here, not taken from the generator: a 230 mm field of view over SIZE pixels (rounded to
    0.1 µm) and 5 mm slices, stored R,A,S with a diagonal affine; HU int16, masks 0/1 uint8, the masked voxels
    at bleed density (the phantom paints 60-85 HU, then adds noise of sigma <= 5.5 HU)."""
    pixel = round(230 / SIZE, 4)
    for index, patient in enumerate(IDS):
        ct, mask = _nifti(release, 'ct_scans', patient), _nifti(release, 'masks', patient)
        for img in (ct, mask):
            assert img.shape == (SIZE, SIZE, SLICES)
            np.testing.assert_allclose(img.affine, np.diag([pixel, pixel, 5.0, 1.0]), atol=1e-6)
            np.testing.assert_allclose(img.header.get_zooms()[:3], (pixel, pixel, 5.0), atol=1e-6)
            assert nib.aff2axcodes(img.affine) == ('R', 'A', 'S')
        assert ct.get_data_dtype() == np.int16 and mask.get_data_dtype() == np.uint8
        hu = np.asanyarray(ct.dataobj)
        labels = np.asanyarray(mask.dataobj)
        assert hu.min() >= -1024 and hu.max() > 500
        assert set(np.unique(labels)) <= {0, 1}
        assert labels.any() == ((index + 1) % 4 != 0)           # every 4th patient has no bleed (the default)
        if labels.any():
            bleed = hu[labels == 1]
            assert 60 - 25 <= bleed.min() and bleed.max() <= 85 + 25 and 55 <= np.median(bleed) <= 90


@pytest.mark.parametrize('patient', IDS)
def test_brain_and_bone_jpgs_are_display_frames_at_the_export_windows(release, patient):
    """Release facts (NOTES.md): brain 40/120 and bone 700/3200 frames in display orientation."""
    hu = _display(release, 'ct_scans', patient)
    folder = release / 'Patients_CT' / patient
    for z in range(SLICES):
        brain, bone = _gray(folder / 'brain' / f'{z + 1}.jpg'), _gray(folder / 'bone' / f'{z + 1}.jpg')
        assert brain.shape == bone.shape == (SIZE, SIZE) and brain.dtype == np.uint8
        brain_diff = np.abs(brain.astype(int) - _window_by_hand(hu[z], 40, 120))
        bone_diff = np.abs(bone.astype(int) - _window_by_hand(hu[z], 700, 3200))
        assert brain_diff.mean() < 3 and bone_diff.mean() < 2, f'slice {z + 1}'
        # not the stored (RAS) orientation: the phantom is not left-right / front-back symmetric
        stored = _window_by_hand(_slice_major(_nifti(release, 'ct_scans', patient))[z], 40, 120)
        if z == SLICES // 2:
            assert np.abs(brain.astype(int) - stored).mean() > 3 * brain_diff.mean()
    # the order is right: slice n is not its neighbour
    middle = _window_by_hand(hu[SLICES // 2], 40, 120).astype(int)
    same = np.abs(_gray(folder / 'brain' / f'{SLICES // 2 + 1}.jpg').astype(int) - middle).mean()
    neighbour = np.abs(_gray(folder / 'brain' / f'{SLICES // 2 + 2}.jpg').astype(int) - middle).mean()
    assert neighbour > 2 * same


def test_jpeg_masks_have_artefacts_but_threshold_to_the_label(release):
    inter, overlap, total = 0, 0, 0
    for patient in IDS:
        mask = _display(release, 'masks', patient)
        for z in np.flatnonzero(mask.any(axis=(1, 2))):
            jpeg = _gray(release / 'Patients_CT' / patient / 'brain' / f'{z + 1}_HGE_Seg.jpg')
            assert jpeg.shape == (SIZE, SIZE)
            assert not np.isin(jpeg, [0, 255]).all()  # real JPEG noise, not a clean 0/255 mask
            inter += int(((jpeg > 0) & (jpeg < 255)).sum())
            predicted = jpeg > 127
            overlap += int((predicted & (mask[z] == 1)).sum())
            total += int(predicted.sum() + mask[z].sum())
    assert inter > 0
    assert 2 * overlap / total > 0.95


#: ../shared/NOTES.md: the real header; the file starts with a UTF-8 byte-order mark.
REAL_HEADER = ('PatientNumber,SliceNumber,Intraventricular,Intraparenchymal,Subarachnoid,Epidural,Subdural,'
               'No_Hemorrhage,Fracture_Yes_No')
#: The subtype of patients 049..052 (the writer cycles the five by index; 052 does not bleed).
SUBTYPE = {'049': 'Intraventricular', '050': 'Intraparenchymal', '051': 'Subarachnoid', '052': None}


def test_csv_rows_match_the_masks(release):
    raw = (release / 'hemorrhage_diagnosis.csv').read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf' + REAL_HEADER.encode() + b'\r\n')
    with open(release / 'hemorrhage_diagnosis.csv', newline='', encoding='utf-8-sig') as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ['PatientNumber', 'SliceNumber', 'Intraventricular', 'Intraparenchymal',
                                     'Subarachnoid', 'Epidural', 'Subdural', 'No_Hemorrhage', 'Fracture_Yes_No']
        rows = list(reader)
    assert len(rows) == PATIENTS * SLICES
    subtypes = REAL_HEADER.split(',')[2:7]
    for patient in IDS:
        mask = _slice_major(_nifti(release, 'masks', patient))
        mine = [r for r in rows if r['PatientNumber'] == str(int(patient))]
        assert [int(r['SliceNumber']) for r in mine] == list(range(1, SLICES + 1))
        first = next((z for z in range(SLICES) if mask[z].any()), None)
        for z, (row, slice_mask) in enumerate(zip(mine, mask)):
            bleeds = int(slice_mask.any())
            flagged = {t for t in subtypes if row[t] == '1'}
            expected = {SUBTYPE[patient]} if bleeds else set()
            if patient == '049' and z == first:   # patient 0: a mixed bleed on its first bleeding slice
                expected.add('Intraparenchymal')
            assert flagged == expected and int(row['No_Hemorrhage']) == 1 - bleeds
            assert row['Fracture_Yes_No'] == '0'


def test_same_seed_same_patients_regardless_of_count(release, tmp_path):
    again = write_cranium_release(tmp_path / 'a', num_patients=2, num_slices=SLICES, size=SIZE, seed=SEED,
                                  layouts=('nifti',))
    for patient in IDS[:2]:
        assert (again / 'ct_scans' / f'{patient}.nii').read_bytes() == \
            (release / 'ct_scans' / f'{patient}.nii').read_bytes()
    other = write_cranium_release(tmp_path / 'b', num_patients=1, num_slices=SLICES, size=SIZE, seed=SEED + 1,
                                  layouts='nifti')
    assert (other / 'ct_scans' / '049.nii').read_bytes() != (release / 'ct_scans' / '049.nii').read_bytes()


def test_layout_selection_and_nesting(tmp_path):
    jpg_only = write_cranium_release(tmp_path / 'j', num_patients=1, num_slices=6, size=64, layouts=['jpg'],
                                     nest=None)
    assert jpg_only == tmp_path / 'j' / RELEASE_DIR
    assert sorted(p.name for p in jpg_only.iterdir()) == ['Patients_CT', 'hemorrhage_diagnosis.csv']
    nifti_only = write_cranium_release(tmp_path / 'n', num_patients=1, num_slices=6, size=64, layouts='nifti',
                                       nest='deeper')
    assert nifti_only == tmp_path / 'n' / 'deeper' / RELEASE_DIR
    assert sorted(p.name for p in nifti_only.iterdir()) == ['ct_scans', 'hemorrhage_diagnosis.csv', 'masks']
    with pytest.raises(ValueError, match='unknown layout'):
        write_cranium_release(tmp_path / 'x', layouts=('jpg', 'png'))
    with pytest.raises(ValueError):
        write_cranium_release(tmp_path / 'x', num_patients=0)


def test_cli_writes_and_reports(tmp_path, capsys):
    assert main(['cranium', '--out', str(tmp_path), '--patients', '2', '--slices', '6', '--size', '64',
                 '--layouts', 'nifti', '--seed', '3']) == 0
    release = tmp_path / 'Cranium' / RELEASE_DIR
    assert str(release) in capsys.readouterr().out
    assert sorted(p.name for p in (release / 'ct_scans').iterdir()) == ['049.nii', '050.nii']
    assert main(['cranium', '--out', str(tmp_path), '--layouts', 'jpg,gif']) == 2
    assert 'unknown layout' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['lungs', '--out', str(tmp_path)])


def test_tool_script_runs(tmp_path, repo_root):
    result = subprocess.run([sys.executable, str(repo_root / 'tools' / 'generate_synthetic.py'), 'cranium',
                             '--out', str(tmp_path), '--patients', '1', '--slices', '4', '--size', '64',
                             '--layouts', 'jpg'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert RELEASE_DIR in result.stdout
    assert (tmp_path / 'Cranium' / RELEASE_DIR / 'Patients_CT' / '049' / 'brain' / '4.jpg').is_file()
