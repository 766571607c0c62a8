"""Connected-component post-processing on hand-built volumes (component sizes counted by hand)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation.postprocess import (LARGEST, apply_postprocessing, choose_min_sizes, class_dice_by_rule,
                                                  load_rules, min_voxels_from_mm3, remove_small_components,
                                                  save_rules)


def three_blobs() -> np.ndarray:
    """Class 1: a 3x3x3 cube (27 voxels), a 2x2x1 plate (4) and a diagonal neighbour voxel of the cube (1,
    face-disconnected, corner-connected). Class 2: a 2x2x2 cube (8) and a single voxel (1)."""
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = 1
    labels[7:9, 7:9, 7] = 1
    labels[4, 4, 4] = 1
    labels[6:8, 1:3, 1:3] = 2
    labels[9, 0, 9] = 2
    return labels


def test_components_below_size_become_background():
    labels = three_blobs()
    out = remove_small_components(labels, {1: 5})
    expected = labels.copy()
    expected[7:9, 7:9, 7] = 0
    expected[4, 4, 4] = 0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(labels, three_blobs())  # input untouched
    # exactly-at-threshold components stay (4 voxels with min 4); class 2 is not in the rules
    np.testing.assert_array_equal(remove_small_components(labels, {1: 4}) == 1,
                                  (labels == 1) & ~((np.indices(labels.shape) == 4).all(axis=0)))


def test_connectivity_follows_scipy_structures():
    labels = three_blobs()
    # full (26-) connectivity joins the diagonal voxel to the cube: 28 voxels, so it survives min 5
    out = remove_small_components(labels, {1: 5}, connectivity=3)
    assert out[4, 4, 4] == 1 and out[7, 7, 7] == 0
    components, n = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    assert n == 2 and sorted(np.bincount(components.ravel())[1:]) == [4, 28]


def test_largest_keeps_one_component_per_class():
    labels = three_blobs()
    out = remove_small_components(labels, {1: LARGEST, 2: LARGEST})
    assert (out == 1).sum() == 27 and (out == 2).sum() == 8
    assert out[9, 0, 9] == 0 and out[4, 4, 4] == 0


def test_zero_and_absent_classes_change_nothing():
    labels = three_blobs()
    np.testing.assert_array_equal(remove_small_components(labels, {1: 0, 3: 100}), labels)


def test_dice_per_rule_by_hand():
    gt = np.zeros((10, 10, 10), np.uint8)
    gt[1:4, 1:4, 1:4] = 1  # 27 voxels
    pred = three_blobs()  # class 1: the same 27 + 4 + 1 false-positive voxels
    before, after = class_dice_by_rule([(gt, pred)], 1, [LARGEST, 2, 5])
    assert before == [pytest.approx(54 / 59)]
    assert after[LARGEST] == [1.0] and after[5] == [1.0] and after[2] == [pytest.approx(54 / 58)]


def test_choose_min_sizes_keeps_only_improvements():
    empty_gt = np.zeros((10, 10, 10), np.uint8)
    speck = empty_gt.copy()
    speck[0:2, 0:2, 0] = 1  # 4-voxel false positive on a case without the class
    big_gt = empty_gt.copy()
    big_gt[2:8, 2:8, 2:8] = 1  # 216 voxels, predicted exactly
    two_true = empty_gt.copy()
    two_true[1:3, 1:3, 1:3] = 1  # 8 voxels
    two_true[6:9, 6:9, 6:9] = 1  # 27 voxels: both real
    pairs = [(empty_gt, speck), (big_gt, big_gt.copy()), (two_true, two_true.copy())]
    # mean Dice without post-processing: (0 + 1 + 1) / 3. 'largest' keeps the speck (case 1's only component)
    # and drops the real 8-voxel cube of case 3 (Dice 2*27 / (35 + 27)): (0 + 1 + 54/62) / 3. min 5 removes
    # only the speck: 1. min 10 removes the speck and the 8-voxel cube: (1 + 1 + 54/62) / 3.
    before, after = class_dice_by_rule(pairs, 1, [LARGEST, 5, 10])
    assert np.mean(before) == pytest.approx(2 / 3)
    assert np.mean(after[LARGEST]) == pytest.approx((1 + 54 / 62) / 3)
    assert np.mean(after[5]) == 1.0 and np.mean(after[10]) == pytest.approx((2 + 54 / 62) / 3)
    assert choose_min_sizes(pairs, [1, 2], [LARGEST, 5, 10]) == {1: 5, 2: None}
    # without the speck case nothing improves: no rule
    assert choose_min_sizes(pairs[1:], [1], [LARGEST, 5, 10]) == {1: None}


def test_mm3_conversion_and_rule_files(tmp_path):
    assert min_voxels_from_mm3(20.0, (0.5, 0.5, 5.0)) == 16  # 1.25 mm^3 voxels
    assert min_voxels_from_mm3(21.0, (0.5, 0.5, 5.0)) == 17
    path = save_rules(tmp_path / 'pp.json', {1: 20, 2: None, 3: LARGEST}, connectivity=3, chosen_on=['a'])
    assert load_rules(path) == ({1: 20, 3: LARGEST}, 3)
    # the inference hook: with connectivity 3 from the file the diagonal voxel joins the cube and stays
    labels = three_blobs()
    out = apply_postprocessing(labels, path)
    assert out[4, 4, 4] == 1 and out[7, 7, 7] == 0 and (out == 2).sum() == 9  # class 2 has no rule
    np.testing.assert_array_equal(apply_postprocessing(labels, {1: 20, 2: None}),
                                  remove_small_components(labels, {1: 20}))
    (tmp_path / 'bad.json').write_text('{"min_size": {"1": -2}}')
    with pytest.raises(MedSegError, match='rule'):
        load_rules(tmp_path / 'bad.json')
    with pytest.raises(MedSegError, match='connectivity'):
        remove_small_components(three_blobs(), {1: 3}, connectivity=4)
