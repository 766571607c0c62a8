"""HemSeg-200 / HemSeg-500: intracranial hemorrhage (IPH + IVH) masks on RSNA head CT series.

Inputs (found under ``--src`` at any depth, or given one by one):

* ``--dicom-dir``: the RSNA folder ``stage_2_train/`` of single-slice files ``ID_<9 hex>.dcm`` (flat;
  names say nothing of the order);
* ``--scan-list``: ``annotion_file_info.jsonl`` (HemSeg-200: ``patient``, ``scan_``, ``slice_list`` list)
  or ``annotion_file_info_500.jsonl`` (HemSeg-500: ``patient_name``, ``scan_name``, ``slice_list`` keyed
  by index strings); when both are there the 500 list (a superset) is used;
* ``--labels``: a label archive (read in place) or its extracted folder, ``{train,val,test}/label/<scan>.nii.gz``:
  ``IPH_IVH_label.zip`` (HemSeg-200: 222 labels, folder split = the paper's) or ``HemSeg-500.zip``
  (``HemSeg-500/...``: all 525 labels, folder split = the split CSVs'; its 222 HemSeg-200 files are
  byte-identical to the other archive's). With both found, the scan list decides: the 500 list reads
  ``HemSeg-500``, the 200 list ``IPH_IVH_label`` (each falls back to the other when its own is absent);
  ``dataset.json`` records the archive read (``label_archive``). A listed scan without a label in that
  archive is never dropped silently: one warning line (how many, the first few) and
  ``scans_without_label`` in ``dataset.json``.

Each labelled scan's slices are read with :func:`~mmseg_medical.io.dicom.read_dicom_series` (ordered along
the slice normal, gantry tilt kept: SimpleITK's geometry, on which the labels were drawn); the label must
match that volume in shape and affine. Case = scan, group = patient. Split ``official`` (default): the
label archive's train/val/test folders (``IPH_IVH_label``: the split the paper's code trains and tests on;
``HemSeg-500``: the split CSVs' 334/85/106); ``csv``: the
``{train,val,test}_set.csv`` lists published with HemSeg-500 (they disagree with the HemSeg-200 label
folders for many scans: 4 of the 6 real sample labels); both are kept as published although patients
have scans in two splits (8 in the CSVs; warned, recorded in dataset.json). With ``--folds K`` both add
K patient-grouped folds over their train + val scans; patients who also have a test scan are in no fold
(warned, recorded in dataset.json as ``fold_excluded_patients``). ``patient``: the CSVs' test set kept
as test, with every other scan of its patients; the rest re-split patient-disjoint into train/val
(``--val-fraction``, ``--folds``). Intensity: ``--windows brain`` (40/80) or three windows as the
channels of colour PNGs (e.g. ``brain,subdural,bone``).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS
from ..io.dicom import read_dicom_series
from ..io.nifti import read_nifti
from ..io.sources import zip_members
from ..labels import LabelMap
from ..volume import Volume
from .base import CaseInfo, CaseSource, DatasetConverter, find_below, register_converter

CLASSES = ('background', 'hemorrhage')
DICOM_DIR = 'stage_2_train'
SCAN_LISTS = ('annotion_file_info_500.jsonl', 'annotion_file_info.jsonl')  # preferred first
LABEL_ZIP, LABEL_DIR = 'IPH_IVH_label.zip', 'IPH_IVH_label'
LABEL_ZIP_500, LABEL_DIR_500 = 'HemSeg-500.zip', 'HemSeg-500'
#: Label archives (zip, extracted folder) in the order each scan list looks for them.
LABEL_ARCHIVES = {'500': ((LABEL_ZIP_500, LABEL_DIR_500), (LABEL_ZIP, LABEL_DIR)),
                  '200': ((LABEL_ZIP, LABEL_DIR), (LABEL_ZIP_500, LABEL_DIR_500))}
#: How many scan names the missing-label warning names.
WARN_FIRST = 5
SPLITS = ('train', 'val', 'test')
SPLIT_CSV = '{}_set.csv'
DEFAULT_WINDOWS = 'brain'
#: ``<...>/{train,val,test}/label/<scan>.nii[.gz]`` inside the label zip or folder.
LABEL_RE = re.compile(r'(?:^|/)(train|val|test)/label/([0-9A-Za-z_]+)\.nii(?:\.gz)?$')
SEARCH_DEPTH = 4
SPLIT_RULES = ('official', 'csv', 'patient')


def _find(src: Path, name: str, is_dir: bool) -> Optional[Path]:
    """The first ``name`` at or below ``src`` (breadth-first, up to :data:`SEARCH_DEPTH` levels)."""
    exists = Path.is_dir if is_dir else Path.is_file
    folder = find_below(src, lambda d: exists(d / name), SEARCH_DEPTH)
    return None if folder is None else folder / name


def read_scan_list(path: Path) -> Dict[str, Tuple[str, List[str]]]:
    """scan → (patient, slice IDs) from either jsonl variant; an unknown line shape is one error."""
    scans: Dict[str, Tuple[str, List[str]]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise MedSegError(path, f'cannot read scan list ({exc.strerror or exc})') from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise MedSegError(path, f'line {n}: not JSON ({exc})') from None
        if isinstance(item, dict) and {'patient', 'scan_', 'slice_list'} <= set(item) \
                and isinstance(item['slice_list'], list):
            patient, scan, slices = item['patient'], item['scan_'], list(item['slice_list'])
        elif isinstance(item, dict) and {'patient_name', 'scan_name', 'slice_list'} <= set(item) \
                and isinstance(item['slice_list'], dict):
            patient, scan = item['patient_name'], item['scan_name']
            try:
                slices = [item['slice_list'][k] for k in sorted(item['slice_list'], key=int)]
            except ValueError:
                raise MedSegError(path, f'line {n}: slice_list keys must be slice indices') from None
        else:
            raise MedSegError(path, f'line {n}: unknown scan-list shape (expected keys patient, scan_, '
                                    'slice_list [list] or patient_name, scan_name, slice_list {index: id})')
        if not slices or not all(isinstance(s, str) for s in slices):
            raise MedSegError(path, f'line {n}: scan {scan}: slice_list must be a non-empty list of slice IDs')
        if scan in scans:
            raise MedSegError(path, f'line {n}: scan {scan} listed twice')
        scans[str(scan)] = (str(patient), slices)
    return scans


def find_labels(labels: Path) -> Dict[str, Tuple[str, object]]:
    """scan → (official split, label source) of a label zip (members read in place) or folder."""
    if labels.is_file():
        items = [(m.member, m) for m in zip_members(labels, ('.nii', '.nii.gz'))]
    elif labels.is_dir():
        items = [(p.relative_to(labels).as_posix(), p) for p in sorted(labels.rglob('*.nii*')) if p.is_file()]
    else:
        raise MedSegError(labels, f'labels not found (expected {LABEL_ZIP}, {LABEL_ZIP_500} or an extracted folder)')
    found: Dict[str, Tuple[str, object]] = {}
    for name, source in items:
        match = LABEL_RE.search(name)
        if match is None:
            continue
        split, scan = match.groups()
        if scan in found:
            raise MedSegError(source, f'scan {scan}: a second label (first: {found[scan][1]})')
        found[scan] = (split, source)
    if not found:
        raise MedSegError(labels, 'no labels {train,val,test}/label/<scan>.nii.gz found')
    return found


def scan_list_version(scan_list: Path) -> str:
    """``'500'`` for ``annotion_file_info_500.jsonl``, else ``'200'`` (the name says which list it is)."""
    return '500' if Path(scan_list).name == SCAN_LISTS[0] else '200'


def find_label_archive(src: Optional[Path], version: str) -> Optional[Path]:
    """The label archive the ``version`` scan list reads under ``src``: its own (zip, then extracted folder)
    if found, else the other one; None when neither is there (or no ``src``)."""
    if src is None:
        return None
    for zip_name, dir_name in LABEL_ARCHIVES[version]:
        found = _find(src, zip_name, False) or _find(src, dir_name, True)
        if found is not None:
            return found
    return None


def read_split_csvs(folder: Path) -> Dict[str, str]:
    """scan → split from ``{train,val,test}_set.csv`` (column ``filename``) in ``folder``, if present."""
    split_of: Dict[str, str] = {}
    for split in SPLITS:
        path = folder / SPLIT_CSV.format(split)
        if not path.is_file():
            continue
        with open(path, newline='') as f:
            for row in csv.DictReader(f):
                name = (row.get('filename') or '').strip()
                if name:
                    split_of[name.split('.')[0]] = split
    return split_of


def require_split_csvs(folder: Path, why: str) -> Dict[str, str]:
    """:func:`read_split_csvs` of ``folder``, or one error naming the first of the three CSVs missing."""
    missing = next((folder / SPLIT_CSV.format(k) for k in SPLITS if not (folder / SPLIT_CSV.format(k)).is_file()), None)
    if missing is not None:
        raise MedSegError(missing, f'{why}, but this split CSV is not there (expected '
                                   f'{SPLIT_CSV.format("{train,val,test}")} next to the scan list)')
    return read_split_csvs(folder)


def fold_excluded_patients(split_of: Mapping[str, str], patient_of: Mapping[str, str]) -> List[str]:
    """Patients with a ``test`` scan and a scan in another split (scan → split, scan → patient): folds
    made over the non-test scans leave them out, so that no fold trains or validates on a test patient."""
    splits: Dict[str, Set[str]] = {}
    for scan, split in split_of.items():
        splits.setdefault(patient_of[scan], set()).add(split == 'test')
    return sorted(p for p, kinds in splits.items() if kinds == {True, False})


FOLD_EXCLUDED_REASON = ('patients with scans in the published test set and in its train/val: the --folds K '
                        'lists (over train + val) leave them out, so no fold trains or validates on a test patient')
MOVED_TO_TEST_REASON = ('--split patient keeps the split CSVs\' test set and puts every other scan of its '
                        'patients there too, so the train/val re-split shares no patient with test')


def _windows_arg(text: str) -> str:
    try:
        return ','.join(HemSegConverter._parse_windows(text))
    except MedSegError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


@register_converter
class HemSegConverter(DatasetConverter):
    name = 'hemseg'
    description = 'HemSeg-200/500 hemorrhage masks on RSNA head CT DICOM series (official split)'
    label_map = LabelMap(CLASSES)
    expected_layout = (f'{DICOM_DIR}/ID_<id>.dcm, {" or ".join(SCAN_LISTS)} and {LABEL_ZIP} or {LABEL_ZIP_500} '
                       '(zipped or extracted) at any depth, or --dicom-dir, --scan-list and --labels')
    dataset_type = 'HemSegDataset'
    src_optional = True  # --dicom-dir, --scan-list and --labels can name every input

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--dicom-dir', type=Path, default=None, help=f'RSNA {DICOM_DIR}/ folder')
        parser.add_argument('--scan-list', type=Path, default=None, help='annotion_file_info[_500].jsonl')
        parser.add_argument('--labels', type=Path, default=None,
                            help=f'{LABEL_ZIP} (HemSeg-200) or {LABEL_ZIP_500}, or an extracted folder (default: the '
                                 'archive of the scan list found under --src)')
        parser.add_argument('--split', choices=SPLIT_RULES, default='official',
                            help="official: the label archive's train/val/test folders (the paper's split); csv: "
                                 'the {train,val,test}_set.csv lists (HemSeg-500); neither is patient-disjoint; with '
                                 '--folds K both add K folds over train + val, leaving out patients with a test scan; '
                                 "patient: the CSVs' test set (with its patients' other scans) as test, the rest "
                                 're-split patient-disjoint (--val-fraction, --folds)')
        parser.add_argument('--windows', default=DEFAULT_WINDOWS, type=_windows_arg,
                            help=f'one HU window, or three as PNG channels, from {sorted(WINDOWS)} '
                                 f'(default {DEFAULT_WINDOWS} = 40/80; e.g. brain,subdural,bone)')

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.windows = self._parse_windows(self.options.get('windows') or DEFAULT_WINDOWS)
        #: The scan list and label archive read, and the listed scans without a label (set by find_cases).
        self.inputs: Dict[str, str] = {}
        self.without_label: List[str] = []
        self.shared_patients: List[str] = []
        #: Patients with a scan in the published test set (any scan of the scan list), set by find_cases.
        self.test_patients: Set[str] = set()
        #: official/csv: patients left out of the --folds pool; patient: scans moved to test with their patient.
        self.fold_excluded: List[str] = []
        self.moved_to_test: List[str] = []

    @staticmethod
    def _parse_windows(text: str) -> List[str]:
        names = [w.strip() for w in str(text).split(',') if w.strip()]
        unknown = [w for w in names if w not in WINDOWS]
        if unknown or len(names) not in (1, 3):
            raise MedSegError('--windows', f'expected one or three HU windows from {sorted(WINDOWS)}, got {text!r}')
        return names

    def settings(self) -> dict:
        return {'windows': ','.join(self.windows), 'split': self.options.get('split') or 'official'}

    def card(self) -> dict:
        card: dict = dict(self.inputs)
        card['scans_without_label'] = {'count': len(self.without_label), 'scans': self.without_label}
        if self.shared_patients:
            card['official_split_shared_patients'] = self.shared_patients
        if self.fold_excluded:  # recorded with or without --folds: a later --folds only re-splits
            card['fold_excluded_patients'] = {'patients': self.fold_excluded, 'reason': FOLD_EXCLUDED_REASON}
        if self.moved_to_test:
            card['patient_split_moved_to_test'] = {'scans': self.moved_to_test, 'reason': MOVED_TO_TEST_REASON}
        return card

    # ---- inputs ----------------------------------------------------------------------------------
    def _inputs(self, src: Optional[Path]) -> Tuple[Path, Path, Path]:
        if src is None and not all(self.options.get(k) for k in ('dicom_dir', 'scan_list', 'labels')):
            raise MedSegError(None, 'give --src, or all of --dicom-dir, --scan-list and --labels')
        dicom_dir = self.options.get('dicom_dir') or _find(src, DICOM_DIR, True)
        scan_list = self.options.get('scan_list') or next(
            (p for p in (_find(src, n, False) for n in SCAN_LISTS) if p is not None), None)
        if scan_list is None:
            raise MedSegError(src, f'no {SCAN_LISTS[1]} (--scan-list) found here; expected {self.expected_layout}')
        labels = self.options.get('labels') or find_label_archive(src, scan_list_version(Path(scan_list)))
        for value, what in ((dicom_dir, f'{DICOM_DIR}/ (--dicom-dir)'),
                            (labels, f'{LABEL_ZIP} or {LABEL_ZIP_500} (--labels)')):
            if value is None:
                raise MedSegError(src, f'no {what} found here; expected {self.expected_layout}')
        if not Path(dicom_dir).is_dir():
            raise MedSegError(dicom_dir, 'DICOM folder not found')
        return Path(dicom_dir), Path(scan_list), Path(labels)

    def find_cases(self, src: Path) -> List[CaseSource]:
        dicom_dir, scan_list, labels = self._inputs(None if src is None else Path(src))
        scans = read_scan_list(scan_list)
        label_of = find_labels(labels)
        if scan_list_version(scan_list) == '200' and labels.name in (LABEL_ZIP_500, LABEL_DIR_500):
            label_of = {s: v for s, v in label_of.items() if s in scans}  # HemSeg-500's own 303 scans: not listed
        self.inputs = {'scan_list': scan_list.name, 'label_archive': labels.name}
        self.without_label = sorted(set(scans) - set(label_of))
        if self.without_label:
            print(f'warning: {len(self.without_label)} of the {len(scans)} scans of {scan_list.name} have no label in '
                  f'{labels} and are not converted: {", ".join(self.without_label[:WARN_FIRST])}'
                  f'{" ..." if len(self.without_label) > WARN_FIRST else ""} (HemSeg-500 labels: {LABEL_ZIP_500})',
                  file=sys.stderr)
        rule = self.options.get('split') or 'official'
        if rule == 'official':
            csv_split = read_split_csvs(scan_list.parent)
        else:
            csv_split = require_split_csvs(scan_list.parent, f'--split {rule} takes the published test set from '
                                                              'the split CSVs')
        split_csvs = sorted(p for p in (scan_list.parent / SPLIT_CSV.format(k) for k in SPLITS) if p.is_file())
        # the published split this rule keeps (patient: its test set only), over every scan it lists
        published = {s: f for s, (f, _) in label_of.items()} if rule == 'official' else csv_split
        self.test_patients = {scans[s][0] for s, k in published.items() if k == 'test' and s in scans}
        self.skipped, cases = {}, []
        for scan, (folder_split, label) in sorted(label_of.items()):
            try:
                if scan not in scans:
                    raise MedSegError(label, f'scan {scan}: label for a scan not in {scan_list}')
                if scan not in published:
                    raise MedSegError(label, f'scan {scan}: not listed by the split CSVs in {scan_list.parent}')
                split = published[scan]
                patient, slice_ids = scans[scan]
                files = [dicom_dir / f'ID_{s}.dcm' for s in slice_ids]
                missing = next((f for f in files if not f.is_file()), None)
                if missing is not None:
                    raise MedSegError(missing, f'scan {scan}: DICOM file of slice {missing.stem[3:]} not found '
                                               f'({sum(not f.is_file() for f in files)} of {len(files)} missing)')
            except MedSegError as exc:
                self.skip_or_raise(scan, exc)
                continue
            pinned = split if rule != 'patient' else 'test' if patient in self.test_patients else None
            cases.append(CaseSource(scan, files, label, split=pinned, group=patient, aux=[scan_list, *split_csvs],
                                    extra={'official_split': split}))
        if rule == 'patient':
            self.moved_to_test = sorted(c.case_id for c in cases
                                        if c.split == 'test' and c.extra['official_split'] != 'test')
            if self.moved_to_test:
                print(f'warning: --split patient: {len(self.moved_to_test)} scan(s) outside the published test set '
                      f'go to test with their patient: {", ".join(self.moved_to_test)}', file=sys.stderr)
        else:
            # non-test scans as converted, test scans as published (also those not converted)
            self.fold_excluded = fold_excluded_patients(
                {**{s: 'test' for s, k in published.items() if k == 'test' and s in scans},
                 **{c.case_id: c.split for c in cases}}, {s: p for s, (p, _) in scans.items()})
            if self.fold_excluded and self.folds:
                print(f'warning: --folds {self.folds}: {len(self.fold_excluded)} patient(s) with scans in the '
                      f'published test set and in train/val are left out of every fold: '
                      f'{", ".join(self.fold_excluded)}', file=sys.stderr)
            self.shared_patients = self._patients_in_two_splits(cases)
            if self.shared_patients:
                print(f'warning: the official split is kept as published, but {len(self.shared_patients)} '
                      f'patient(s) have scans in two splits: {", ".join(self.shared_patients)} '
                      '(use --split patient for a patient-disjoint split)', file=sys.stderr)
            differ = sum(1 for c in cases if csv_split.get(c.case_id, c.split) != c.split)
            if differ:
                print(f'warning: {differ} scan(s) are in another split in the split CSVs than in the label archive '
                      '(--split csv uses the CSVs)', file=sys.stderr)
        return cases

    def fold_pool(self, cases: Mapping[str, CaseInfo]) -> List[str]:
        """Scans outside the published test set whose patient has no test scan (``official``/``csv``: the
        pinned train + val scans; ``patient``: the re-split ones, as every scan of a test patient is test)."""
        test = self.test_patients | {i.group for i in cases.values() if i.pinned == 'test'}
        return [c for c, i in cases.items()
                if i.labelled and i.pinned in (None, 'train', 'val') and i.group not in test]

    @staticmethod
    def _patients_in_two_splits(cases: Sequence[CaseSource]) -> List[str]:
        splits: Dict[str, set] = {}
        for case in cases:
            splits.setdefault(case.patient, set()).add(case.extra['official_split'])
        return sorted(p for p, s in splits.items() if len(s) > 1)

    # ---- reading ---------------------------------------------------------------------------------
    def build_volume(self, case: CaseSource) -> Volume:
        """The scan's HU volume along the slice normal (SimpleITK geometry); errors name the scan."""
        try:
            volume = read_dicom_series(case.image)
        except MedSegError as exc:
            raise MedSegError(exc.path, f'scan {case.case_id}: {exc.problem}') from None
        volume.source = volume.meta['files'][0]  # first file in slice order: named by geometry errors
        return volume

    def read_image(self, case: CaseSource) -> Volume:
        return self.build_volume(case)

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        return read_nifti(case.label)

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        return self.volume_intensity(image)

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """HU → (Z, H, W) with one window, or (Z, H, W, 3) with one window per channel (in order)."""
        planes = [WINDOWS[w](volume.array) for w in self.windows]
        return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
