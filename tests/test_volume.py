"""``volume.geometry_mismatch``: the image/label geometry check accepts a label just inside each tolerance (spacing
0.1 % relative, direction cosines 1e-3, origin 0.01 mm; and the float32 rounding of a real NIfTI header) and
refuses one just outside, naming what differs. The perturbations are built by hand from the tolerances' values
as documented (README / the module), not from the constants."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.io import read_nifti
from mmseg_medical.volume import Volume, check_same_geometry, geometry_mismatch

TILT = (0.9271838545667874, 0.3746065934159120)   # the real HemSeg label 08154d6b7b's gantry tilt (cos, sin)
SPACING = (0.458984375, 0.458984375, 5.3925166)
DIRECTION = np.array([[-1.0, 0.0, 0.0], [0.0, -TILT[0], -TILT[1]], [0.0, -TILT[1], TILT[0]]]).T  # columns i, j, k
ORIGIN = np.array([125.0, 126.79798, 27.97971])
SHAPE_ZHW = (6, 12, 10)


def _affine(spacing=SPACING, direction=DIRECTION, origin=ORIGIN) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


def _volume(affine) -> Volume:
    return Volume(np.zeros(SHAPE_ZHW, np.uint8), affine=affine)


def _turned(direction: np.ndarray, column: int, towards: int, by: float) -> np.ndarray:
    """``direction`` with one column tilted towards another, which is a world axis (here column 0, (-1, 0, 0)):
    unit length kept, the largest change of a direction cosine is ``by / sqrt(1 + by**2)`` (just below ``by``)."""
    out = direction.copy()
    other = direction[:, towards]
    assert np.abs(other).max() == 1.0
    turned = direction[:, column] + by * other
    out[:, column] = turned / np.linalg.norm(turned)
    return out


CASES = {
    # name: (affine just inside, affine just outside, the word the refusal names)
    'spacing': (_affine(spacing=(SPACING[0] * 1.0009, SPACING[1], SPACING[2])),
                _affine(spacing=(SPACING[0] * 1.0011, SPACING[1], SPACING[2])), 'spacing'),
    'slice spacing': (_affine(spacing=(SPACING[0], SPACING[1], SPACING[2] * 0.9991)),
                      _affine(spacing=(SPACING[0], SPACING[1], SPACING[2] * 0.9989)), 'spacing'),
    'direction': (_affine(direction=_turned(DIRECTION, 1, 0, 0.00095)),
                  _affine(direction=_turned(DIRECTION, 1, 0, 0.00105)), 'orientation'),
    'origin': (_affine(origin=ORIGIN + [0.0, 0.0095, 0.0]), _affine(origin=ORIGIN + [0.0, 0.0, -0.0105]), 'origin'),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_accepts_just_inside_and_refuses_just_outside(name):
    inside, outside, word = CASES[name]
    image = _volume(_affine())
    assert geometry_mismatch(image, _volume(inside)) is None
    why = geometry_mismatch(image, _volume(outside))
    assert why is not None and why.startswith(word), why
    with pytest.raises(MedSegError, match=f'label.nii.gz: label does not match image scan.nii.gz: {word}'):
        check_same_geometry(image, _volume(outside), 'scan.nii.gz', 'label.nii.gz')


def test_float32_header_of_a_real_release_is_accepted(tmp_path):
    """A label written to a NIfTI file (nibabel stores the affine as float32) lies on the float64 grid it came
    from: the rounding (about 1e-5 mm on the origin, 1e-7 relative on the spacing) is far inside the tolerances."""
    affine = _affine()
    path = tmp_path / 'label.nii.gz'
    nib.save(nib.Nifti1Image(np.zeros(SHAPE_ZHW[::-1], np.int16), affine), str(path))
    stored = nib.load(str(path)).affine
    assert not np.array_equal(stored, affine)          # the header did round it
    label = read_nifti(path)
    assert geometry_mismatch(_volume(affine), label) is None


def test_other_shape_is_refused_before_the_affine():
    image = _volume(_affine())
    why = geometry_mismatch(image, Volume(np.zeros((6, 12, 11), np.uint8), affine=_affine()))
    assert why == 'shape (Z, H, W) (6, 12, 11) vs (6, 12, 10)'
