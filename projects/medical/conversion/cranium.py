"""Cranium: CT-ICH head CT with intracranial hemorrhage masks (Kaggle / physionet ct-ich 1.0.0).

Two layouts of the same release, both accepted (``--layout auto`` prefers NIfTI, which keeps HU):

* JPG:   ``Patients_CT/<id>/brain/<n>.jpg`` (brain window, 8-bit) + ``<n>_HGE_Seg.jpg`` (JPEG mask, only
  for slices with hemorrhage; other slices are all background), ``Patients_CT/<id>/bone/<n>.jpg`` (bone
  window, the same frames). Slice order = ``n``. The JPGs are the scanner software's video export at
  level 40 / width 120 (brain) and level 700 / width 3200 (bone), already in radiological display
  orientation (the masks were drawn on them), so they are kept as they are. They carry no spacing: it is
  taken from ``ct_scans/<id>.nii`` of the same patient when that file is there (else distances are in voxels).
* NIfTI: ``ct_scans/<id>.nii`` (HU) + ``masks/<id>.nii`` (0/1); HU → ``--window`` (default
  ``ctich-brain`` = level 40 / width 120, the JPG export's window) and the display slice convention, so
  both layouts give the same slices and a model trained on one segments the other.

``--window`` takes one window or two (``ctich-brain,ctich-bone``: a colour PNG with channel 0 = the first,
1 = the second, 2 = zero). JPG layout: ``ctich-brain`` = the ``brain/`` JPGs, ``ctich-bone`` = the ``bone/``
JPGs; NIfTI layout: the windows computed from HU (``ctich-bone`` = level 700 / width 3200, the export's).

``hemorrhage_diagnosis.csv`` (UTF-8 with BOM; ``PatientNumber, SliceNumber`` and the flags
:data:`FLAGS`, one row per slice): each slice's flags go into the manifest (one column per flag); slice
``SliceNumber`` is ``brain/<SliceNumber>.jpg`` (JPG layout) and NIfTI slice ``SliceNumber - 1`` along
the file's third axis (NIfTI layout). Splits (hold-out and ``--folds``) are stratified on the patient's
main subtype (:func:`patient_stratum`). Without the CSV: one warning; no flags, splits stratified on
"has a mask".

Case id = the 3-digit patient id. Split: patients 80/20 train/val, seeded and stratified.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS, KeepUint8
from ..io.nifti import nifti_display_spacing, read_nifti
from ..io.slices import natural_key, read_image_2d, read_slice_files
from ..labels import LabelMap, binarize_mask
from ..manifest import SLICE_VALUES
from ..volume import Volume
from .base import CaseInfo, CaseSource, DatasetConverter, find_release_dir, register_converter

RELEASE = 'computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0'
CLASSES = ('background', 'hemorrhage')
MASK_SUFFIX = '_HGE_Seg'
JPG_DIR, CT_DIR, MASK_DIR = 'Patients_CT', 'ct_scans', 'masks'
DEFAULT_WINDOW = 'ctich-brain'
#: The release's two exported windows: JPG folder of each (JPG layout).
JPG_WINDOWS = {'ctich-brain': 'brain', 'ctich-bone': 'bone'}
DIAGNOSIS_CSV = 'hemorrhage_diagnosis.csv'
SUBTYPES = ('Intraventricular', 'Intraparenchymal', 'Subarachnoid', 'Epidural', 'Subdural')
FLAGS = SUBTYPES + ('No_Hemorrhage', 'Fracture_Yes_No')
#: Stratum of patients with no subtype flag, and of those whose main subtype has too few patients.
NO_HEMORRHAGE, OTHER_SUBTYPE = 'none', 'hemorrhage'

Diagnosis = Dict[int, Dict[int, Dict[str, int]]]


def read_diagnosis_csv(path: Path) -> Diagnosis:
    """``hemorrhage_diagnosis.csv`` → patient number → slice number → flag → 0/1 (UTF-8, BOM or not).

    A missing column, a value other than 0/1 or a slice listed twice is one error naming the file and line.
    """
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or ()]
            missing = [c for c in ('PatientNumber', 'SliceNumber', *FLAGS) if c not in columns]
            if missing:
                raise MedSegError(path, f'lacks column(s) {", ".join(missing)} (header: {", ".join(columns)})')
            table: Diagnosis = {}
            for line, row in enumerate(reader, 2):
                row = {k.strip(): (v or '').strip() for k, v in row.items() if k is not None}
                try:
                    patient, number = int(row['PatientNumber']), int(row['SliceNumber'])
                    flags = {c: int(row[c]) for c in FLAGS}
                except ValueError:
                    raise MedSegError(path, f'line {line}: expected whole numbers, got {row}') from None
                bad = [c for c, v in flags.items() if v not in (0, 1)]
                if bad:
                    raise MedSegError(path, f'line {line}: {bad[0]} must be 0 or 1, got {flags[bad[0]]}')
                if number in table.setdefault(patient, {}):
                    raise MedSegError(path, f'line {line}: patient {patient} slice {number} listed twice')
                table[patient][number] = flags
    except OSError as exc:
        raise MedSegError(path, f'cannot read ({exc.strerror or exc})') from None
    except UnicodeDecodeError as exc:
        raise MedSegError(path, f'not UTF-8 text ({exc.reason})') from None
    return table


def patient_stratum(slices: Mapping[int, Mapping[str, int]]) -> str:
    """A patient's stratum: :data:`NO_HEMORRHAGE` when no slice carries a subtype flag, else the subtype
    flagged on most of its slices (ties: the first in :data:`SUBTYPES`)."""
    counts = Counter(t for flags in slices.values() for t in SUBTYPES if flags[t])
    if not counts:
        return NO_HEMORRHAGE
    return max(SUBTYPES, key=lambda t: (counts[t], -SUBTYPES.index(t)))


def merge_rare_strata(strata: Mapping[str, str], min_count: int) -> Dict[str, str]:
    """Subtype strata with fewer than ``min_count`` patients become :data:`OTHER_SUBTYPE` (the converter asks
    for ``max(2, folds, ceil(1 / val_fraction))``: a place in val and in every fold)."""
    counts = Counter(strata.values())
    return {c: s if s == NO_HEMORRHAGE or counts[s] >= min_count else OTHER_SUBTYPE for c, s in strata.items()}


def nifti_slices(path: Path) -> int:
    """Number of slices (third axis) of a NIfTI file, from its header."""
    import nibabel as nib

    try:
        shape = nib.load(str(path)).shape
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise MedSegError(path, f'cannot read NIfTI header ({type(exc).__name__}: {exc})') from None
    if len(shape) < 3:
        raise MedSegError(path, f'expected a 3D scan, got shape {shape}')
    return int(shape[2])


def _has_jpg(d: Path) -> bool:
    return (d / JPG_DIR).is_dir()


def _has_nifti(d: Path) -> bool:
    return (d / CT_DIR).is_dir()


def parse_windows(text: str) -> List[str]:
    """``--window``: one or two comma-separated names of :data:`WINDOWS`."""
    names = [w.strip() for w in str(text).split(',') if w.strip()]
    unknown = [w for w in names if w not in WINDOWS]
    if unknown or len(names) not in (1, 2) or len(set(names)) != len(names):
        raise MedSegError('--window', f'expected one or two different windows from {sorted(WINDOWS)}, got {text!r}')
    return names


def _window_arg(text: str) -> str:
    try:
        return ','.join(parse_windows(text))
    except MedSegError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def stack_windows(planes: Sequence[np.ndarray]) -> np.ndarray:
    """One window: as it is; two: (..., 3) uint8 with channels 0 and 1 the windows, channel 2 zero."""
    if len(planes) == 1:
        return planes[0]
    return np.stack([planes[0], planes[1], np.zeros_like(planes[0])], axis=-1)


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
        parser.add_argument('--window', type=_window_arg, default=DEFAULT_WINDOW,
                            help=f'one window, or two as channels 0 and 1 of a colour PNG (channel 2 zero): NIfTI '
                                 f'layout any of {sorted(WINDOWS)} computed from HU, JPG layout ctich-brain (brain/ '
                                 f'JPGs) and ctich-bone (bone/ JPGs) (default {DEFAULT_WINDOW}: level 40 / width 120, '
                                 'the window of the release\'s brain JPGs; ctich-bone: 700 / 3200, its bone JPGs)')

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.windows = parse_windows(self.options.get('window') or DEFAULT_WINDOW)
        #: case → split stratum from the diagnosis CSV (set by find_cases; empty without the CSV)
        self.patient_strata: Dict[str, str] = {}
        self.diagnosis_csv: Optional[Path] = None

    @property
    def layout(self) -> str:
        return self.options.get('layout') or 'auto'

    def settings(self) -> dict:
        return {**self.options, 'layout': self.layout, 'window': ','.join(self.windows)}

    def card(self) -> dict:
        if self.diagnosis_csv is None:
            return {'slice_flags': None}
        counts = Counter(self.patient_strata.values())
        return {'slice_flags': {'source': DIAGNOSIS_CSV, 'columns': list(FLAGS), 'subtypes': list(SUBTYPES)},
                'split_strata': {'rule': "the patient's main subtype (most flagged slices), 'none' without a "
                                         f"subtype flag, '{OTHER_SUBTYPE}' for subtypes with fewer patients than "
                                         "max(2, folds, ceil(1 / val_fraction))",
                                 'patients': dict(sorted(counts.items()))}}

    def strata(self, cases: Mapping[str, CaseInfo]) -> Dict[str, str]:
        """The patient's main subtype from the diagnosis CSV (rare ones merged), else has-a-mask."""
        if not self.patient_strata:
            return super().strata(cases)
        # enough patients per stratum for a place in val (hold-out) and in each fold (--folds)
        need = max(2, self.folds or 0, math.ceil(1.0 / self.val_fraction))
        merged = merge_rare_strata({c: self.patient_strata[c] for c in cases}, need)
        self.patient_strata.update(merged)
        return merged

    def find_cases(self, src: Path) -> List[CaseSource]:
        marker = {'jpg': _has_jpg, 'nifti': _has_nifti}.get(self.layout, lambda d: _has_jpg(d) or _has_nifti(d))
        what = {'jpg': f'{JPG_DIR}/<id>/brain/<n>.jpg', 'nifti': f'{CT_DIR}/<id>.nii + {MASK_DIR}/<id>.nii'}
        release = find_release_dir(src, marker, what.get(self.layout, self.expected_layout))
        use_nifti = self.layout == 'nifti' or (self.layout == 'auto' and _has_nifti(release))
        if not use_nifti:
            bad = [w for w in self.windows if w not in JPG_WINDOWS]
            if bad:
                raise MedSegError(release / JPG_DIR, f'--window {bad[0]}: the JPG layout has only the windows '
                                                     f'{", ".join(JPG_WINDOWS)} (use --layout nifti for others)')
        cases = self._nifti_cases(release) if use_nifti else self._jpg_cases(release)
        self._read_diagnosis(release, cases)
        return cases

    def _read_diagnosis(self, release: Path, cases: List[CaseSource]) -> None:
        """Each case's per-slice flags from the diagnosis CSV (``extra[SLICE_VALUES]``) and its stratum."""
        path = release / DIAGNOSIS_CSV
        self.patient_strata, self.diagnosis_csv = {}, None
        numbers_of = {c.case_id: c.extra.pop('slice_numbers') for c in cases}
        if not path.is_file():
            print(f'warning: {path} not found: no per-slice subtype flags in the manifest, no per-subtype Dice, '
                  'splits stratified on "has a mask"', file=sys.stderr)
            return
        table = read_diagnosis_csv(path)
        self.diagnosis_csv = path
        for case in list(cases):
            numbers = numbers_of[case.case_id]
            rows = table.get(int(case.case_id), {})
            try:
                absent = [n for n in numbers if n not in rows]
                if absent:
                    raise MedSegError(path, f'patient {case.case_id}: no row for slice(s) {absent[:5]} '
                                            f'({len(absent)} of {len(numbers)})')
                extra = sorted(set(rows) - set(numbers))
                if extra:
                    raise MedSegError(path, f'patient {case.case_id}: rows for slice(s) {extra[:5]} that the '
                                            f'release does not have ({len(numbers)} slices)')
            except MedSegError as exc:
                self.skip_or_raise(case.case_id, exc)
                cases.remove(case)
                continue
            case.extra[SLICE_VALUES] = {flag: [rows[n][flag] for n in numbers] for flag in FLAGS}
            case.aux = [a for a in (case.aux if isinstance(case.aux, list) else [case.aux]) if a is not None] + [path]
            self.patient_strata[case.case_id] = patient_stratum(rows)

    def _jpg_cases(self, release: Path) -> List[CaseSource]:
        cases = []
        for patient in sorted(p for p in (release / JPG_DIR).iterdir() if p.is_dir()):
            brain = patient / 'brain'
            slices = sorted((p for p in brain.glob('*.jpg') if not p.stem.endswith(MASK_SUFFIX)), key=natural_key)
            if not slices:
                raise MedSegError(brain, 'no brain-window slices <n>.jpg in this patient folder')
            odd = next((p for p in slices if not p.stem.isdigit()), None)
            if odd is not None:
                raise MedSegError(odd, 'expected slices named <SliceNumber>.jpg (a whole number)')
            masks = [s.with_name(f'{s.stem}{MASK_SUFFIX}.jpg') for s in slices]
            nifti = next((p for p in (release / CT_DIR / f'{patient.name}{e}' for e in ('.nii', '.nii.gz'))
                          if p.is_file()), None)
            bone = [patient / 'bone' / s.name for s in slices]
            if 'ctich-bone' in self.windows:
                absent = next((b for b in bone if not b.is_file()), None)
                if absent is not None:
                    raise MedSegError(absent, '--window ctich-bone reads the bone-window JPG of each brain slice, '
                                              'but this one is not there')
            cases.append(CaseSource(patient.name, slices, [m if m.is_file() else None for m in masks],
                                    aux=[nifti] + (bone if 'ctich-bone' in self.windows else []),
                                    extra={'layout': 'jpg', 'spacing_from': nifti,
                                           'slice_numbers': [int(s.stem) for s in slices]}))
        return cases

    def _nifti_cases(self, release: Path) -> List[CaseSource]:
        cases = []
        for scan in sorted((release / CT_DIR).glob('*.nii*')):
            case_id = scan.name.split('.')[0]
            mask = next((release / MASK_DIR / f'{case_id}{ext}' for ext in ('.nii', '.nii.gz')
                         if (release / MASK_DIR / f'{case_id}{ext}').is_file()), None)
            if mask is None:
                raise MedSegError(scan, f'no mask {MASK_DIR}/{case_id}.nii for this scan')
            cases.append(CaseSource(case_id, scan, mask, extra={
                'layout': 'nifti', 'slice_numbers': list(range(1, nifti_slices(scan) + 1))}))
        return cases

    def read_image(self, case: CaseSource) -> Volume:
        if case.extra['layout'] == 'nifti':
            return read_nifti(case.image)
        volume = read_slice_files(case.image)
        if 'ctich-bone' in self.windows:   # the bone-window frames, kept beside the brain ones
            bone = read_slice_files([Path(p).parent.parent / 'bone' / Path(p).name for p in case.image])
            if bone.array.shape != volume.array.shape:
                raise MedSegError(Path(case.image[0]).parent.parent / 'bone', f'bone-window JPGs of shape '
                                  f'{bone.array.shape[1:]} beside brain-window JPGs of shape {volume.array.shape[1:]}')
            volume.meta['bone'] = bone.array
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
            frames = {'ctich-brain': image.array, 'ctich-bone': image.meta.get('bone')}
            return stack_windows([KeepUint8()(frames[w]) for w in self.windows])
        return self.volume_intensity(image)

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """HU → the ``--window`` (one window, or two as channels 0 and 1, channel 2 zero) of the NIfTI layout
        (default level 40 / width 120); also used for inference."""
        return stack_windows([WINDOWS[w](volume.array) for w in self.windows])
