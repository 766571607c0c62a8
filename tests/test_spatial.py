"""In-plane resampling / centred cropping (mmseg_medical.spatial) against SimpleITK and hand-made crops."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.errors import MedSegError
from mmseg_medical.spatial import apply_spatial, invert_spatial
from mmseg_medical.volume import Volume


def _sitk_resample(array_zhw: np.ndarray, spacing, target: float, nearest: bool):
    """SimpleITK's Resample onto a grid with the same origin and direction at ``target`` mm in-plane."""
    image = sitk.GetImageFromArray(array_zhw)          # sitk index (x, y, z) = (column, row, slice)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin((3.0, -7.0, 11.0))
    z, h, w = array_zhw.shape
    size = [int(round(w * spacing[0] / target)), int(round(h * spacing[1] / target)), z]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
                        image.GetOrigin(), (target, target, spacing[2]), image.GetDirection(), 0.0,
                        image.GetPixelID())
    return sitk.GetArrayFromImage(out), out


def _volume(array: np.ndarray, spacing) -> Volume:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (3.0, -7.0, 11.0)
    return Volume(array=array, spacing=tuple(spacing), affine=affine, source='scan.nii.gz')


@pytest.mark.parametrize('spacing', [(0.5, 0.6, 1.5), (0.3, 0.35, 1.0)])
def test_resampling_matches_simpleitk(spacing):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 30, size=(3, 37, 41)).astype(np.float32)
    label = rng.integers(0, 3, size=(3, 37, 41)).astype(np.float64)    # real labels are float64
    new_image, new_label, record = apply_spatial(_volume(image, spacing), _volume(label, spacing), 0.41, None)
    ref_image, out = _sitk_resample(image, spacing, 0.41, nearest=False)
    ref_label, _ = _sitk_resample(label, spacing, 0.41, nearest=True)
    assert new_image.array.shape == ref_image.shape and record['shape_hw'] == list(ref_image.shape[1:])
    np.testing.assert_allclose(new_image.array, ref_image, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(new_label.array, ref_label)
    assert new_label.array.dtype == np.float64
    assert new_image.spacing == pytest.approx((0.41, 0.41, spacing[2]))
    for index in [(0, 0, 0), (5, 9, 2), (ref_image.shape[2] - 1, ref_image.shape[1] - 1, 1)]:
        world = new_image.affine @ np.array([*index, 1.0])
        assert world[:3] == pytest.approx(out.TransformIndexToPhysicalPoint(index))


def test_crop_and_pad_by_hand():
    array = np.arange(2 * 6 * 9, dtype=np.float32).reshape(2, 6, 9)
    cropped, _, record = apply_spatial(_volume(array, (1.0, 1.0, 2.0)), None, None, 4)
    np.testing.assert_array_equal(cropped.array, array[:, 1:5, 2:6])       # offsets (6-4)//2, (9-4)//2
    assert record['crop_offset_yx'] == [1, 2]
    assert (cropped.affine @ [0, 0, 0, 1])[:3] == pytest.approx((3.0 + 2, -7.0 + 1, 11.0))
    padded, _, record = apply_spatial(_volume(array, (1.0, 1.0, 2.0)), None, None, 8)
    expected = np.zeros((2, 8, 8), np.float32)
    expected[:, 1:7, :] = array[:, :, 0:8]                                 # rows padded, columns cropped
    np.testing.assert_array_equal(padded.array, expected)
    assert record['crop_offset_yx'] == [-1, 0]
    back = invert_spatial(padded.array.astype(np.uint8), record)
    assert back.shape == array.shape
    np.testing.assert_array_equal(back[:, :, :8], array[:, :, :8].astype(np.uint8))
    assert not back[:, :, 8].any()                                          # outside the crop: background


def test_upsample_and_crop_round_trip_is_exact():
    """Property: for target spacing <= source spacing and a crop holding the foreground, the inverse
    gives every label back."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        sx, sy = rng.uniform(0.41, 1.2, size=2)
        h, w = rng.integers(20, 60, size=2)
        label = np.zeros((2, h, w), np.uint8)
        label[:, h // 2 - 4:h // 2 + 3, w // 2 - 5:w // 2 + 2] = rng.integers(1, 3, size=(2, 7, 7))
        image = _volume(rng.normal(size=(2, h, w)).astype(np.float32), (sx, sy, 1.5))
        _, new_label, record = apply_spatial(image, _volume(label, (sx, sy, 1.5)), 0.41, int(rng.integers(24, 90)))
        np.testing.assert_array_equal(invert_spatial(new_label.array, record), label)


def test_downsampling_inverse_has_source_shape_and_overlaps():
    yy, xx = np.mgrid[:64, :64]
    label = ((yy - 30) ** 2 + (xx - 34) ** 2 < 15 ** 2).astype(np.uint8)[None].repeat(2, 0)
    image = _volume(label.astype(np.float32), (0.3, 0.3, 1.0))
    _, small, record = apply_spatial(image, _volume(label, (0.3, 0.3, 1.0)), 0.7, 24)
    back = invert_spatial(small.array, record)
    assert back.shape == label.shape
    dice = 2 * np.sum(back & label) / (back.sum() + label.sum())
    assert dice > 0.95


def test_bad_inputs_are_one_line_errors():
    volume = Volume(array=np.zeros((1, 8, 8), np.float32), source='slices/')
    with pytest.raises(MedSegError, match=r'^slices/: the scan records no voxel spacing'):
        apply_spatial(volume, None, 0.41, None)
    _, _, record = apply_spatial(_volume(np.zeros((1, 8, 8), np.float32), (1, 1, 1)), None, None, 4)
    with pytest.raises(MedSegError, match=r'does not match the recorded in-plane grid \[4, 4\]'):
        invert_spatial(np.zeros((1, 5, 4), np.uint8), record)


def test_label_losses_split_into_outside_the_crop_and_resampling():
    """Display 12 x 20 at 1 mm → 2 mm (6 x 10; resampled pixel i on source pixel 2i, source pixel j back from
    resampled floor(j / 2 + 0.5)) → crop 8: rows padded, resampled columns 0 and 9 cut, i.e. display
    columns 0 and 17..19."""
    from mmseg_medical.conversion.engine import spatial_label_losses

    label = np.zeros((2, 12, 20), np.uint8)
    label[0, 0:4, 0] = 1             # 4 voxels in display column 0: outside the crop
    label[1, 4:8, 4:8] = 1           # 16 voxels ending on odd row/column 7: row 7 and column 7 lost (7)
    label[1, 2, 18] = 2              # outside, and the class's only voxel
    image = _volume(label.astype(np.float32), (1.0, 1.0, 1.0))
    _, small, record = apply_spatial(image, _volume(label, (1.0, 1.0, 1.0)), 2.0, 8)
    assert record['crop_offset_yx'] == [-1, 1]
    removed, warnings = spatial_label_losses('x', label, small.array, record, ('background', 'a', 'b'))
    assert removed == {'a': {'source_voxels': 20, 'outside_crop': 4, 'resampling': 7},
                       'b': {'source_voxels': 1, 'outside_crop': 1, 'resampling': 0}}
    assert warnings == [
        'warning: x: --spacing 2 --crop 8 removes 11 of 20 labelled voxels of a (4 outside the crop window, '
        '7 by resampling)',
        'warning: x: --crop 8 removes 1 of 1 labelled voxels of b (outside the crop window); none left on the '
        'prepared slices']
    back = invert_spatial(small.array, record)
    assert np.count_nonzero((label == 1) & (back != 1)) == 11    # the same round trip, counted directly
