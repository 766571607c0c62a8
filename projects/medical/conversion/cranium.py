"""Cranium: CT-ICH head CT with intracranial hemorrhage masks (Kaggle / physionet ct-ich 1.0.0).

Two layouts of the same release, both accepted (``--layout auto`` prefers NIfTI, which keeps HU):

* JPG:   ``Patients_CT/<id>/brain/<n>.jpg`` (brain window, 8-bit) + ``<n>_HGE_Seg.jpg`` (JPEG mask, only
  for slices with hemorrhage; other slices are all background). Slice order = ``n``. The JPGs are the
  scanner software's video export at level 40 / width 120, already in radiological display orientation
  (the masks were drawn on them), so they are kept as they are. They carry no spacing: it is taken from
  ``ct_scans/<id>.nii`` of the same patient when that file is there (else distances are in voxels).
* NIfTI: ``ct_scans/<id>.nii`` (HU) + ``masks/<id>.nii`` (0/1); HU → ``--window`` (default
  ``ctich-brain`` = level 40 / width 120, the JPG export's window) and the display slice convention, so
  both layouts give the same slices and a model trained on one segments the other.

Case id = the 3-digit patient id. Split: patients 80/20 train/val, seeded and stratified on hemorrhage.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS, KeepUint8
from ..io.nifti import nifti_display_spacing, read_nifti
from ..io.slices import natural_key, read_image_2d, read_slice_files
from ..labels import LabelMap, binarize_mask
from ..volume import Volume
from .base import CaseSource, DatasetConverter, find_release_dir, register_converter

RELEASE = 'computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0'
CLASSES = ('background', 'hemorrhage')
MASK_SUFFIX = '_HGE_Seg'
JPG_DIR, CT_DIR, MASK_DIR = 'Patients_CT', 'ct_scans', 'masks'
DEFAULT_WINDOW = 'ctich-brain'


def _has_jpg(d: Path) -> bool:
    return (d / JPG_DIR).is_dir()


def _has_nifti(d: Path) -> bool:
    return (d / CT_DIR).is_dir()


@register_converter
class CraniumConverter(DatasetConverter):
    name = 'cranium'
    description = 'CT-ICH head CT hemorrhage (Kaggle JPG layout or physionet NIfTI layout)'
    label_map = LabelMap(CLASSES)
    expected_layout = (f'the {RELEASE} folder (at any depth) with {JPG_DIR}/<id>/brain/<n>.jpg '
                       f'(JPG layout) or {CT_DIR}/<id>.nii + {MASK_DIR}/<id>.nii (NIfTI layout)')
    dataset_type = 'CraniumDataset'

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--layout', choices=('auto', 'jpg', 'nifti'), default='auto',
                            help='which layout to read (auto: NIfTI if present, else JPG)')
        parser.add_argument('--window', choices=sorted(WINDOWS), default=DEFAULT_WINDOW,
                            help=f'HU window for the NIfTI layout (default {DEFAULT_WINDOW}: level 40 / width 120, '
                                 'the window of the release\'s JPGs)')

    @property
    def layout(self) -> str:
        return self.options.get('layout') or 'auto'

    def settings(self) -> dict:
        return {**self.options, 'layout': self.layout, 'window': self.options.get('window') or DEFAULT_WINDOW}

    def find_cases(self, src: Path) -> List[CaseSource]:
        marker = {'jpg': _has_jpg, 'nifti': _has_nifti}.get(self.layout, lambda d: _has_jpg(d) or _has_nifti(d))
        what = {'jpg': f'{JPG_DIR}/<id>/brain/<n>.jpg', 'nifti': f'{CT_DIR}/<id>.nii + {MASK_DIR}/<id>.nii'}
        release = find_release_dir(src, marker, what.get(self.layout, self.expected_layout))
        use_nifti = self.layout == 'nifti' or (self.layout == 'auto' and _has_nifti(release))
        return self._nifti_cases(release) if use_nifti else self._jpg_cases(release)

    def _jpg_cases(self, release: Path) -> List[CaseSource]:
        cases = []
        for patient in sorted(p for p in (release / JPG_DIR).iterdir() if p.is_dir()):
            brain = patient / 'brain'
            slices = sorted((p for p in brain.glob('*.jpg') if not p.stem.endswith(MASK_SUFFIX)), key=natural_key)
            if not slices:
                raise MedSegError(brain, 'no brain-window slices <n>.jpg in this patient folder')
            masks = [s.with_name(f'{s.stem}{MASK_SUFFIX}.jpg') for s in slices]
            nifti = next((p for p in (release / CT_DIR / f'{patient.name}{e}' for e in ('.nii', '.nii.gz'))
                          if p.is_file()), None)
            cases.append(CaseSource(patient.name, slices, [m if m.is_file() else None for m in masks],
                                    aux=nifti, extra={'layout': 'jpg', 'spacing_from': nifti}))
        return cases

    def _nifti_cases(self, release: Path) -> List[CaseSource]:
        cases = []
        for scan in sorted((release / CT_DIR).glob('*.nii*')):
            case_id = scan.name.split('.')[0]
            mask = next((release / MASK_DIR / f'{case_id}{ext}' for ext in ('.nii', '.nii.gz')
                         if (release / MASK_DIR / f'{case_id}{ext}').is_file()), None)
            if mask is None:
                raise MedSegError(scan, f'no mask {MASK_DIR}/{case_id}.nii for this scan')
            cases.append(CaseSource(case_id, scan, mask, extra={'layout': 'nifti'}))
        return cases

    def read_image(self, case: CaseSource) -> Volume:
        if case.extra['layout'] == 'nifti':
            return read_nifti(case.image)
        volume = read_slice_files(case.image)
        volume.meta['display_orientation'] = True  # frames of the display export: never reoriented
        if case.extra.get('spacing_from') is not None:
            volume.spacing = nifti_display_spacing(case.extra['spacing_from'])
        return volume

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        if case.extra['layout'] == 'nifti':
            return read_nifti(case.label)
        first = read_image_2d(case.image[0])
        planes = []
        for image_path, mask_path in zip(case.image, case.label):
            if mask_path is None:
                planes.append(np.zeros(first.shape, np.uint8))
                continue
            mask = read_image_2d(mask_path)
            if mask.shape != first.shape:
                raise MedSegError(mask_path, f'mask shape {mask.shape} does not match image shape '
                                             f'{first.shape} of {image_path}')
            planes.append(binarize_mask(mask))
        return Volume(np.stack(planes), source=str(Path(case.image[0]).parent))

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        if case.extra['layout'] == 'jpg':
            return KeepUint8()(image.array)
        return self.volume_intensity(image)

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """HU → the ``--window`` of the NIfTI layout (default level 40 / width 120); also used for inference."""
        window = self.options.get('window') or DEFAULT_WINDOW
        if window not in WINDOWS:
            raise MedSegError(volume.source, f'unknown HU window {window!r}; choose from {sorted(WINDOWS)}')
        return WINDOWS[window](volume.array)
