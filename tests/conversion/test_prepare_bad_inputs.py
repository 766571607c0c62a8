"""Every bad input: one error line naming the file and the problem, exit 1, nothing left behind."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmseg_medical.conversion.cli import main
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.synthetic import write_cranium_release
from mmseg_medical.volume import Volume, save_nifti

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def nifti_release(tmp_path) -> Path:
    write_cranium_release(tmp_path / 'raw', num_patients=3, num_slices=4, size=32, seed=0, layouts=('nifti',))
    return tmp_path / 'raw'


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def assert_nothing_written(out: Path):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f'.{out.name}.')]


def test_empty_src_says_which_layout_was_expected(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    code, err = run_cli(capsys, 'cranium', '--src', str(tmp_path / 'empty'), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1
    assert str(tmp_path / 'empty') in err[0] and 'Patients_CT/<id>/brain/<n>.jpg' in err[0] and 'ct_scans' in err[0]
    assert_nothing_written(tmp_path / 'out')


def test_src_that_is_not_a_folder(tmp_path, capsys):
    code, err = run_cli(capsys, 'cranium', '--src', str(tmp_path / 'nope'), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1 and 'nope: --src is not a folder' in err[0]


def test_truncated_nifti(nifti_release, tmp_path, capsys):
    scan = nifti_release / 'Cranium' / RELEASE / 'ct_scans' / '050.nii'
    scan.write_bytes(scan.read_bytes()[:1000])
    code, err = run_cli(capsys, 'cranium', '--src', str(nifti_release), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f'error: {scan}: cannot read NIfTI')
    assert_nothing_written(tmp_path / 'out')


def test_image_mask_shape_mismatch(nifti_release, tmp_path, capsys):
    mask = nifti_release / 'Cranium' / RELEASE / 'masks' / '051.nii'
    scan = nifti_release / 'Cranium' / RELEASE / 'ct_scans' / '051.nii'
    save_nifti(Volume(np.zeros((4, 32, 30), np.uint8), spacing=(1, 1, 1)), mask)
    code, err = run_cli(capsys, 'cranium', '--src', str(nifti_release), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1
    assert err[0] == f'error: {mask}: label does not match image {scan}: shape (Z, H, W) (4, 32, 30) vs (4, 32, 32)'
    assert_nothing_written(tmp_path / 'out')


def test_mask_values_outside_label_map(nifti_release, tmp_path, capsys):
    import nibabel as nib
    mask = nifti_release / 'Cranium' / RELEASE / 'masks' / '049.nii'
    labels = np.zeros((32, 32, 4), np.uint8)
    labels[5, 5, 1] = 2
    nib.save(nib.Nifti1Image(labels, nib.load(str(mask)).affine), str(mask))
    code, err = run_cli(capsys, 'cranium', '--src', str(nifti_release), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1
    assert f'{mask}: label values [2] are outside the label map [0, 1]' in err[0]
    assert_nothing_written(tmp_path / 'out')


def test_jpg_mask_of_other_size(tmp_path, capsys):
    import cv2
    write_cranium_release(tmp_path / 'raw', num_patients=2, num_slices=4, size=32, seed=0, layouts=('jpg',))
    mask = next((tmp_path / 'raw').rglob('*_HGE_Seg.jpg'))
    cv2.imwrite(str(mask), np.zeros((16, 16), np.uint8))
    code, err = run_cli(capsys, 'cranium', '--src', str(tmp_path / 'raw'), '--out', str(tmp_path / 'out'))
    assert code == 1 and len(err) == 1 and f'{mask}: mask shape (16, 16) does not match' in err[0]
    assert_nothing_written(tmp_path / 'out')


def test_unknown_dataset_and_exit_codes_through_the_script(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / 'tools/prepare_dataset.py'), 'brats', '--src', '.', '--out', 'x'],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'brats'" in lines[0] and 'cranium' in lines[0]
    (tmp_path / 'empty').mkdir()                       # no cases: bad input, exit 1
    proc = subprocess.run([sys.executable, str(REPO / 'tools/prepare_dataset.py'), 'cranium', '--src',
                           str(tmp_path / 'empty'), '--out', str(tmp_path / 'out')], capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_datasets_and_their_options():
    proc = subprocess.run([sys.executable, str(REPO / 'tools/prepare_dataset.py'), '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'cranium' in proc.stdout
    proc = subprocess.run([sys.executable, str(REPO / 'tools/prepare_dataset.py'), 'cranium', '--help'],
                          capture_output=True, text=True)
    assert '--layout' in proc.stdout and '--window' in proc.stdout and '--folds' in proc.stdout
