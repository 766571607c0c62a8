"""StructSeg 2019 (MICCAI 2019 Automatic Structure Segmentation for Radiotherapy Planning) as NIfTI-pair specs:
the lungs of the thoracic OAR task and the lung gross target volume, two COVID-19-CT-Seg benchmark sources.

The challenge's training releases hold one numbered folder per patient, ``<n>/data.nii.gz`` (HU) and
``<n>/label.nii.gz``, inside ``Thoracic_OAR/`` (1 left lung, 2 right lung, the other organs 3..6) and
``Lung_GTV/`` (1 gross target volume). ``--src`` may be the download folder holding both (each spec looks
for its own folder by name) or the release folder itself.

The benchmark's split files name the cases ``train_<n>`` (Task200/300 StructSeg lung and Task203/303
StructSeg tumour: one file, 50 names ``train_1`` … ``train_50``); here they are read as the release's
folder ``<n>/`` (case id ``<n>``), the numbering of both releases. Its conversion script is not published,
so that correspondence is the folder numbering, not a checked fact. Infection subtask: the GTV is the
benchmark's lesion class (read as ``infection`` by :class:`~mmseg_medical.datasets.Covid19Dataset`).
"""
from __future__ import annotations

from .nifti_pairs import NiftiPairSpec, register_nifti_pairs

STRUCTSEG_LUNG = register_nifti_pairs(NiftiPairSpec(
    name='structseg-lung', description='StructSeg 2019 Thoracic OAR, lungs only (COVID-19-CT-Seg Task 2/3 lung source)',
    image='{case}/data.nii.gz', label='{case}/label.nii.gz', case_pattern=r'\d+',
    classes=('background', 'left_lung', 'right_lung'), raw_values={0: 0, 1: 1, 2: 2}, others='background',
    dataset_type='StructSegLungDataset', window='lung', release_names=('Thoracic_OAR',),
    mirror_pairs=(('left_lung', 'right_lung'),),
    benchmark_splits=('Task200_StructSegLung_datasplit', 'Task300_StructSegLung_datasplit'),
    official_name='train_{case}'))

STRUCTSEG_GTV = register_nifti_pairs(NiftiPairSpec(
    name='structseg-gtv', description='StructSeg 2019 Lung GTV: gross target volume of lung cancer '
                                      '(COVID-19-CT-Seg Task 2/3 infection source)',
    image='{case}/data.nii.gz', label='{case}/label.nii.gz', case_pattern=r'\d+',
    classes=('background', 'gtv'), dataset_type='StructSegGtvDataset', window='lung', release_names=('Lung_GTV',),
    benchmark_splits=('Task203_StructSegTumor_datasplit', 'Task303_StructSegTumor_datasplit'),
    official_name='train_{case}'))
