"""``generate_synthetic.py hemseg``: the written release against the RSNA / HemSeg format facts of
../shared/NOTES.md (HemSeg) and ../shared/realdata/README.md, typed out below (not imported from the
generator); geometry against SimpleITK's series reader; the typed facts themselves against the real
files where ../shared/realdata is present."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.multival import MultiValue

from mmseg_medical.synthetic.cli import main

# --- format facts (NOTES.md HemSeg, realdata/README.md) -------------------------------------------------
DICOM_DIR = 'stage_2_train'                         # one flat folder of single-slice files
DICOM_NAME = re.compile(r'ID_[0-9a-f]{9}\.dcm')     # ID_<9 hex>.dcm
SCAN_ID = re.compile(r'[0-9a-f]{10}')               # scan_: 10 hex
PATIENT_ID = re.compile(r'ID_[0-9a-f]{8}')          # e.g. ID_c7097cd4
JSONL_200, KEYS_200 = 'annotion_file_info.jsonl', {'patient', 'scan_', 'slice_list'}          # list
JSONL_500, KEYS_500 = 'annotion_file_info_500.jsonl', {'patient_name', 'scan_name', 'slice_list'}  # object
LABEL_ZIP = 'IPH_IVH_label.zip'
MEMBER = re.compile(r'IPH_IVH_label/(train|val|test)/label/([0-9a-f]{10})\.nii\.gz')
CSV_NAMES, CSV_HEADER = ('train_set.csv', 'val_set.csv', 'test_set.csv'), ['filename', 'label']
LABEL_CODES = ('L', 'P', 'S')                       # int16 {0, 1}, size x size x len(slice_list)
RESCALE_INTERCEPT = -1024.0
TABLE_STEP_MM = 5.0     # untilted z spacing 5 mm; tilted 08154d6b7b: 5.39 mm along n, n_z 0.927 -> 5.0 in z
REAL_TILTED = '08154d6b7b'

SCANS, SLICES, SIZE, SEED = 6, 5, 48, 3


def _dcm(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')      # real RSNA files carry 'ID_…' in UI elements
        return pydicom.dcmread(str(path))


def _jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _series(dicom_dir: Path, files: List[Path]) -> sitk.Image:
    """SimpleITK's series reader on one scan's files (GDCM's IPP sort within the flat folder)."""
    uid = _dcm(files[0]).SeriesInstanceUID
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom_dir), str(uid)))
    return reader.Execute()


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('hemseg_release') / 'raw'
    assert main(['hemseg', '--out', str(out), '--scans', str(SCANS), '--slices', str(SLICES),
                 '--size', str(SIZE), '--seed', str(SEED)]) == 0
    return out


@pytest.fixture(scope='module')
def labels(release, tmp_path_factory) -> Dict[str, Path]:
    """scan -> its label extracted to a scratch folder (the zip itself is checked in the tests)."""
    scratch = tmp_path_factory.mktemp('labels')
    out = {}
    with zipfile.ZipFile(release / LABEL_ZIP) as zf:
        for member in zf.namelist():
            match = MEMBER.fullmatch(member)
            if match:
                out[match.group(2)] = scratch / f'{match.group(2)}.nii.gz'
                out[match.group(2)].write_bytes(zf.read(member))
    return out


def test_top_level_and_flat_dicom_folder(release):
    assert sorted(p.name for p in release.iterdir()) == sorted(
        [DICOM_DIR, JSONL_200, LABEL_ZIP, *CSV_NAMES])
    entries = list((release / DICOM_DIR).iterdir())
    assert all(p.is_file() and DICOM_NAME.fullmatch(p.name) for p in entries)
    listed = [s for line in _jsonl(release / JSONL_200) for s in line['slice_list']]
    assert len(listed) == len(set(listed)) == SCANS * SLICES        # every slice in exactly one scan
    assert sorted(f'ID_{s}.dcm' for s in listed) == sorted(p.name for p in entries)


def test_jsonl_200_and_csvs(release):
    lines = _jsonl(release / JSONL_200)
    assert len(lines) == SCANS
    for line in lines:
        assert set(line) == KEYS_200 and isinstance(line['slice_list'], list)
        assert SCAN_ID.fullmatch(line['scan_']) and PATIENT_ID.fullmatch(line['patient'])
        assert all(re.fullmatch(r'[0-9a-f]{9}', s) for s in line['slice_list'])
    assert len({line['scan_'] for line in lines}) == SCANS
    in_csv: List[str] = []
    for name in CSV_NAMES:
        with open(release / name, newline='') as f:
            rows = list(csv.reader(f))
        assert rows[0] == CSV_HEADER
        in_csv += [r[0] for r in rows[1:]]
    assert sorted(in_csv) == sorted(line['scan_'] for line in lines)


def test_names_and_lists_say_nothing_of_order(release):
    """Order comes from the geometry only: neither file names nor slice_list order follow it."""
    dicom_dir = release / DICOM_DIR
    by_name = by_list = 0
    for line in _jsonl(release / JSONL_200):
        files = [dicom_dir / f'ID_{s}.dcm' for s in line['slice_list']]
        ds = [_dcm(f) for f in files]
        iop = np.array(ds[0].ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        along = [float(np.dot(np.array(d.ImagePositionPatient, float), normal)) for d in ds]
        true_order = [files[i].name for i in np.argsort(along)]
        by_name += true_order == sorted(true_order)
        by_list += true_order == [f.name for f in files]
    assert by_name < SCANS and by_list < SCANS


def test_both_header_variants_and_hu(release):
    variants = set()
    for line in _jsonl(release / JSONL_200):
        for s in line['slice_list']:
            ds = _dcm(release / DICOM_DIR / f'ID_{s}.dcm')
            assert ds.PatientID == line['patient'] and ds.Modality == 'CT' and ds.BitsAllocated == 16
            assert float(ds.RescaleIntercept) == RESCALE_INTERCEPT and float(ds.RescaleSlope) == 1.0
            multi = isinstance(ds.WindowCenter, MultiValue)
            variants.add((int(ds.PixelRepresentation), int(ds.BitsStored), multi))
            if multi:
                assert isinstance(ds.WindowWidth, MultiValue) and len(ds.WindowCenter) == len(ds.WindowWidth) >= 2
            hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert -1100 <= hu.min() and hu.max() <= 3100 and (hu < -900).any()   # air around the head
            if ds.BitsStored == 12:
                assert 0 <= ds.pixel_array.min() and ds.pixel_array.max() < 4096
    assert variants == {(1, 16, False), (0, 12, True)}


def test_label_zip_members_and_geometry(release, labels):
    members = zipfile.ZipFile(release / LABEL_ZIP).namelist()
    assert all(MEMBER.fullmatch(m) for m in members), members
    lines = {line['scan_']: line for line in _jsonl(release / JSONL_200)}
    assert sorted(labels) == sorted(lines) and len(members) == len(lines)
    assert {MEMBER.fullmatch(m).group(1) for m in members} == {'train', 'val', 'test'}
    for scan, path in labels.items():
        img = nib.load(str(path))
        assert img.get_data_dtype() == np.int16 and nib.aff2axcodes(img.affine) == LABEL_CODES
        assert img.shape == (SIZE, SIZE, len(lines[scan]['slice_list']))
        assert set(np.unique(np.asanyarray(img.dataobj))) <= {0, 1}
        label = sitk.ReadImage(str(path))
        image = _series(release / DICOM_DIR, [release / DICOM_DIR / f'ID_{s}.dcm' for s in lines[scan]['slice_list']])
        assert label.GetSize() == image.GetSize()
        np.testing.assert_allclose(label.GetOrigin(), image.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(label.GetSpacing(), image.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(label.GetDirection(), image.GetDirection(), atol=1e-5)
    assert any(np.asanyarray(nib.load(str(p)).dataobj).any() for p in labels.values())


def test_official_split_shares_a_patient(release):
    """As in the real split (8 patients in two splits), at least one patient's scans straddle splits."""
    patient = {line['scan_']: line['patient'] for line in _jsonl(release / JSONL_200)}
    splits: Dict[str, set] = {}
    for m in zipfile.ZipFile(release / LABEL_ZIP).namelist():
        split, scan = MEMBER.fullmatch(m).groups()
        splits.setdefault(patient[scan], set()).add(split)
    assert any(len(s) > 1 for s in splits.values())


def test_tilted_series(release, labels):
    """Gantry tilt as the real 08154d6b7b: oblique column axis (0, cos t, -sin t), the label's third axis
    the slice normal, its z spacing the table step / cos t (5.39 mm for 5 mm steps at 22 degrees)."""
    tilted = 0
    for line in _jsonl(release / JSONL_200):
        ds = [_dcm(release / DICOM_DIR / f'ID_{s}.dcm') for s in line['slice_list']]
        iop = np.array(ds[0].ImageOrientationPatient, float)
        if abs(iop[5]) < 0.1:
            continue
        tilted += 1
        assert iop[3] == pytest.approx(0.0) and iop[4] ** 2 + iop[5] ** 2 == pytest.approx(1.0)
        direction = np.array(sitk.ReadImage(str(labels[line['scan_']])).GetDirection()).reshape(3, 3)
        np.testing.assert_allclose(direction[:, 1], iop[3:], atol=1e-4)
        np.testing.assert_allclose(direction[:, 2], np.cross(iop[:3], iop[3:]), atol=1e-4)
        spacing_z = sitk.ReadImage(str(labels[line['scan_']])).GetSpacing()[2]
        assert spacing_z > TABLE_STEP_MM + 0.1
        assert spacing_z * direction[2, 2] == pytest.approx(TABLE_STEP_MM, abs=1e-3)
        z = sorted(float(d.ImagePositionPatient[2]) for d in ds)
        np.testing.assert_allclose(np.diff(z), TABLE_STEP_MM, atol=1e-3)
    assert tilted == 1


def test_500_list_and_label_folder(tmp_path):
    """``--scan-list 500 --archives 500 --labels folder``: the 500 keys, slice_list keyed "0".."n-1"; same scans
    and patients as the 200 list of the same seed; labels as the extracted HemSeg-500/ folder, split as the CSVs."""
    a, b = tmp_path / 'a', tmp_path / 'b'
    common = ['--scans', '4', '--slices', '3', '--size', '32', '--seed', '1']
    assert main(['hemseg', '--out', str(a), *common]) == 0
    assert main(['hemseg', '--out', str(b), *common, '--scan-list', '500', '--archives', '500',
                 '--labels', 'folder']) == 0
    assert sorted(p.name for p in b.iterdir()) == sorted([DICOM_DIR, JSONL_500, 'HemSeg-500', *CSV_NAMES])
    lines = _jsonl(b / JSONL_500)
    for line in lines:
        assert set(line) == KEYS_500 and isinstance(line['slice_list'], dict)
        assert sorted(line['slice_list'], key=int) == [str(k) for k in range(3)]
    assert {(x['scan_name'], x['patient_name']) for x in lines} == {(x['scan_'], x['patient']) for x in
                                                                    _jsonl(a / JSONL_200)}
    files = sorted(str(p.relative_to(b)) for p in (b / 'HemSeg-500').rglob('*') if p.is_file())
    assert files == sorted(m.replace('IPH_IVH_label/', 'HemSeg-500/') for m in zipfile.ZipFile(a / LABEL_ZIP).namelist())
    for split in ('train', 'val', 'test'):
        listed = [r.split(',')[0] for r in (b / f'{split}_set.csv').read_text().split()[1:]]
        assert sorted(f for f in files if f'/{split}/' in f) == sorted(f'HemSeg-500/{split}/label/{s}.nii.gz'
                                                                       for s in listed)


def test_both_versions_as_the_real_repository(tmp_path):
    """``--scan-list both --archives both``: HemSeg-500.zip holds every scan in the split CSVs' folders,
    IPH_IVH_label.zip the HemSeg-200 subset (222 of 525 as a share, the first scans), its members
    byte-identical to HemSeg-500's; the two jsonl list the subset and every scan."""
    raw = tmp_path / 'raw'
    assert main(['hemseg', '--out', str(raw), '--scans', '7', '--slices', '2', '--size', '32',
                 '--scan-list', 'both', '--archives', 'both']) == 0
    csv_split = {r.split(',')[0]: split for split in ('train', 'val', 'test')
                 for r in (raw / f'{split}_set.csv').read_text().split()[1:]}
    z500, z200 = zipfile.ZipFile(raw / 'HemSeg-500.zip'), zipfile.ZipFile(raw / LABEL_ZIP)
    in500 = {re.search(r'([0-9a-f]{10})\.nii', m).group(1): m for m in z500.namelist()}
    in200 = {re.search(r'([0-9a-f]{10})\.nii', m).group(1): m for m in z200.namelist()}
    assert len(csv_split) == len(in500) == 7 and len(in200) == 3   # ceil(7 * 222 / 525)
    for scan, member in in500.items():
        assert member == f'HemSeg-500/{csv_split[scan]}/label/{scan}.nii.gz'
    for scan, member in in200.items():
        assert z200.read(member) == z500.read(in500[scan])
    assert [x['scan_'] for x in _jsonl(raw / JSONL_200)] == [x['scan_name'] for x in _jsonl(raw / JSONL_500)][:3]


def test_bad_arguments(tmp_path, capsys):
    assert main(['hemseg', '--out', str(tmp_path / 'x'), '--scans', '0']) == 2
    assert 'num_scans' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['hemseg', '--out', str(tmp_path / 'x'), '--scan-list', '300'])


def test_tool_script_runs(tmp_path):
    tool = Path(__file__).resolve().parents[2] / 'tools' / 'generate_synthetic.py'
    result = subprocess.run([sys.executable, str(tool), 'hemseg', '--out', str(tmp_path / 'raw'), '--scans', '2',
                             '--slices', '2', '--size', '32'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'hemseg: wrote {tmp_path / "raw"}' in result.stdout
    assert len(list((tmp_path / 'raw' / DICOM_DIR).glob('ID_*.dcm'))) == 4


def test_typed_facts_hold_on_real_files(realdata):
    """The facts above, checked on the real RSNA DICOMs, jsonl files and labels (skipped without them)."""
    real = sorted((realdata / 'rsna').glob('*.dcm'))
    assert real and all(DICOM_NAME.fullmatch(p.name) for p in real)
    variants = {(int(d.PixelRepresentation), int(d.BitsStored), isinstance(d.WindowCenter, MultiValue))
                for d in map(_dcm, real)}
    assert variants == {(1, 16, False), (0, 12, True)}
    assert all(float(_dcm(p).RescaleIntercept) == RESCALE_INTERCEPT for p in real)
    assert all(PATIENT_ID.fullmatch(_dcm(p).PatientID) for p in real)
    line = _jsonl(realdata / 'hemseg' / JSONL_200)[0]
    assert set(line) == KEYS_200 and SCAN_ID.fullmatch(line['scan_']) and PATIENT_ID.fullmatch(line['patient'])
    line = _jsonl(realdata / 'hemseg' / JSONL_500)[0]
    assert set(line) == KEYS_500 and isinstance(line['slice_list'], dict)
    for path in (realdata / 'hemseg').glob('IPH_IVH_label/*/label/*.nii.gz'):
        assert MEMBER.fullmatch(str(path.relative_to(realdata / 'hemseg')))
        img = nib.load(str(path))
        assert img.get_data_dtype() == np.int16 and nib.aff2axcodes(img.affine) == LABEL_CODES
    for name in CSV_NAMES:
        assert (realdata / 'hemseg' / name).read_text().splitlines()[0].split(',') == CSV_HEADER
    tilted = sitk.ReadImage(str(next((realdata / 'hemseg').glob(f'IPH_IVH_label/*/label/{REAL_TILTED}.nii.gz'))))
    direction = np.array(tilted.GetDirection()).reshape(3, 3)
    assert tilted.GetSpacing()[2] * direction[2, 2] == pytest.approx(TABLE_STEP_MM, abs=0.01)
