"""The head CT phantom: determinism, tissue HU ranges, and a label that is exactly the painted bleed."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mmseg_medical.synthetic import BLEED_HU, head_ct_phantom, phantom_spacing
from mmseg_medical.synthetic.phantom import _window

Z, SIZE = 24, 128


@pytest.fixture(scope='module')
def bleeding():
    return head_ct_phantom(Z, SIZE, rng=7, num_bleeds=1)


@pytest.fixture(scope='module')
def healthy():
    return head_ct_phantom(Z, SIZE, rng=8, num_bleeds=0)


def _skull(hu_slice: np.ndarray) -> np.ndarray:
    return hu_slice > 300


def _interior(hu_slice: np.ndarray, margin: int = 0) -> np.ndarray:
    """Intracranial pixels (inside the skull ring), optionally ``margin`` pixels away from the bone."""
    skull = _skull(hu_slice)
    inside = ndimage.binary_fill_holes(skull) & ~skull
    return ndimage.binary_erosion(inside, iterations=margin) if margin else inside


def test_shapes_dtypes_and_hu_range(bleeding):
    hu, label = bleeding
    assert hu.shape == label.shape == (Z, SIZE, SIZE)
    assert hu.dtype == np.int16 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1}
    assert hu.min() >= -1024 and hu.max() <= 3071


def test_same_seed_same_volume_and_generator_accepted(bleeding):
    hu, label = bleeding
    hu2, label2 = head_ct_phantom(Z, SIZE, rng=np.random.default_rng(7), num_bleeds=1)
    np.testing.assert_array_equal(hu, hu2)
    np.testing.assert_array_equal(label, label2)
    hu3, _ = head_ct_phantom(Z, SIZE, rng=9, num_bleeds=1)
    assert np.abs(hu.astype(int) - hu3).mean() > 10


def test_air_outside_the_head(bleeding):
    hu, _ = bleeding
    corners = np.concatenate([hu[:, :8, :8].ravel(), hu[:, -8:, -8:].ravel(), hu[:, :8, -8:].ravel()])
    assert abs(corners.mean() + 1000) < 3
    assert 3 < corners.std() < 8  # CT noise, not a constant
    border = np.concatenate([hu[:, 0].ravel(), hu[:, -1].ravel(), hu[:, :, 0].ravel(), hu[:, :, -1].ravel()])
    assert border.max() < -900  # the head fits in the field of view


def test_head_shrinks_toward_skull_base_and_vertex(bleeding):
    hu, _ = bleeding
    area = (hu > -500).sum(axis=(1, 2))
    middle = area[Z // 2 - 2:Z // 2 + 3].mean()
    assert area[0] < 0.8 * middle and area[-1] < 0.5 * middle
    assert np.argmax(area) not in (0, Z - 1)


@pytest.mark.parametrize('z', [Z // 2 - 3, Z // 2, Z // 2 + 3])
def test_skull_is_a_closed_bony_ring_under_soft_tissue_scalp(bleeding, z):
    hu = bleeding[0][z].astype(float)
    skull = _skull(hu)
    centre = tuple(int(c) for c in ndimage.center_of_mass(hu > -500))
    assert not skull[centre] and ndimage.binary_fill_holes(skull)[centre]  # encloses the brain
    assert np.percentile(hu[skull], 90) > 900  # cortical bone
    assert hu[skull].mean() > 500
    scalp = (hu > -500) & ~ndimage.binary_fill_holes(skull)
    scalp &= ~ndimage.binary_dilation(skull, iterations=1) & (ndimage.binary_erosion(hu > -500, iterations=1))
    assert scalp.sum() > 100
    assert 25 < np.median(hu[scalp]) < 60  # soft tissue, not bone and not air


def test_brain_parenchyma_csf_and_ventricles(healthy):
    hu, _ = healthy
    z = Z // 2
    inside = _interior(hu[z], margin=3)
    assert 22 < np.median(hu[z][inside]) < 42  # grey ~40 / white ~26
    smooth = ndimage.gaussian_filter(hu[z].astype(float), 1.0)
    rows, cols = np.nonzero(inside)
    near_centre = (np.abs(rows - rows.mean()) < 25) & (np.abs(cols - cols.mean()) < 20)
    csf = smooth[rows[near_centre], cols[near_centre]] < 15
    assert csf.sum() > 40  # the lateral ventricles
    left = cols[near_centre][csf] < cols.mean()
    assert 0.25 < left.mean() < 0.75  # two of them, one each side of the midline


def test_bleed_hu_and_contrast_against_surrounding_brain(bleeding):
    hu, label = bleeding
    bleed = label.astype(bool)
    assert BLEED_HU[0] <= hu[bleed].mean() <= BLEED_HU[1]
    assert (hu[bleed] > 50).mean() > 0.97
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    ring = ndimage.binary_dilation(bleed, in_plane, iterations=6) & ~ndimage.binary_dilation(bleed, in_plane, 2)
    ring &= (hu > -20) & (hu < 100)
    assert hu[bleed].mean() - hu[ring].mean() > 25


def _label_mismatches(hu: np.ndarray, label: np.ndarray) -> list:
    """What is wrong with ``label`` as the exact support of the bright (bleed) voxels of ``hu``."""
    problems = []
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    labelled = label.astype(bool)
    inner_edge = labelled & ~ndimage.binary_erosion(labelled, in_plane)
    outer_edge = ndimage.binary_dilation(labelled, in_plane) & ~labelled & (hu < 300)
    if (hu[inner_edge] > 50).mean() < 0.95:
        problems.append('labelled edge voxels are not bleed-bright')
    if (hu[outer_edge] > 50).mean() > 0.05:
        problems.append('bleed-bright voxels just outside the label')
    for z in range(label.shape[0]):
        inside = _interior(hu[z], margin=4)
        bright = inside & (ndimage.uniform_filter(hu[z].astype(float), 3) > 55)
        if (labelled[z] & ~_interior(hu[z])).any():
            problems.append(f'slice {z}: label outside the brain')
        if (bright & ~ndimage.binary_dilation(labelled[z])).sum() > 2:
            problems.append(f'slice {z}: unlabelled bright blob')
    return problems


def test_label_is_exactly_the_bright_region(bleeding):
    hu, label = bleeding
    assert _label_mismatches(hu, label) == []


def test_label_check_catches_a_one_pixel_error(bleeding):
    hu, label = bleeding
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    assert _label_mismatches(hu, ndimage.binary_dilation(label, in_plane).astype(np.uint8))
    assert _label_mismatches(hu, ndimage.binary_erosion(label, in_plane).astype(np.uint8))
    assert _label_mismatches(hu, np.roll(label, 2, axis=2))


def test_bleed_size_and_extent(bleeding):
    hu, label = bleeding
    slices = np.flatnonzero(label.any(axis=(1, 2)))
    assert len(slices) >= 3 and np.all(np.diff(slices) == 1)
    assert ndimage.label(label)[1] == 1
    shares = [label[z].sum() / _interior(hu[z]).sum() for z in slices]
    assert 0.04 <= max(shares) <= 0.15
    assert min(shares) >= 0.01


def test_no_bleed_patient_has_empty_label_and_no_hyperdense_brain(healthy):
    hu, label = healthy
    assert label.sum() == 0
    for z in range(Z):
        inside = _interior(hu[z], margin=4)
        assert (inside & (ndimage.uniform_filter(hu[z].astype(float), 3) > 55)).sum() <= 2


def test_two_bleeds_and_other_sizes():
    hu, label = head_ct_phantom(16, 64, rng=3, num_bleeds=2)
    assert hu.shape == (16, 64, 64) and label.any()
    assert BLEED_HU[0] <= hu[label == 1].mean() <= BLEED_HU[1]
    assert hu[:, 0].max() < -900


@pytest.mark.parametrize('kwargs', [dict(num_slices=0), dict(size=16), dict(num_bleeds=-1)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        head_ct_phantom(**kwargs)


def test_spacing_and_window():
    assert phantom_spacing(128) == (round(230 / 128, 4), round(230 / 128, 4), 5.0)
    hu = np.array([-1000, 0, 40, 80, 2000], dtype=np.int16)
    np.testing.assert_array_equal(_window(hu, 40, 80), [0, 0, 128, 255, 255])
