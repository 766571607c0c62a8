import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.io.nifti import nifti_stem, read_nifti
from mmseg_medical.io.slices import read_slice_files, read_slice_folder
from mmseg_medical.volume import Volume, save_nifti


def test_nifti_round_trip_keeps_orientation_affine_and_spacing(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # (Z, H, W)
    affine = np.array([[-0.4, 0, 0, 10], [0, -0.5, 0, 20], [0, 0, 1.5, -30], [0, 0, 0, 1]])
    path = save_nifti(Volume(array, affine=affine), tmp_path / 'v.nii.gz')
    on_disk = nib.load(str(path))
    assert on_disk.shape == (4, 3, 2)  # i = column, j = row, k = slice
    assert on_disk.get_fdata()[3, 2, 1] == array[1, 2, 3]
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, affine)
    assert back.spacing == pytest.approx((0.4, 0.5, 1.5))
    assert nifti_stem(path) == 'v'


def test_truncated_nifti_is_one_clear_error(tmp_path):
    path = save_nifti(Volume(np.zeros((8, 32, 32), np.int16), spacing=(1, 1, 1)), tmp_path / 'scan.nii')
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MedSegError, match=r'scan\.nii: cannot read NIfTI'):
        read_nifti(path)


def test_slice_folder_natural_order(tmp_path):
    for n in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f'{n}.png'), np.full((5, 6), n, np.uint8))
    vol = read_slice_folder(tmp_path)
    assert vol.array[:, 0, 0].tolist() == [1, 2, 10]
    assert vol.spacing is None


def test_slice_shape_mismatch_and_bad_file(tmp_path):
    cv2.imwrite(str(tmp_path / '1.png'), np.zeros((5, 6), np.uint8))
    cv2.imwrite(str(tmp_path / '2.png'), np.zeros((6, 6), np.uint8))
    with pytest.raises(MedSegError, match=r'2\.png: slice shape'):
        read_slice_folder(tmp_path)
    (tmp_path / '3.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(MedSegError, match=r'3\.jpg: cannot decode'):
        read_slice_files([tmp_path / '3.jpg'])
