"""``LateralRandomFlip``: a flip that mirrors the image columns (the patient's left-right axis in the slice
convention) exchanges the paired label values; a row flip does not. Checked against masks flipped with NumPy and
swapped with a lookup table written out by hand, for random masks (property-based)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmseg_medical  # noqa: F401  (registers the transform)
from mmseg.registry import TRANSFORMS

from mmseg_medical.errors import MedSegError

#: COVID-19-CT-Seg store codes: 1 left lung <-> 2 right lung, 4 infection in the left lung <-> 5 in the right.
STORE_SWAP = np.array([0, 2, 1, 3, 5, 4], np.uint8)
NUMPY_AXES = {'horizontal': (1,), 'vertical': (0,), 'diagonal': (0, 1)}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       direction=st.sampled_from(sorted(NUMPY_AXES)))
def test_flip_swaps_pairs_only_when_left_and_right_change_sides(seed, shape, direction):
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 6, size=shape, dtype=np.uint8)
    image = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    flip = TRANSFORMS.build(dict(type='LateralRandomFlip', prob=1.0, direction=direction, swap_pairs=[(1, 2), (4, 5)]))
    out = flip(dict(img=image.copy(), gt_seg_map=mask.copy(), seg_fields=['gt_seg_map']))
    flipped = np.flip(mask, axis=NUMPY_AXES[direction])
    expected = STORE_SWAP[flipped] if direction in ('horizontal', 'diagonal') else flipped
    np.testing.assert_array_equal(out['gt_seg_map'], expected)
    np.testing.assert_array_equal(out['img'], np.flip(image, axis=NUMPY_AXES[direction]))
    assert out['flip'] and out['flip_direction'] == direction


def test_no_flip_keeps_the_mask_and_plain_random_flip_does_not_swap():
    mask = np.array([[1, 0, 2], [4, 3, 5]], np.uint8)
    kept = TRANSFORMS.build(dict(type='LateralRandomFlip', prob=0.0, swap_pairs=[(1, 2)]))(
        dict(img=np.zeros((2, 3, 3), np.uint8), gt_seg_map=mask.copy(), seg_fields=['gt_seg_map']))
    np.testing.assert_array_equal(kept['gt_seg_map'], mask)
    plain = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))(
        dict(img=np.zeros((2, 3, 3), np.uint8), gt_seg_map=mask.copy(), seg_fields=['gt_seg_map']))
    np.testing.assert_array_equal(plain['gt_seg_map'], [[2, 0, 1], [5, 3, 4]])   # mirrored, sides not exchanged


@pytest.mark.parametrize('pairs', [[(1,)], [(1, 1)], [(1, 2), (2, 3)], [(-1, 2)], ['ab'], [(1.5, 2)]])
def test_bad_swap_pairs_are_one_error(pairs):
    with pytest.raises(MedSegError, match='LateralRandomFlip: swap_pairs must be pairs'):
        TRANSFORMS.build(dict(type='LateralRandomFlip', prob=0.5, swap_pairs=pairs))
