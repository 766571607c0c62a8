"""CrossMoDA 2021 / 2022: vestibular schwannoma and cochlea on MRI, labelled ceT1 source, unlabelled hrT2 target.

Files are found wherever they sit under ``--src`` (any folder depth), by name:

* 2021: ``crossmoda_<n>_ceT1.nii.gz`` + ``crossmoda_<n>_Label.nii.gz`` (``source_training/``),
  ``crossmoda_<n>_hrT2.nii.gz`` (``target_training/``, ``target_validation/``);
* 2022: ``crossmoda<year>_<ldn|etz>_<n>_{ceT1,hrT2,Label}.nii.gz`` (ldn = London, etz = Tilburg); a label
  pairs with the scan of the same name, else with the one ceT1 scan of its site and number (the 2021
  cases' labels were re-released as ``crossmoda2021_ldn_<n>_Label.nii.gz``).

Case id = file name without the modality suffix and extension (``crossmoda_12``, ``crossmoda2022_etz_106``);
domain (source = ceT1, target = hrT2), modality, site and year per case go to ``splits/crossmoda_cases.json``.
Labels: 0 background, 1 vestibular schwannoma, 2 cochlea, stored as float64; whole-number floats are
accepted, anything else is one error line naming the file and the value.

Intensity: per-volume percentile normalisation to 8 bit (``--percentiles``, default 0.5 99.5).
``--spacing MM`` resamples every slice in-plane (images linear, labels nearest) and ``--crop N`` centre
crops (or pads) it to N x N; both are recorded per case and undone when predictions are restacked.

Splits: source cases → ``train``/``val`` by patient (seeded; stratified on the site where the names give
it); target hrT2 → image-only ``target``; hrT2 under a ``*validation*`` folder → image-only ``target_val``.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..errors import MedSegError
from ..intensity import PercentileNormalize
from ..io.nifti import read_nifti
from ..labels import LabelMap
from ..spatial import apply_spatial
from ..splits import holdout_split
from ..volume import Volume
from .base import CaseSource, DatasetConverter, register_converter

CLASSES = ('background', 'vestibular_schwannoma', 'cochlea')
#: ``crossmoda_12_ceT1.nii.gz`` / ``crossmoda2022_etz_106_hrT2.nii.gz`` → case id, year, site, number, modality.
NAME = re.compile(r'^(?P<case>crossmoda(?:(?P<year>20\d\d)_(?P<site>ldn|etz))?_(?P<number>\d+))'
                  r'_(?P<modality>ceT1|hrT2|Label)\.nii(?:\.gz)?$')
SOURCE, TARGET = 'ceT1', 'hrT2'
TARGET_SPLIT, TARGET_VAL_SPLIT = 'target', 'target_val'
CASES_FILE = 'crossmoda_cases.json'
DEFAULT_PERCENTILES = (0.5, 99.5)


def _percentile(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f'percentile must be in [0, 100], got {text}')
    return value


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
        return value
    return parse


def _scan_files(src: Path) -> List[Tuple[Path, re.Match]]:
    """Every CrossMoDA-named NIfTI file under ``src`` (hidden folders skipped), sorted by path."""
    if not src.is_dir():
        raise MedSegError(src, '--src is not a folder (expected the CrossMoDA release)')
    found = []
    for path in sorted(src.rglob('crossmoda*.nii*')):
        match = NAME.match(path.name)
        if match and path.is_file() and not any(p.startswith('.') for p in path.relative_to(src).parts):
            found.append((path, match))
    return found


@register_converter
class CrossMoDAConverter(DatasetConverter):
    name = 'crossmoda'
    description = 'CrossMoDA 2021/2022 vestibular schwannoma + cochlea MRI (ceT1 labelled, hrT2 unlabelled)'
    label_map = LabelMap(CLASSES)
    expected_layout = ('crossmoda_<n>_ceT1.nii.gz + crossmoda_<n>_Label.nii.gz, crossmoda_<n>_hrT2.nii.gz '
                       '(2021) or crossmoda<year>_<ldn|etz>_<n>_{ceT1,hrT2,Label}.nii.gz (2022), at any depth')
    dataset_type = 'CrossMoDADataset'

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case_meta: Dict[str, dict] = {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--percentiles', type=_percentile, nargs=2, metavar=('LOW', 'HIGH'),
                            default=list(DEFAULT_PERCENTILES),
                            help='per-volume intensity percentiles mapped onto 0 and 255 (default 0.5 99.5)')
        parser.add_argument('--spacing', type=_positive(float), default=None, metavar='MM',
                            help='resample slices in-plane to this pixel spacing (e.g. 0.41; default: keep)')
        parser.add_argument('--crop', type=_positive(int), default=None, metavar='N',
                            help='centre-crop (or pad) slices to N x N pixels after resampling (default: keep)')

    def settings(self) -> dict:
        low, high = self.options.get('percentiles') or DEFAULT_PERCENTILES
        if not low < high:
            raise MedSegError('--percentiles', f'LOW must be below HIGH, got {low:g} {high:g}')
        return {'percentiles': [float(low), float(high)], 'spacing': self.options.get('spacing'),
                'crop': self.options.get('crop')}

    # ---- where the files are ----------------------------------------------------------------------
    def find_cases(self, src: Path) -> List[CaseSource]:
        self.settings()  # option errors before any reading
        scans: Dict[str, Tuple[Path, re.Match]] = {}
        labels: List[Tuple[Path, re.Match]] = []
        for path, match in _scan_files(Path(src)):
            if match['modality'] == 'Label':
                labels.append((path, match))
                continue
            other = scans.get(match['case'])
            if other is not None:
                raise MedSegError(path, f'case {match["case"]} also has the scan {other[0]}')
            scans[match['case']] = (path, match)
        label_of = self._pair_labels(scans, labels)
        cases, self.case_meta = [], {}
        for case_id, (path, match) in sorted(scans.items()):
            source = match['modality'] == SOURCE
            if source and case_id not in label_of:
                raise MedSegError(path, f'no label {case_id}_Label.nii.gz for this ceT1 scan')
            split = None
            if not source:
                parents = path.relative_to(src).parts[:-1]
                split = TARGET_VAL_SPLIT if any('validation' in p.lower() for p in parents) else TARGET_SPLIT
            self.case_meta[case_id] = {'domain': 'source' if source else 'target', 'modality': match['modality'],
                                       'site': match['site'], 'year': match['year']}
            cases.append(CaseSource(case_id, path, label_of.get(case_id), split=split,
                                    extra=dict(self.case_meta[case_id])))
        return cases

    @staticmethod
    def _pair_labels(scans: Mapping[str, Tuple[Path, re.Match]], labels: List[Tuple[Path, re.Match]]
                     ) -> Dict[str, Path]:
        """Case id → label file: the scan of the same name, else the one ceT1 of the same site and number."""
        by_site_number: Dict[Tuple[Optional[str], str], List[str]] = {}
        for case_id, (_, match) in scans.items():
            if match['modality'] == SOURCE:
                by_site_number.setdefault((match['site'], str(int(match['number']))), []).append(case_id)
        label_of: Dict[str, Path] = {}
        for path, match in labels:
            case_id = match['case']
            if case_id not in scans:
                same = by_site_number.get((match['site'], str(int(match['number']))), [])
                if len(same) != 1:
                    raise MedSegError(path, f'no ceT1 scan for this label (expected {case_id}_ceT1.nii.gz'
                                            + (f'; candidates {", ".join(same)}' if same else '') + ')')
                case_id = same[0]
            if scans[case_id][1]['modality'] != SOURCE:
                raise MedSegError(path, f'label for {scans[case_id][0].name}: only ceT1 scans are labelled')
            if case_id in label_of:
                raise MedSegError(path, f'second label for case {case_id} (first: {label_of[case_id]})')
            label_of[case_id] = path
        return label_of

    # ---- how a case is read -----------------------------------------------------------------------
    def read_image(self, case: CaseSource) -> Volume:
        return read_nifti(case.image)

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        """The label as class indices (uint8), validated before any resampling or cropping drops a voxel."""
        if case.label is None:
            return None
        label = read_nifti(case.label)
        return replace(label, array=self.label_map.remap(label.array, label.source))

    def spatial_transform(self, image: Volume, label: Optional[Volume] = None
                          ) -> Tuple[Volume, Optional[Volume], Optional[dict]]:
        settings = self.settings()
        return apply_spatial(image, label, settings['spacing'], settings['crop'])

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        return self.volume_intensity(image)

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """Per-volume percentile normalisation (``--percentiles``); also used for inference."""
        low, high = self.settings()['percentiles']
        return PercentileNormalize(low, high)(volume.array)

    # ---- splits -----------------------------------------------------------------------------------
    def assign_splits(self, has_foreground: Mapping[str, bool], groups: Mapping[str, str]) -> Dict[str, str]:
        """Patient hold-out of the source cases, stratified on the site (ldn / etz) where names give it."""
        sites = {c: (self.case_meta.get(c) or {}).get('site') for c in has_foreground}
        if len(set(sites.values()) - {None}) < 2:
            return super().assign_splits(has_foreground, groups)
        return holdout_split(list(has_foreground), {c: s == 'etz' for c, s in sites.items()},
                             self.val_fraction, self.seed, groups)

    def split_files(self, lists: Mapping[str, List[str]]) -> dict:
        return {**super().split_files(lists), CASES_FILE: self.case_meta}
