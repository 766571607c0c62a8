import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.labels import LabelMap, binarize_mask, class_statistics, remap_labels


def test_identity_map_keeps_values():
    labels = np.array([[[0, 1, 2]]], np.int16)
    out = LabelMap(('bg', 'a', 'b')).remap(labels)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)


def test_explicit_raw_values_are_remapped():
    out = remap_labels(np.array([[[0, 255, 128]]], np.uint8), {0: 0, 128: 2, 255: 1})
    np.testing.assert_array_equal(out, [[[0, 1, 2]]])


def test_float64_whole_numbers_are_accepted():
    out = LabelMap(('bg', 'vs', 'cochlea')).remap(np.array([[[0.0, 1.0, 2.0]]]), 'lab.nii.gz')
    np.testing.assert_array_equal(out, [[[0, 1, 2]]])


def test_fractional_labels_are_rejected_with_the_file():
    with pytest.raises(MedSegError, match=r'lab\.nii\.gz: label values must be whole numbers'):
        remap_labels(np.array([[[0.0, 0.5]]]), {0: 0, 1: 1}, 'lab.nii.gz')


def test_values_outside_the_map_are_rejected_with_the_values():
    with pytest.raises(MedSegError, match=r'm\.nii: label values \[3, 7\] are outside the label map \[0, 1\]'):
        remap_labels(np.array([[[0, 1, 3, 7]]]), {0: 0, 1: 1}, 'm.nii')
    with pytest.raises(MedSegError, match='outside the label map'):
        remap_labels(np.array([[[-1, 0]]]), {0: 0, 1: 1})


def test_jpeg_masks_are_thresholded_not_compared_to_255():
    jpeg_like = np.array([[3, 120, 128, 250, 255]], np.uint8)
    np.testing.assert_array_equal(binarize_mask(jpeg_like), [[0, 0, 1, 1, 1]])


def test_class_statistics_counts_pixels_and_slices():
    labels = np.zeros((3, 4, 4), np.uint8)
    labels[0, :2, :2] = 1
    labels[2, 0, 0] = 1
    pixels, slices = class_statistics(labels, 3)
    assert pixels.tolist() == [43, 5, 0]
    assert slices.tolist() == [3, 2, 0]
