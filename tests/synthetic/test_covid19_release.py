"""The synthetic COVID-19-CT-Seg release has the real file names, folders and conventions (../shared/NOTES.md)."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np

from mmseg_medical.synthetic.covid19 import write_covid19_release

CORONA = [f'coronacases_{i:03d}' for i in range(1, 11)]
RADIO = ['radiopaedia_4_85506_1', 'radiopaedia_7_85703_0', 'radiopaedia_10_85902_1', 'radiopaedia_10_85902_3',
         'radiopaedia_14_85914_0', 'radiopaedia_27_86410_0', 'radiopaedia_29_86490_1', 'radiopaedia_29_86491_1',
         'radiopaedia_36_86526_0', 'radiopaedia_40_86625_0']


def test_zenodo_layout(tmp_path):
    root = write_covid19_release(tmp_path, 'zenodo', num_slices=3, size=24)
    names = sorted(f'{c}.nii.gz' for c in CORONA + RADIO)
    for folder in ('COVID-19-CT-Seg_20cases', 'Lung_Mask', 'Infection_Mask', 'Lung_and_Infection_Mask'):
        assert sorted(p.name for p in (root / folder).iterdir()) == names
    hu = np.asarray(nib.load(str(root / 'COVID-19-CT-Seg_20cases' / 'coronacases_001.nii.gz')).dataobj)
    pre = np.asarray(nib.load(str(root / 'COVID-19-CT-Seg_20cases' / 'radiopaedia_7_85703_0.nii.gz')).dataobj)
    assert hu.dtype == np.int16 and hu.min() == -1024 and hu.shape == (24, 24, 3)
    assert 0 <= pre.min() and pre.max() <= 255 and pre.max() > 100
    lung, inf, both = (np.asarray(nib.load(str(root / f / 'radiopaedia_7_85703_0.nii.gz')).dataobj)
                       for f in ('Lung_Mask', 'Infection_Mask', 'Lung_and_Infection_Mask'))
    assert set(np.unique(both)) == {0, 1, 2, 3} and set(np.unique(lung)) == {0, 1, 2} and set(np.unique(inf)) == {0, 1}
    assert np.array_equal(inf == 1, both == 3) and np.array_equal(lung > 0, both > 0)


def test_kaggle_layout(tmp_path):
    root = write_covid19_release(tmp_path, 'kaggle', num_slices=3, size=24)
    scans = sorted(p.name for p in (root / 'ct_scans').iterdir())
    assert 'coronacases_org_001.nii' in scans
    assert 'radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii' in scans and len(scans) == 20
    for folder in ('lung_mask', 'infection_mask', 'lung_and_infection_mask'):
        assert sorted(p.name for p in (root / folder).iterdir()) == sorted(f'{c}.nii' for c in CORONA + RADIO)
    with open(root / 'metadata.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and set(rows[0]) == {'ct_scan', 'lung_mask', 'infection_mask', 'lung_and_infection_mask'}
    assert rows[0]['ct_scan'].endswith('ct_scans/coronacases_org_001.nii')
