"""Display orientation: the same anatomy gives the same slices whatever the source's voxel order.

References: nibabel-written NIfTI files whose data and affine are flipped / permuted by hand (same world
positions), SimpleITK's series reader + ``DICOMOrient``, and the world position of every voxel (a
display voxel must hold the value of the source voxel at the same world point).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.errors import MedSegError
from mmseg_medical.io import read_dicom_folder, read_nifti
from mmseg_medical.orientation import (DISPLAY_AXCODES, DISPLAY_CONVENTION, display_transform, source_volume,
                                       to_display, to_source)
from mmseg_medical.synthetic import write_dicom_series
from mmseg_medical.volume import Volume, from_nifti_array, spacing_from_affine

SHAPE_IJK = (5, 6, 7)  # all different, so a wrong permutation cannot go unnoticed
SPACING = (0.5, 0.8, 2.5)


def _data(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, size=SHAPE_IJK).astype(np.int16)


def _lps_affine() -> np.ndarray:
    """RAS+ affine of an (i, j, k) grid whose axes run to the patient's left, posterior, superior."""
    return np.array([[-SPACING[0], 0, 0, 60.0], [0, -SPACING[1], 0, 40.0], [0, 0, SPACING[2], -20.0],
                     [0, 0, 0, 1]])


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _rotation(axis, degrees: float) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis``."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.deg2rad(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _assert_same_world_values(source: Volume, display: Volume) -> None:
    """Every display voxel holds the value of the source voxel at the same world point."""
    shape = display.nifti_array().shape
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing='ij'), axis=-1).reshape(-1, 3)
    world = display.affine @ np.c_[idx, np.ones(len(idx))].T
    src = np.linalg.solve(source.affine, world)[:3].T
    src_idx = np.rint(src).astype(int)
    np.testing.assert_allclose(src, src_idx, atol=1e-6)
    np.testing.assert_array_equal(display.nifti_array()[tuple(idx.T)], source.nifti_array()[tuple(src_idx.T)])


def test_convention_is_lps_and_stated():
    assert DISPLAY_AXCODES == ('L', 'P', 'S')
    assert 'anterior' in DISPLAY_CONVENTION and "patient's right" in DISPLAY_CONVENTION
    assert DISPLAY_CONVENTION.count('.') <= 1 and '\n' not in DISPLAY_CONVENTION


# ------------------------------------------------------------------------------------------- NIfTI

def test_lps_and_ras_files_of_one_scan_give_the_same_display_volume(tmp_path):
    data, lps = _data(), _lps_affine()
    # The same scan stored RAS: i and j reversed; the first voxel is the old (W-1, H-1, 0) voxel.
    ras = lps.copy()
    ras[:3, 0], ras[:3, 1] = -lps[:3, 0], -lps[:3, 1]
    ras[:3, 3] = lps[:3, 3] + (SHAPE_IJK[0] - 1) * lps[:3, 0] + (SHAPE_IJK[1] - 1) * lps[:3, 1]
    assert nib.aff2axcodes(ras) == ('R', 'A', 'S')
    a = read_nifti(_save(data, lps, tmp_path / 'lps.nii.gz'))
    b = read_nifti(_save(data[::-1, ::-1, :], ras, tmp_path / 'ras.nii.gz'))

    da, db = to_display(a), to_display(b)
    np.testing.assert_array_equal(da.array, db.array)
    np.testing.assert_array_equal(da.array, data.transpose(2, 1, 0))  # the LPS file is already in order
    np.testing.assert_allclose(da.affine @ [0, 0, 0, 1], db.affine @ [0, 0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(da.affine, lps, atol=1e-9)
    np.testing.assert_allclose(db.affine, lps, atol=1e-9)
    assert display_transform(a)['ornt'] == [[0, 1], [1, 1], [2, 1]]
    assert display_transform(b)['ornt'] == [[0, -1], [1, -1], [2, 1]]
    assert display_transform(b)['source_axcodes'] == ['R', 'A', 'S']
    for volume in (da, db):
        assert nib.aff2axcodes(volume.affine) == DISPLAY_AXCODES
        assert volume.spacing == pytest.approx(SPACING)
    assert da.source == a.source and db.meta['header'] is b.meta['header']


def test_permuted_axes_give_the_plain_display_volume(tmp_path):
    data, lps = _data(1), _lps_affine()
    plain = to_display(read_nifti(_save(data, lps, tmp_path / 'plain.nii.gz')))
    # Stored (k, i, j), and k reversed: voxel (a, b, c) is plain voxel (b, c, K-1-a).
    stored = data.transpose(2, 0, 1)[::-1]
    perm = np.eye(4)
    perm[:3, 0], perm[:3, 1], perm[:3, 2] = -lps[:3, 2], lps[:3, 0], lps[:3, 1]
    perm[:3, 3] = lps[:3, 3] + (SHAPE_IJK[2] - 1) * lps[:3, 2]
    permuted = read_nifti(_save(stored, perm, tmp_path / 'permuted.nii.gz'))
    assert permuted.spacing == pytest.approx((SPACING[2], SPACING[0], SPACING[1]))
    assert tuple(display_transform(permuted)['source_axcodes']) == ('I', 'L', 'P')

    display = to_display(permuted)
    np.testing.assert_array_equal(display.array, plain.array)
    np.testing.assert_allclose(display.affine, plain.affine, atol=1e-9)
    assert display.spacing == pytest.approx(SPACING)


ORIENTATIONS = [(perm, flips) for perm in itertools.permutations(range(3))
                for flips in itertools.product((1, -1), repeat=3)]


@pytest.mark.parametrize('perm,flips', ORIENTATIONS)
def test_every_axis_order_round_trips_and_keeps_world_positions(perm, flips):
    """All 48 permutations/flips, each also rotated a few degrees (oblique): nearest axes, no resampling."""
    rng = np.random.default_rng(ORIENTATIONS.index((perm, flips)))
    columns = np.zeros((3, 3))
    for axis, (world_axis, flip) in enumerate(zip(perm, flips)):
        columns[world_axis, axis] = flip * (0.4 + axis * 0.7)
    affine = np.eye(4)
    affine[:3, :3] = _rotation(rng.normal(size=3), rng.uniform(2, 12)) @ columns
    affine[:3, 3] = rng.uniform(-100, 100, size=3)
    source = from_nifti_array(rng.integers(0, 1000, size=SHAPE_IJK).astype(np.int16), affine, source='case')

    record = json.loads(json.dumps(display_transform(source)))  # what dataset files keep
    display = to_display(source, record)
    assert nib.aff2axcodes(display.affine) == DISPLAY_AXCODES
    assert display.spacing == pytest.approx(spacing_from_affine(display.affine))
    assert sorted(display.array.shape) == sorted(source.array.shape)
    _assert_same_world_values(source, display)

    back = to_source(display.array, record)
    np.testing.assert_array_equal(back, source.array)
    restored = source_volume(display.array, record)
    np.testing.assert_array_equal(restored.array, source.array)
    assert np.array_equal(restored.affine, source.affine)  # exactly, not approximately
    assert restored.spacing == pytest.approx(source.spacing)


def test_label_follows_the_image_record_and_shapes_are_checked():
    rng = np.random.default_rng(4)
    affine = np.diag([0.7, -0.9, 3.0, 1.0])
    image = from_nifti_array(rng.integers(0, 9, size=SHAPE_IJK).astype(np.int16), affine, source='img.nii')
    label = from_nifti_array((image.nifti_array() > 4).astype(np.uint8), affine, source='lbl.nii')
    record = display_transform(image)
    np.testing.assert_array_equal(to_display(label, record).array, to_display(image).array > 4)

    other = from_nifti_array(np.zeros((5, 6, 8), np.uint8), affine, source='bad_label.nii')
    with pytest.raises(MedSegError, match=r'^bad_label\.nii: shape \(Z, H, W\) \[8, 6, 5\]'):
        to_display(other, record)
    with pytest.raises(MedSegError, match='does not match'):
        to_source(np.zeros((7, 6, 4), np.uint8), record)


def test_volume_without_affine_is_kept():
    volume = Volume(array=np.zeros((2, 3, 4), np.uint8), source='jpgs')
    assert display_transform(volume) is None
    assert to_display(volume) is volume
    array = np.arange(24).reshape(2, 3, 4)
    assert to_source(array, None) is array
    kept = source_volume(array, None)
    assert kept.affine is None and kept.spacing is None and kept.array is array
    assert np.array_equal(source_volume(array, None, np.diag([2.0, 3.0, 4.0, 1.0])).affine,
                          np.diag([2.0, 3.0, 4.0, 1.0]))


def test_degenerate_affine_is_an_error_naming_the_source():
    affine = np.diag([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(MedSegError, match=r'^scan\.nii: degenerate affine'):
        display_transform(from_nifti_array(np.zeros(SHAPE_IJK), affine, source='scan.nii',
                                           spacing=(1.0, 1.0, 1.0)))


# ------------------------------------------------------------------------------------------- DICOM

def _sitk_display(folder: Path):
    """SimpleITK's series reader, reoriented by ``DICOMOrient(img, 'LPS')``.

    How the conventions relate: DICOMOrient's letters name where each image axis (x, y, z) points in
    the patient (``'LPS'`` = identity direction in ITK's LPS world), which is what nibabel's axcodes
    ('L', 'P', 'S') say of the (i, j, k) axes in its RAS world; x = i = column, y = j = row, z = k = slice,
    and ``GetArrayFromImage`` gives (z, y, x) = our (Z, H, W).
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader_GetGDCMSeriesFileNames(str(folder)))
    image = sitk.DICOMOrient(reader.Execute(), 'LPS')
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return sitk.GetArrayFromImage(image), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS → RAS world


def _iop(rotation: np.ndarray, row=(1, 0, 0), col=(0, 1, 0)) -> tuple:
    return (*(rotation @ row), *(rotation @ col))


DICOM_CASES = {
    'oblique_axial': _iop(_rotation((0.3, -0.5, 1.0), 7.0)),
    'oblique_feet_first': _iop(_rotation((1.0, 0.2, 0.1), 5.0), col=(0, -1, 0)),
    'sagittal': (0, 1, 0, 0, 0, -1),
    'oblique_coronal': _iop(_rotation((0.0, 1.0, 0.4), 6.0), col=(0, 0, -1)),
}


@pytest.mark.parametrize('case', sorted(DICOM_CASES))
def test_dicom_display_matches_simpleitk_dicomorient_lps(case, tmp_path):
    hu = np.random.default_rng(5).integers(-1024, 2000, size=(4, 6, 5)).astype(np.int16)
    write_dicom_series(hu, tmp_path, spacing=(0.6, 0.9, 3.0), origin=(10.0, -20.0, 30.0),
                       orientation=DICOM_CASES[case])
    source = read_dicom_folder(tmp_path)
    display = to_display(source)
    expected, expected_affine = _sitk_display(tmp_path)
    np.testing.assert_array_equal(display.array, expected)
    np.testing.assert_allclose(display.affine, expected_affine, atol=1e-4)
    assert nib.aff2axcodes(display.affine) == DISPLAY_AXCODES
    _assert_same_world_values(source, display)


def test_standard_axial_dicom_is_already_in_display_order(tmp_path):
    hu = np.random.default_rng(6).integers(-1024, 2000, size=(3, 6, 5)).astype(np.int16)
    write_dicom_series(hu, tmp_path)
    source = read_dicom_folder(tmp_path)
    record = display_transform(source)
    assert record['ornt'] == [[0, 1], [1, 1], [2, 1]]
    assert record['source_axcodes'] == ['L', 'P', 'S']
    display = to_display(source, record)
    np.testing.assert_array_equal(display.array, hu)
    np.testing.assert_array_equal(display.affine, source.affine)
    np.testing.assert_array_equal(display.array, _sitk_display(tmp_path)[0])


@pytest.mark.parametrize('diag', [(1.0, 1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, -1.0, -1.0)])
def test_display_slice_sources_follow_to_display(diag):
    """Per-slice values follow their slice: slice z of an index volume (filled with z) lands where
    display_slice_sources says, for sources stored inferior->superior and superior->inferior."""
    from mmseg_medical.orientation import display_slice_sources

    array = np.broadcast_to(np.arange(5, dtype=np.int16)[:, None, None], (5, 3, 4)).copy()
    volume = Volume(array=array, affine=np.diag([*diag, 1.0]))
    record = display_transform(volume)
    shown = to_display(volume, record).array
    assert display_slice_sources(record, 5) == [int(shown[d, 0, 0]) for d in range(5)]
    assert display_slice_sources(None, 3) == [0, 1, 2]


def test_display_slice_sources_refuse_a_non_axial_source():
    from mmseg_medical.errors import MedSegError
    from mmseg_medical.orientation import display_slice_sources

    sagittal = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
    record = display_transform(Volume(array=np.zeros((4, 3, 2)), affine=sagittal))
    with pytest.raises(MedSegError, match='not axial'):
        display_slice_sources(record, 4)
