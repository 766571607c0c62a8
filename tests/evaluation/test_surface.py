"""Surface distances, NSD, HD95 and ASSD against analytic cases, DeepMind's own test values and a
brute-force whole-volume reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import surface as S
from mmseg_medical.evaluation import (BOTH_EMPTY, GT_EMPTY, PRED_EMPTY, assd, average_surface_distance,
                                      contour_length_table, hd95, nsd, robust_hausdorff, surface_area_table,
                                      surface_distances, volume_diagonal)

FIELDS = ('distances_gt_to_pred', 'distances_pred_to_gt', 'surfel_areas_gt', 'surfel_areas_pred')


def ball(shape, radius_mm, spacing):
    """Voxels whose centre lies within ``radius_mm`` of the array centre (2D disc or 3D sphere)."""
    grid = np.indices(shape).astype(float)
    centre = [(n - 1) / 2 for n in shape]
    dist2 = sum(((grid[i] - centre[i]) * spacing[i]) ** 2 for i in range(len(shape)))
    return dist2 <= radius_mm ** 2


def reference_surface_distances(gt, pred, spacing):
    """The DeepMind definition computed on the whole (zero-padded) volume, without any cropping.

    Neighbour codes come from ``ndimage.correlate`` with DeepMind's kernel (independent of the slicing
    used by the implementation); distances from whole-volume distance transforms.
    """
    if gt.ndim == 2:
        kernel, table, full = np.array([[8, 4], [2, 1]]), contour_length_table(spacing), 15
    else:
        kernel, table, full = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]]), surface_area_table(spacing), 255
    out = {}
    borders, codes = [], []
    for mask in (gt, pred):
        padded = np.pad(mask.astype(np.uint8), [(0, 1)] * mask.ndim)  # correlate's cval covers the low side
        code = ndimage.correlate(padded, kernel, mode='constant', cval=0)
        codes.append(code)
        borders.append((code != 0) & (code != full))
    dist_to_gt = ndimage.distance_transform_edt(~borders[0], sampling=spacing)
    dist_to_pred = ndimage.distance_transform_edt(~borders[1], sampling=spacing)
    pairs = {'gt': (dist_to_pred[borders[0]], table[codes[0][borders[0]]]),
             'pred': (dist_to_gt[borders[1]], table[codes[1][borders[1]]])}
    for name, (dist, area) in pairs.items():
        order = np.lexsort((area, dist))
        other = 'pred' if name == 'gt' else 'gt'
        out[f'distances_{name}_to_{other}'] = dist[order]
        out[f'surfel_areas_{name}'] = area[order]
    return out


# --- lookup tables ---------------------------------------------------------------------------------

def test_contour_length_table_values():
    table = contour_length_table((2.0, 1.0))
    diag = 0.5 * math.sqrt(5.0)
    assert table[0] == 0 and table[15] == 0
    assert table[0b0011] == 1.0 and table[0b1100] == 1.0  # horizontal edge: spacing of axis 1
    assert table[0b0101] == 2.0 and table[0b1010] == 2.0  # vertical edge: spacing of axis 0
    assert table[0b0110] == pytest.approx(2 * diag) and table[0b0001] == pytest.approx(diag)


def test_surface_area_table_properties():
    table = surface_area_table((1.0, 1.0, 1.0))
    assert len(S._NEIGHBOUR_CODE_TO_NORMALS) == 256
    assert table[0] == 0 and table[255] == 0
    assert (table[1:255] > 0).all()
    assert table[1] == pytest.approx(math.sqrt(3) / 8)  # one corner cut off
    assert table[0b00001111] == pytest.approx(1.0)  # flat face across the 2x2x2 cube
    # A configuration and its complement have the same surface.
    aniso = surface_area_table((0.7, 1.3, 2.9))
    np.testing.assert_allclose(aniso, aniso[::-1])
    # The flat face perpendicular to axis 0 scales with the spacing of axes 1 and 2 only.
    assert aniso[0b00001111] == pytest.approx(1.3 * 2.9)


def test_sphere_area_close_to_analytic():
    spacing = (1.0, 1.0, 1.0)
    sd = surface_distances(ball((50, 50, 50), 15.0, spacing), ball((50, 50, 50), 15.0, spacing), spacing)
    area = sd.surfel_areas_gt.sum()
    assert area == pytest.approx(4 * math.pi * 15.5 ** 2, rel=0.1)


# --- DeepMind's own test values -----------------------------------------------------------------

def test_2d_two_pixels_2mm_away_deepmind_values():
    gt, pred = np.zeros((128, 128), bool), np.zeros((128, 128), bool)
    gt[50, 70] = pred[50, 72] = True
    sd = surface_distances(gt, pred, (2, 1))
    diag = 0.5 * math.sqrt(5)
    np.testing.assert_array_equal(sd.surfel_areas_gt, [diag] * 4)
    np.testing.assert_array_equal(sd.distances_gt_to_pred, [1.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(sd.distances_pred_to_gt, [1.0, 1.0, 2.0, 2.0])
    assert average_surface_distance(sd) == pytest.approx((1.5, 1.5))
    assert hd95(sd) == 2.0 and robust_hausdorff(sd, 100) == 2.0
    assert nsd(sd, 1.0) == pytest.approx(0.5)


def test_2d_two_squares_shifted_deepmind_values():
    gt = np.zeros((6, 6), bool)
    gt[1:3, 1:3] = True
    pred = np.zeros((6, 6), bool)
    pred[1:4, 1:3] = True
    vertical, horizontal = 2.0, 1.0
    diag = 0.5 * math.sqrt(5)
    sd = surface_distances(gt, pred, (vertical, horizontal))
    exp_area_gt = np.array([diag, horizontal, diag, vertical, diag, horizontal, diag, vertical])
    exp_area_pred = np.array([diag, horizontal, diag, vertical, vertical, diag, horizontal, diag, vertical,
                              vertical])
    exp_gt = np.array([0.0] * 5 + [horizontal] + [0.0] * 2)
    exp_pred = np.array([0.0] * 5 + [vertical] * 3 + [0.0] * 2)
    for dist, area, got_dist, got_area in ((exp_gt, exp_area_gt, sd.distances_gt_to_pred, sd.surfel_areas_gt),
                                           (exp_pred, exp_area_pred, sd.distances_pred_to_gt, sd.surfel_areas_pred)):
        order = np.lexsort((area, dist))
        np.testing.assert_allclose(got_dist, dist[order])
        np.testing.assert_allclose(got_area, area[order])


def test_3d_two_voxels_deepmind_values():
    gt, pred = np.zeros((128, 128, 128), bool), np.zeros((128, 128, 128), bool)
    gt[50, 60, 70] = pred[50, 60, 72] = True
    sd = surface_distances(gt, pred, (3, 2, 1))
    assert average_surface_distance(sd) == pytest.approx((1.5, 1.5))
    assert hd95(sd) == pytest.approx(2.0)
    assert robust_hausdorff(sd, 100) == pytest.approx(2.0)
    assert nsd(sd, 1.0) == pytest.approx(0.5)


def test_3d_two_cubes_shifted_deepmind_values():
    """Values from DeepMind's surface_distance_test.py (masks touching the volume border)."""
    gt, pred = np.zeros((100, 100, 100), bool), np.zeros((100, 100, 100), bool)
    gt[0:50] = True
    pred[0:51] = True
    sd = surface_distances(gt, pred, (2, 1, 1))
    asd_gt, asd_pred = average_surface_distance(sd)
    assert asd_gt == pytest.approx(0.322, abs=1e-3) and asd_pred == pytest.approx(0.339, abs=1e-3)
    assert robust_hausdorff(sd, 100) == pytest.approx(2.0) and hd95(sd) == pytest.approx(2.0)
    assert nsd(sd, 1.0) == pytest.approx(0.836, abs=1e-3)


# --- analytic cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize('shape, spacing', [((80, 80), (1.0, 1.0)), ((120, 90), (0.5, 0.8)),
                                            ((50, 50, 50), (1.0, 1.0, 1.0)), ((60, 60, 30), (0.8, 0.8, 2.0))])
def test_concentric_balls(shape, spacing):
    r1, r2 = 10.0, 18.0
    gap, voxel = r2 - r1, max(spacing)
    sd = surface_distances(ball(shape, r1, spacing), ball(shape, r2, spacing), spacing)
    assert sd.empty == ''
    assert hd95(sd) == pytest.approx(gap, abs=voxel)
    assert assd(sd) == pytest.approx(gap, abs=voxel)
    assert nsd(sd, gap - 2 * voxel) == 0.0
    assert nsd(sd, gap + voxel) == 1.0
    # swapping the masks swaps the directions and keeps the symmetric metrics
    swapped = surface_distances(ball(shape, r2, spacing), ball(shape, r1, spacing), spacing)
    np.testing.assert_allclose(swapped.distances_gt_to_pred, sd.distances_pred_to_gt)
    assert hd95(swapped) == hd95(sd) and assd(swapped) == pytest.approx(assd(sd))


@pytest.mark.parametrize('ndim', [2, 3])
def test_identical_masks(ndim):
    spacing = (0.7, 1.9, 2.5)[:ndim]
    mask = ball((30,) * ndim, 8.0, spacing)
    sd = surface_distances(mask, mask, spacing)
    assert sd.distances_gt_to_pred.size > 0
    assert not sd.distances_gt_to_pred.any() and not sd.distances_pred_to_gt.any()
    assert hd95(sd) == 0.0 and assd(sd) == 0.0 and nsd(sd, 0.0) == 1.0


def test_anisotropic_shift_along_coarse_and_fine_axes():
    spacing = (3.0, 0.5, 0.5)
    shape = (12, 30, 30)
    gt = np.zeros(shape, bool)
    gt[3:7, 5:25, 5:25] = True
    along_coarse = np.roll(gt, 1, axis=0)
    sd = surface_distances(gt, along_coarse, spacing)
    assert robust_hausdorff(sd, 100) == pytest.approx(3.0)
    assert hd95(sd) == pytest.approx(3.0)
    assert nsd(sd, 2.9) < 1.0 and nsd(sd, 3.0) == 1.0

    along_fine = np.roll(gt, 1, axis=2)
    sd = surface_distances(gt, along_fine, spacing)
    all_d = np.concatenate([sd.distances_gt_to_pred, sd.distances_pred_to_gt])
    assert set(np.unique(all_d)) == {0.0, 0.5}
    assert hd95(sd) == pytest.approx(0.5)
    assert 0.0 < assd(sd) < 0.5


def test_assd_is_area_weighted_over_both_directions():
    rng = np.random.default_rng(3)
    gt = ndimage.binary_dilation(rng.random((20, 20, 20)) > 0.995, iterations=3)
    pred = ndimage.binary_dilation(rng.random((20, 20, 20)) > 0.995, iterations=2)
    sd = surface_distances(gt, pred, (1.0, 1.5, 2.0))
    d_gt, d_pred = average_surface_distance(sd)
    a_gt, a_pred = sd.surfel_areas_gt.sum(), sd.surfel_areas_pred.sum()
    assert assd(sd) == pytest.approx((d_gt * a_gt + d_pred * a_pred) / (a_gt + a_pred))


# --- cropping is exact -----------------------------------------------------------------------------

@pytest.mark.parametrize('seed', range(12))
def test_matches_whole_volume_reference_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    ndim = 2 if seed % 3 == 0 else 3
    shape = tuple(int(n) for n in rng.integers(5, 22, ndim))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, ndim))
    if seed % 2:
        gt, pred = rng.random(shape) < 0.3, rng.random(shape) < 0.2
    else:  # small blobs somewhere inside (possibly far apart), or touching the border
        gt, pred = np.zeros(shape, bool), np.zeros(shape, bool)
        for mask in (gt, pred):
            lo = rng.integers(0, np.array(shape) - 2)
            hi = lo + rng.integers(1, 5, ndim)
            mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
            mask &= rng.random(shape) < 0.8
            mask.flat[rng.integers(mask.size)] = True
    ref = reference_surface_distances(gt, pred, spacing)
    sd = surface_distances(gt, pred, spacing)
    for field in FIELDS:
        np.testing.assert_allclose(getattr(sd, field), ref[field], rtol=1e-12, atol=1e-12)


def test_crop_far_from_other_structure_is_exact():
    """Two small structures at opposite corners: the crop must span both."""
    spacing = (1.5, 0.5, 0.8)
    gt, pred = np.zeros((30, 40, 25), bool), np.zeros((30, 40, 25), bool)
    gt[1:3, 1:4, 1:3] = True
    pred[26:29, 35:39, 20:24] = True
    ref = reference_surface_distances(gt, pred, spacing)
    sd = surface_distances(gt, pred, spacing)
    for field in FIELDS:
        np.testing.assert_allclose(getattr(sd, field), ref[field], rtol=1e-12)
    assert nsd(sd, 1.0) == 0.0


# --- empty masks -----------------------------------------------------------------------------------

@pytest.mark.parametrize('ndim', [2, 3])
def test_empty_mask_policy(ndim):
    spacing = (0.5, 2.0, 3.0)[:ndim]
    shape = (10, 12, 14)[:ndim]
    diag = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    assert volume_diagonal(shape, spacing) == pytest.approx(diag)
    empty = np.zeros(shape, bool)
    full = np.zeros(shape, bool)
    full[(slice(2, 5),) * ndim] = True

    sd = surface_distances(empty, empty, spacing)
    assert sd.empty == BOTH_EMPTY
    assert nsd(sd, 1.0) == 1.0 and hd95(sd) == 0.0 and assd(sd) == 0.0

    sd = surface_distances(empty, full, spacing)
    assert sd.empty == GT_EMPTY
    assert sd.surfel_areas_gt.size == 0 and np.isinf(sd.distances_pred_to_gt).all()
    assert nsd(sd, 100.0) == 0.0 and hd95(sd) == pytest.approx(diag) and assd(sd) == pytest.approx(diag)

    sd = surface_distances(full, empty, spacing)
    assert sd.empty == PRED_EMPTY
    assert nsd(sd, 100.0) == 0.0 and hd95(sd) == pytest.approx(diag) and assd(sd) == pytest.approx(diag)
    assert average_surface_distance(sd) == (pytest.approx(diag), pytest.approx(diag))


def test_bad_inputs_raise_medseg_error():
    with pytest.raises(MedSegError, match='shape'):
        surface_distances(np.zeros((4, 4), bool), np.zeros((4, 5), bool), (1, 1))
    with pytest.raises(MedSegError, match='spacing'):
        surface_distances(np.zeros((4, 4), bool), np.zeros((4, 4), bool), (1, 1, 1))
    with pytest.raises(MedSegError, match='positive'):
        surface_distances(np.zeros((4, 4), bool), np.zeros((4, 4), bool), (1, 0))
    with pytest.raises(MedSegError, match='2D and 3D'):
        surface_distances(np.zeros((2, 2, 2, 2), bool), np.zeros((2, 2, 2, 2), bool), (1, 1, 1, 1))
