"""MosMedData COVID19_1110: the external test set of the COVID-19-CT-Seg benchmark, as a NIfTI-pair spec.

``studies/CT-1/study_0255.nii.gz`` … (HU) with ``masks/study_0255_mask.nii.gz`` (1 = infection) for the
50 labelled studies; studies without a mask are skipped. HU → the benchmark's lung window
[-1250, 250] → [0, 255]; every case is pinned to split ``test`` (``splits/test.txt``).
"""
from __future__ import annotations

from .nifti_pairs import NiftiPairSpec, register_nifti_pairs

MOSMED = register_nifti_pairs(NiftiPairSpec(
    name='mosmed', description='MosMedData COVID-19 CT-1 studies with infection masks (external test, split test)',
    image='studies/CT-1/{case}.nii.gz', label='masks/{case}_mask.nii.gz', case_pattern=r'study_\d{4}',
    classes=('background', 'infection'), dataset_type='MosMedDataset', window='lung', split='test',
    missing_label='skip'))
