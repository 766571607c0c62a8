"""MosMed (external test): labelled CT-1 studies only, HU → the lung window, every case in split test; the files are
stored L, A, S like the real MosMed masks, and the PNGs are checked against SimpleITK's LPS reading of them."""
from __future__ import annotations

import json

import cv2
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.covid19 import write_mosmed_release

SLICES = 4


def _lps(path) -> np.ndarray:
    """(Z, H, W) of a NIfTI file as SimpleITK puts it in L, P, S order (rows anterior → posterior, columns the
    patient's right → left: the display convention of the prepared slices)."""
    return sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), 'LPS'))


@pytest.mark.parametrize('orientation', ['LAS', 'LPS'])
def test_mosmed(tmp_path, orientation):
    root = write_mosmed_release(tmp_path / 'raw' / 'COVID19_1110', num_labelled=3, num_unlabelled=2,
                                num_slices=SLICES, orientation=orientation)
    out = tmp_path / 'out'
    prepare(CONVERTERS['mosmed'](), tmp_path / 'raw', out, workers=2, previews=0)
    rows = read_manifest(out)
    assert sorted({r.case_id for r in rows}) == ['study_0255', 'study_0256', 'study_0257']  # CT-0: no masks
    assert {r.split for r in rows} == {'test'}
    assert sorted(p.name for p in (out / 'splits').iterdir()) == ['test.txt']
    assert json.loads((out / 'dataset.json').read_text())['classes'] == ['background', 'infection']
    image, mask = root / 'studies' / 'CT-1' / 'study_0256.nii.gz', root / 'masks' / 'study_0256_mask.nii.gz'
    assert ''.join(nib.aff2axcodes(nib.load(str(image)).affine)) == orientation
    assert ''.join(nib.aff2axcodes(nib.load(str(mask)).affine)) == orientation
    hu, truth = _lps(image).astype(np.float64), _lps(mask)
    assert truth.max() == 1 and hu.min() <= -1000
    by_hand = np.asarray(nib.load(str(mask)).dataobj).transpose(2, 1, 0)   # stored order (z, j, i)
    assert np.array_equal(truth, by_hand[:, ::-1, :] if orientation == 'LAS' else by_hand)
    for k in range(SLICES):
        png = cv2.imread(str(out / 'images' / f'study_0256_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(png, np.clip(np.rint((hu[k] + 1250.0) * 255.0 / 1500.0), 0, 255))
        assert np.array_equal(cv2.imread(str(out / 'masks' / f'study_0256_{k:04d}.png'), cv2.IMREAD_UNCHANGED),
                              truth[k])
