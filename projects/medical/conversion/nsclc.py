"""NSCLC-Radiomics lungs and pleural effusions (the PleThora annotations, TCIA) in the COVID-19-CT-Seg
benchmark's NIfTI release, as NIfTI-pair specs: two benchmark sources (Task 2/3 lung: NSCLC lung 322/80;
infection: NSCLC pleural effusion 63/15).

The benchmark distributes its NIfTI conversion of these scans on a Baidu disk only and documents neither
its layout nor its label values. Its split files name the cases ``LUNG1-<nnn>`` (the NSCLC-Radiomics
patient ids) and its baselines are nnU-Net models, so the defaults here are nnU-Net's raw layout:
``imagesTr/LUNG1-001_0000.nii.gz`` + ``labelsTr/LUNG1-001.nii.gz``, lungs 1 left / 2 right, effusion 1.
Every part is an option (:class:`~.nifti_pairs.NiftiPairSpec` ``configurable``):

* ``--image-pattern`` / ``--label-pattern``: paths below the release folder with one ``{case}``, e.g.
  ``--image-pattern '{case}/image.nii.gz' --label-pattern '{case}/lungs.nii.gz'``;
* ``--label-values RAW:CLASS,...``: e.g. ``--label-values 0:0,1:2,2:1`` when 1 is the right lung.

Any other label value is an error naming the file, so a wrong guess is reported, never trained on.
"""
from __future__ import annotations

from .nifti_pairs import NiftiPairSpec, register_nifti_pairs

NSCLC_CASE = r'LUNG1-\d{3}'

NSCLC_LUNG = register_nifti_pairs(NiftiPairSpec(
    name='nsclc-lung', description="NSCLC-Radiomics left and right lung, the COVID-19-CT-Seg benchmark's NIfTI "
                                   'release (Task 2/3 lung source; layout options)',
    image='imagesTr/{case}_0000.nii.gz', label='labelsTr/{case}.nii.gz', case_pattern=NSCLC_CASE,
    classes=('background', 'left_lung', 'right_lung'), dataset_type='NsclcLungDataset', window='lung',
    mirror_pairs=(('left_lung', 'right_lung'),),
    benchmark_splits=('Task201_NSCLCLung_datasplit', 'Task301_NSCLCLung_datasplit'), configurable=True))

NSCLC_PE = register_nifti_pairs(NiftiPairSpec(
    name='nsclc-pe', description="NSCLC-Radiomics pleural effusion, the COVID-19-CT-Seg benchmark's NIfTI release "
                                 '(Task 2/3 infection source; layout options)',
    image='imagesTr/{case}_0000.nii.gz', label='labelsTr/{case}.nii.gz', case_pattern=NSCLC_CASE,
    classes=('background', 'effusion'), dataset_type='NsclcEffusionDataset', window='lung',
    benchmark_splits=('Task204_NSCLCPE_datasplit', 'Task304_NSCLCPE_datasplit'), configurable=True))
