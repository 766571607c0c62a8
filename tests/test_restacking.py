"""Slices back to volumes: the prepared masks restacked and put on the source grid equal the source files."""
from pathlib import Path

import nibabel as nib
import numpy as np

from mmseg_medical.manifest import read_case_geometry
from mmseg_medical.restacking import iter_case_volumes, split_cases, to_source_grid


def test_restacked_masks_on_the_source_grid_equal_the_source_nifti(cranium_data):
    raw = cranium_data.parent / 'raw'
    seen = 0
    for case_id, gt, pred in iter_case_volumes(cranium_data, split='val'):
        assert pred is None
        source = nib.load(str(next(raw.rglob(f'masks/{case_id}.nii'))))
        on_grid = to_source_grid(gt.array, read_case_geometry(cranium_data, case_id))
        np.testing.assert_array_equal(on_grid.nifti_array(), np.asanyarray(source.dataobj))
        np.testing.assert_allclose(on_grid.affine, source.affine, atol=1e-6)
        seen += 1
    assert seen == len(split_cases(cranium_data, 'val')) > 0


def test_predictions_are_read_per_slice_and_a_missing_one_is_named(cranium_data, tmp_path):
    import cv2
    import pytest

    from mmseg_medical.errors import MedSegError
    from mmseg_medical.manifest import read_manifest

    cases = set(split_cases(cranium_data, 'val'))
    rows = [r for r in read_manifest(cranium_data) if r.case_id in cases]
    for r in rows:  # a "prediction" that is the mask shifted by one column
        mask = cv2.imread(str(cranium_data / r.mask), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(tmp_path / f'{r.stem}.png'), np.roll(mask, 1, axis=1))
    found = {c: (g, p) for c, g, p in iter_case_volumes(cranium_data, tmp_path, split='val')}
    assert set(found) == cases
    for gt, pred in found.values():
        np.testing.assert_array_equal(pred.array, np.roll(gt.array, 1, axis=2))
    (tmp_path / f'{rows[-1].stem}.png').unlink()
    with pytest.raises(MedSegError, match=f'no prediction for slice {rows[-1].slice_index} of case {rows[-1].case_id}'):
        list(iter_case_volumes(cranium_data, tmp_path, split='val'))
