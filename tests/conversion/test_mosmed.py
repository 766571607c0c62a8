"""MosMed (external test): labelled CT-1 studies only, HU → the lung window, every case in split test."""
from __future__ import annotations

import json

import cv2
import nibabel as nib
import numpy as np

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.covid19 import write_mosmed_release

SLICES = 4


def test_mosmed(tmp_path):
    root = write_mosmed_release(tmp_path / 'raw' / 'COVID19_1110', num_labelled=3, num_unlabelled=2,
                                num_slices=SLICES)
    out = tmp_path / 'out'
    prepare(CONVERTERS['mosmed'](), tmp_path / 'raw', out, workers=2, previews=0)
    rows = read_manifest(out)
    assert sorted({r.case_id for r in rows}) == ['study_0255', 'study_0256', 'study_0257']  # CT-0: no masks
    assert {r.split for r in rows} == {'test'}
    assert sorted(p.name for p in (out / 'splits').iterdir()) == ['test.txt']
    assert json.loads((out / 'dataset.json').read_text())['classes'] == ['background', 'infection']
    img = nib.load(str(root / 'studies' / 'CT-1' / 'study_0256.nii.gz'))
    hu = np.asarray(img.dataobj).transpose(2, 1, 0).astype(np.float64)
    mask = np.asarray(nib.load(str(root / 'masks' / 'study_0256_mask.nii.gz')).dataobj).transpose(2, 1, 0)
    assert nib.aff2axcodes(img.affine) == ('L', 'P', 'S') and mask.max() == 1
    for k in range(SLICES):
        png = cv2.imread(str(out / 'images' / f'study_0256_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(png, np.clip(np.rint((hu[k] + 1250.0) * 255.0 / 1500.0), 0, 255))
        assert np.array_equal(cv2.imread(str(out / 'masks' / f'study_0256_{k:04d}.png'), cv2.IMREAD_UNCHANGED),
                              mask[k])
