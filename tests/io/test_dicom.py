"""DICOM series reader (and the synthetic writer it is tested with): real RSNA slices, SimpleITK geometry
parity, error reporting."""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import List, Tuple

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from mmseg_medical.errors import MedSegError
from mmseg_medical.io.dicom import (LPS_TO_RAS, dicom_files_in, read_dicom_folder, read_dicom_series,
                                    read_dicom_slice)
from mmseg_medical.synthetic import write_dicom_series

TILT = np.deg2rad(22.0)
TILTED = (1.0, 0.0, 0.0, 0.0, float(np.cos(TILT)), float(-np.sin(TILT)))
NAME_RE = re.compile(r'^ID_[0-9a-f]{9}\.dcm$')


def _quiet_dcmread(path: Path):
    """``pydicom.dcmread`` without the warnings about RSNA's non-UID ``ID_...`` UIDs."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return pydicom.dcmread(str(path))


def _sitk_series(folder: Path, out_dir: Path) -> Tuple[List[str], sitk.Image, nib.Nifti1Image]:
    """What SimpleITK makes of ``folder``: file order, image, and the image written to NIfTI and reloaded."""
    names = list(sitk.ImageSeriesReader_GetGDCMSeriesFileNames(str(folder)))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    image = reader.Execute()
    out = out_dir / 'sitk.nii.gz'
    sitk.WriteImage(image, str(out))
    return [Path(n).name for n in names], image, nib.load(str(out))


def _hu(z: int = 6, h: int = 12, w: int = 10, lo: int = -1024, hi: int = 2000, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=(z, h, w)).astype(np.int16)


# --------------------------------------------------------------------------------------------- real

def _rsna_files(realdata: Path) -> List[Path]:
    files = sorted((realdata / 'rsna').glob('ID_*.dcm'))
    assert files, 'no RSNA sample files'
    return files


def test_rsna_slices_have_plausible_hu_matching_simpleitk(realdata):
    for path in _rsna_files(realdata):
        hu, info = read_dicom_slice(path)
        assert hu.shape == (info.rows, info.columns) == (512, 512), path.name
        assert hu.dtype == np.int16
        # -3024 = stored -2000 + intercept -1024: the usual padding outside the reconstruction circle
        # (the corners); nothing may fall below it or above the CT range.
        assert hu.min() >= -3024 and hu.max() <= 4000, (path.name, hu.min(), hu.max())
        body = hu[hu > hu.min()]
        assert body.min() >= -1100, path.name
        # Air inside the field of view, beside the head (left edge, middle rows).
        assert -1050 <= np.median(hu[248:264, 8:24]) <= -950, path.name
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]
        np.testing.assert_array_equal(hu, reference, err_msg=path.name)
        assert info.window_center and info.window_width
        assert info.series_instance_uid.startswith('ID_') and info.sop_instance_uid == path.stem


# The two unsigned 12-bit files and their zero-padded, multi-valued WindowCenter as their headers spell it
# (``[00040, 00040]``, ``[00036, 00036]``; ../shared/realdata/README.md); the other six are signed 16-bit.
RSNA_UNSIGNED_12BIT = {'ID_0a0af83c8.dcm': (40.0, 40.0), 'ID_0a0bd1cc4.dcm': (36.0, 36.0)}


@pytest.mark.parametrize('pixel_representation,bits_stored', [(1, 16), (0, 12)])
def test_rsna_header_variants(realdata, pixel_representation, bits_stored):
    matching = []
    for path in _rsna_files(realdata):
        ds = _quiet_dcmread(path)
        if (int(ds.PixelRepresentation), int(ds.BitsStored)) == (pixel_representation, bits_stored):
            matching.append(path)
    unsigned = {p.name for p in _rsna_files(realdata) if p.name in RSNA_UNSIGNED_12BIT}
    assert unsigned == set(RSNA_UNSIGNED_12BIT), 'the two real unsigned 12-bit RSNA files are missing'
    if (pixel_representation, bits_stored) == (0, 12):
        assert {p.name for p in matching} == set(RSNA_UNSIGNED_12BIT)
    else:
        assert len(matching) == 6 and not {p.name for p in matching} & set(RSNA_UNSIGNED_12BIT)
    for path in matching:
        hu, info = read_dicom_slice(path)
        assert (info.pixel_representation, info.bits_stored) == (pixel_representation, bits_stored)
        lo = -3024 if pixel_representation == 1 else info.rescale_intercept
        hi = 4000 if pixel_representation == 1 else (1 << bits_stored) - 1 + info.rescale_intercept
        assert lo <= hu.min() and hu.max() <= hi, path.name
        assert (hu < -900).any() and (hu > 0).any(), path.name
        np.testing.assert_array_equal(hu, sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0])
        if path.name in RSNA_UNSIGNED_12BIT:
            assert info.window_center == RSNA_UNSIGNED_12BIT[path.name]
            assert info.window_width == (80.0, 80.0) and info.rescale_intercept == -1024


def _label_files(realdata: Path) -> List[Path]:
    files = sorted((realdata / 'hemseg' / 'IPH_IVH_label').glob('*/label/*.nii.gz'))
    assert files, 'no HemSeg label samples'
    return files


def test_hemseg_label_geometry_reproduced_from_a_series_with_its_geometry(realdata, tmp_path):
    """A series laid out like each real label's DICOMs reads to the affine SimpleITK gives (incl. the tilt).

    The layout comes from SimpleITK's reading of the label (origin, direction, spacing: LPS, ITK's own
    convention), not from this reader's LPS rule; SimpleITK's series reader, written to NIfTI by ITK and
    loaded with nibabel, is the reference, and it must give back the label's own nibabel affine.
    """
    seen_tilt = False
    for label_path in _label_files(realdata):
        label = sitk.ReadImage(str(label_path))
        direction = np.array(label.GetDirection()).reshape(3, 3)
        spacing = label.GetSpacing()
        row_dir, col_dir = direction[:, 0], direction[:, 1]
        seen_tilt |= abs(col_dir[2]) > 0.1
        n_slices = label.GetSize()[2]
        folder = tmp_path / label_path.name.split('.')[0]
        write_dicom_series(np.zeros((n_slices, 4, 4), np.int16), folder, spacing=spacing,
                           origin=label.GetOrigin(), orientation=(*row_dir, *col_dir),
                           slice_step=tuple(direction[:, 2] * spacing[2]))
        volume = read_dicom_folder(folder)
        _, image, nifti = _sitk_series(folder, folder.parent)
        np.testing.assert_allclose(volume.affine, nifti.affine, atol=2e-4, err_msg=label_path.name)
        np.testing.assert_allclose(volume.spacing, image.GetSpacing(), rtol=1e-5)
        np.testing.assert_allclose(nifti.affine, nib.load(str(label_path)).affine, atol=2e-4)
        assert volume.num_slices == n_slices
    assert seen_tilt, 'expected the gantry-tilted label 08154d6b7b among the samples'


def test_tilted_label_matches_simpleitk_rule(realdata, tmp_path):
    """08154d6b7b: a 22 deg tilted series with 5 mm table steps, read by this reader, gives the real label's
    affine: third axis = row x col (not z), spacing 5.39 = 5 / cos(tilt), positions on the grid."""
    path = realdata / 'hemseg' / 'IPH_IVH_label' / 'val' / 'label' / '08154d6b7b.nii.gz'
    assert path.exists(), '08154d6b7b label missing from ../shared/realdata'
    label = nib.load(str(path))
    lps = LPS_TO_RAS @ label.affine  # diag(-1, -1, 1, 1) is its own inverse
    cos_t = 0.927184  # column direction (0, cos t, -sin t) as read off the file (NOTES.md)
    sin_t = np.sqrt(1 - cos_t ** 2)
    pixel = float(label.header.get_zooms()[0])
    # Hand-made layout: rows along +x, columns tilted, slices 5 mm apart in z along n = (0, sin t, cos t).
    step = (0.0, 5.0 * sin_t / cos_t, 5.0)
    paths = write_dicom_series(np.zeros((label.shape[2], 4, 4), np.int16), tmp_path,
                               spacing=(pixel, pixel, 5.0), origin=tuple(lps[:3, 3]),
                               orientation=(1, 0, 0, 0, cos_t, -sin_t), slice_step=step)
    volume = read_dicom_series(paths)
    np.testing.assert_allclose(volume.affine, label.affine, atol=2e-3)
    assert volume.spacing[2] == pytest.approx(5.0 / cos_t, rel=1e-9)
    assert volume.spacing[2] == pytest.approx(label.header.get_zooms()[2], rel=1e-4)  # 5.3925 in the file
    np.testing.assert_allclose((LPS_TO_RAS @ volume.affine)[:3, 2], step, atol=1e-4)
    assert volume.meta['affine_position_error_mm'] < 1e-3


# ---------------------------------------------------------------------------------------- synthetic

CASES = {
    'axial': {},
    'tilted_ipp_along_z': dict(orientation=TILTED, slice_step=(0.0, 0.0, 5.0)),
    'tilted_ipp_along_normal': dict(orientation=TILTED),
    'normal_points_down': dict(orientation=(1, 0, 0, 0, -1, 0)),
    'sagittal_constant_z': dict(orientation=(0, 1, 0, 0, 0, -1)),
    'unsigned_12bit': dict(signed=False),
    'anisotropic_pixels': dict(spacing=(0.4, 0.7, 3.0), origin=(10.0, -20.5, 33.25)),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_round_trip_matches_simpleitk(case, tmp_path):
    kwargs = CASES[case]
    hu = _hu(lo=-1024, hi=3071) if kwargs.get('signed', True) is False else _hu(lo=-3024, hi=3000)
    folder = tmp_path / 'series'
    paths = write_dicom_series(hu, folder, seed=7, **kwargs)
    names = [p.name for p in paths]
    assert all(NAME_RE.match(n) for n in names)
    assert names != sorted(names), 'shuffled names must not sort in slice order'

    volume = read_dicom_folder(folder)
    assert volume.meta['file_names'] == names
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.array.dtype == np.int16

    sitk_names, image, nifti = _sitk_series(folder, tmp_path)
    assert sitk_names == names
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    np.testing.assert_allclose(volume.spacing, image.GetSpacing(), rtol=1e-9)
    np.testing.assert_allclose(volume.affine, nifti.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(nifti.dataobj), volume.nifti_array())


def test_axial_affine_is_lps_flipped_to_ras(tmp_path):
    paths = write_dicom_series(_hu(z=3), tmp_path, spacing=(0.5, 0.8, 2.0), origin=(-100.0, -50.0, 20.0))
    volume = read_dicom_series(list(reversed(paths)))
    expected = np.array([[-0.5, 0, 0, 100.0], [0, -0.8, 0, 50.0], [0, 0, 2.0, 20.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected, atol=1e-9)
    assert volume.spacing == pytest.approx((0.5, 0.8, 2.0))


def test_voxel_centres_land_on_the_dicom_pixel_positions(tmp_path):
    """Tilted, IPP along the normal: affine @ (i, j, k) = IPP_k + i*dc*row + j*dr*col (LPS -> RAS)."""
    paths = write_dicom_series(_hu(z=4, h=6, w=5), tmp_path, spacing=(0.6, 0.9, 4.0), orientation=TILTED,
                               origin=(-12.0, 30.0, 7.0))
    volume = read_dicom_series(paths)
    row, col = np.array(TILTED[:3]), np.array(TILTED[3:])
    for k, path in enumerate(paths):
        ipp = np.array([float(v) for v in _quiet_dcmread(path).ImagePositionPatient])
        for i, j in [(0, 0), (4, 0), (0, 5), (3, 2)]:
            lps = ipp + i * 0.6 * row + j * 0.9 * col
            world = volume.affine @ [i, j, k, 1.0]
            np.testing.assert_allclose(world[:3], [-lps[0], -lps[1], lps[2]], atol=1e-6)
    assert volume.meta['affine_position_error_mm'] < 1e-6


def test_tilt_with_ipp_along_z_keeps_orthogonal_axis_and_reports_shear(tmp_path):
    paths = write_dicom_series(_hu(z=5), tmp_path, orientation=TILTED, slice_step=(0, 0, 5.0))
    volume = read_dicom_series(paths)
    normal = np.cross(TILTED[:3], TILTED[3:])
    np.testing.assert_allclose((LPS_TO_RAS @ volume.affine)[:3, 2], 5.0 * normal, atol=1e-9)
    assert volume.spacing[2] == pytest.approx(5.0)
    # slice 4 really sits at +20 mm in z, the affine puts it at 20 * n: |20 z - 20 n| = 20 * 2 sin(t/2)
    assert volume.meta['affine_position_error_mm'] == pytest.approx(40 * np.sin(TILT / 2), rel=1e-6)


def test_uneven_positions_below_the_gap_limit_read_like_simpleitk(tmp_path):
    hu = _hu(z=5)
    paths = write_dicom_series(hu, tmp_path / 'series')
    ds = _quiet_dcmread(paths[2])  # slice 2 moved from z = 10 to 12 mm: gaps 5, 7, 3, 5 (7 < 1.5 x 5)
    ds.ImagePositionPatient = [-115.0, -115.0, 12.0]
    ds.save_as(str(paths[2]))
    volume = read_dicom_folder(tmp_path / 'series')
    np.testing.assert_array_equal(volume.array, hu)
    _, image, nifti = _sitk_series(tmp_path / 'series', tmp_path)
    assert volume.spacing[2] == pytest.approx(image.GetSpacing()[2]) == pytest.approx(5.0)
    np.testing.assert_allclose(volume.affine, nifti.affine, atol=1e-4)
    assert volume.meta['affine_position_error_mm'] == pytest.approx(2.0)


@pytest.mark.parametrize('orientation,step,gap', [
    ((1, 0, 0, 0, 1, 0), None, 10.0),
    (TILTED, (0.0, 0.0, 5.0), 10.0 * np.cos(TILT)),  # IPPs 5 mm apart in z: 5 cos t along the normal
    ((1, 0, 0, 0, -1, 0), None, 10.0),  # normal (0, 0, -1): positions along it still ascend
])
def test_missing_slice_is_an_error_naming_series_and_gap(tmp_path, orientation, step, gap):
    folder = tmp_path / 'series'
    paths = write_dicom_series(_hu(z=6), folder, shuffle_names=False, orientation=orientation,
                               slice_step=step)
    paths[3].unlink()
    with pytest.raises(MedSegError) as err:
        read_dicom_folder(folder)
    assert err.value.path == str(folder)
    message = str(err.value)
    assert 'missing slice' in message and paths[0].name in message
    assert f'gap of {gap:.3f} mm' in message
    assert paths[2].name in message and paths[4].name in message
    with pytest.raises(MedSegError, match='missing slice'):
        read_dicom_series(list(reversed([p for p in paths if p.exists()])))


def test_order_ignores_instance_number_and_file_names(tmp_path):
    hu = _hu(z=5)
    paths = write_dicom_series(hu, tmp_path, shuffle_names=False, orientation=(1, 0, 0, 0, -1, 0))
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    for k, path in enumerate(paths):  # misleading InstanceNumbers: reversed
        ds = _quiet_dcmread(path)
        ds.InstanceNumber = len(paths) - k
        ds.save_as(str(path))
    volume = read_dicom_series(sorted(paths, key=lambda p: p.name, reverse=True))
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.meta['file_names'] == [p.name for p in paths]
    # normal = (0, 0, -1): slices are ordered by decreasing z
    z = [pos[2] for pos in volume.meta['image_positions_lps']]
    assert z == sorted(z, reverse=True)


def test_meta_keeps_uids_names_and_multivalued_windows(tmp_path):
    paths = write_dicom_series(_hu(z=3), tmp_path, series_uid='1.2.3.4.5', seed=1)
    volume = read_dicom_folder(tmp_path)
    assert volume.meta['series_instance_uid'] == '1.2.3.4.5'
    assert volume.meta['patient_id'] == 'SYNTHETIC'
    sops = [str(_quiet_dcmread(p).SOPInstanceUID) for p in paths]
    assert volume.meta['sop_instance_uids'] == sops and len(set(sops)) == 3
    # the windows as pydicom reads them from the files (multi-valued here: a list per slice)
    def values(element) -> list:
        return [float(v) for v in (element if isinstance(element, pydicom.multival.MultiValue) else [element])]
    datasets = [_quiet_dcmread(p) for p in paths]
    assert volume.meta['window_center'] == [values(ds.WindowCenter) for ds in datasets]
    assert volume.meta['window_width'] == [values(ds.WindowWidth) for ds in datasets]
    assert all(len(values(ds.WindowCenter)) == 2 for ds in datasets)      # really multi-valued
    assert volume.source == str(tmp_path)


def test_unused_high_bits_are_ignored_like_simpleitk(tmp_path):
    """Unsigned 12-bit data with junk above bit 11, signed 12-bit data not sign-extended."""
    for signed, hi in [(False, 3071), (True, 1000)]:
        folder = tmp_path / f'signed{signed}'
        hu = _hu(z=1, lo=-1024, hi=hi)
        path = write_dicom_series(hu, folder, signed=signed, bits_stored=12)[0]
        ds = _quiet_dcmread(path)
        raw = np.frombuffer(ds.PixelData, '<u2').copy()
        raw[::3] = (raw[::3] & 0x0FFF) | (0 if signed else 0xA000)
        ds.PixelData = raw.tobytes()
        ds.save_as(str(path))
        ours, info = read_dicom_slice(path)
        assert info.bits_stored == 12 and info.pixel_representation == int(signed)
        np.testing.assert_array_equal(ours, hu[0])
        np.testing.assert_array_equal(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0])


def test_fractional_rescale_gives_float32(tmp_path):
    path = write_dicom_series(_hu(z=1), tmp_path)[0]
    ds = _quiet_dcmread(path)
    stored = ds.pixel_array.astype(np.float64)
    ds.RescaleSlope = '0.5'
    ds.RescaleIntercept = '-1000.25'
    ds.save_as(str(path))
    hu, _ = read_dicom_slice(path)
    assert hu.dtype == np.float32
    np.testing.assert_allclose(hu, stored * 0.5 - 1000.25, atol=1e-3)
    np.testing.assert_allclose(hu, sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0], atol=1e-3)


def test_rle_lossless_decodes_without_native_libraries(tmp_path):
    from pydicom.uid import RLELossless

    hu = _hu(z=1)
    path = write_dicom_series(hu, tmp_path)[0]
    ds = _quiet_dcmread(path)
    ds.compress(RLELossless, encoding_plugin='pydicom')
    ds.save_as(str(path))
    assert _quiet_dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_dicom_slice(path)[0], hu[0])


def test_single_file_series_uses_simpleitk_spacing(tmp_path):
    path = write_dicom_series(_hu(z=1), tmp_path, spacing=(0.5, 0.5, 2.5))[0]
    volume = read_dicom_series([path])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path)])
    assert volume.spacing == pytest.approx(reader.Execute().GetSpacing())


def test_writer_is_deterministic_and_refuses_to_overwrite(tmp_path):
    a = write_dicom_series(_hu(z=3), tmp_path / 'a', seed=5)
    b = write_dicom_series(_hu(z=3), tmp_path / 'b', seed=5)
    assert [p.name for p in a] == [p.name for p in b]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    with pytest.raises(MedSegError, match=re.escape(a[0].name)):
        write_dicom_series(_hu(z=3), tmp_path / 'a', seed=5)
    with pytest.raises(ValueError, match='unsigned 12-bit'):
        write_dicom_series(_hu(z=1, lo=3072, hi=3100), tmp_path / 'c', signed=False)


def test_folder_picks_up_extensionless_dicom_and_ignores_other_files(tmp_path):
    hu = _hu(z=3)
    paths = write_dicom_series(hu, tmp_path)
    paths[1].rename(tmp_path / 'IM0002')
    (tmp_path / 'README').write_text('not dicom')
    (tmp_path / 'notes.txt').write_text('not dicom')
    (tmp_path / '.DS_Store').write_bytes(b'\0' * 200)
    assert {p.name for p in dicom_files_in(tmp_path)} == {paths[0].name, 'IM0002', paths[2].name}
    np.testing.assert_array_equal(read_dicom_folder(tmp_path).array, hu)


# ------------------------------------------------------------------------------------------- errors

def test_two_series_in_one_folder(tmp_path):
    first = write_dicom_series(_hu(z=3), tmp_path, series_uid='1.2.3.1')
    second = write_dicom_series(_hu(z=2), tmp_path, series_uid='1.2.3.2')
    with pytest.raises(MedSegError) as err:
        read_dicom_folder(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path)) and '1.2.3.1' in message and '1.2.3.2' in message
    assert any(p.name in message for p in first) and any(p.name in message for p in second)
    with pytest.raises(MedSegError, match=re.escape(second[0].name)):
        read_dicom_series([*first, second[0]])


def test_file_with_different_rows(tmp_path):
    write_dicom_series(_hu(z=3), tmp_path, series_uid='1.2.3.9')
    odd = write_dicom_series(_hu(z=1, h=7), tmp_path, series_uid='1.2.3.9', seed=1,
                             origin=(-115.0, -115.0, 50.0))[0]
    with pytest.raises(MedSegError, match=re.escape(odd.name) + '.*Rows x Columns 7 x 10'):
        read_dicom_folder(tmp_path)


def test_file_with_different_orientation(tmp_path):
    write_dicom_series(_hu(z=3), tmp_path, series_uid='1.2.3.9')
    odd = write_dicom_series(_hu(z=1), tmp_path, series_uid='1.2.3.9', seed=1, orientation=TILTED,
                             origin=(-115.0, -115.0, 50.0))[0]
    with pytest.raises(MedSegError, match=re.escape(odd.name) + '.*ImageOrientationPatient'):
        read_dicom_folder(tmp_path)


def test_duplicate_positions(tmp_path):
    series = write_dicom_series(_hu(z=3), tmp_path, series_uid='1.2.3.9')
    dup = write_dicom_series(_hu(z=1), tmp_path, series_uid='1.2.3.9', seed=1,
                             origin=(-115.0, -115.0, 5.0))[0]
    with pytest.raises(MedSegError, match='duplicate slice position') as err:
        read_dicom_folder(tmp_path)
    assert dup.name in str(err.value) and series[1].name in str(err.value)


def test_non_dicom_file(tmp_path):
    write_dicom_series(_hu(z=2), tmp_path)
    bogus = tmp_path / 'ID_0000bogus.dcm'
    bogus.write_text('this is not a DICOM file\n' * 20)
    with pytest.raises(MedSegError, match=re.escape(bogus.name) + '.*not a DICOM file'):
        read_dicom_folder(tmp_path)
    with pytest.raises(MedSegError, match=re.escape(bogus.name)):
        read_dicom_slice(bogus)


def test_undecodable_compressed_file(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    path = write_dicom_series(_hu(z=1), tmp_path)[0]
    ds = _quiet_dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b'\xff\x4f\xff\x51' + b'\0' * 60])
    ds['PixelData'].VR = 'OB'
    ds['PixelData'].is_undefined_length = True
    ds.save_as(str(path))
    with pytest.raises(MedSegError, match=re.escape(path.name) + '.*cannot decode pixel data.*JPEG 2000'):
        read_dicom_slice(path)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(MedSegError, match='not a folder'):
        read_dicom_folder(tmp_path / 'missing')
    with pytest.raises(MedSegError, match='no DICOM files'):
        read_dicom_folder(tmp_path)
    with pytest.raises(MedSegError, match='no DICOM files given'):
        read_dicom_series([])
