"""CrossMoDA 2021 / 2022 / 2023: vestibular schwannoma and cochlea on MRI, labelled ceT1 source, unlabelled T2 target.

Files are found wherever they sit under ``--src`` (any folder depth), by name:

* 2021: ``crossmoda_<n>_ceT1.nii.gz`` + ``crossmoda_<n>_Label.nii.gz`` (``source_training/``),
  ``crossmoda_<n>_hrT2.nii.gz`` (``target_training/``, ``target_validation/``);
* 2022: ``crossmoda<year>_<ldn|etz>_<n>_{ceT1,hrT2,Label}.nii.gz`` (ldn = London, etz = Tilburg); a label
  pairs with the scan of the same name, else with the one ceT1 scan of its site and number (the 2021
  cases' labels were re-released as ``crossmoda2021_ldn_<n>_Label.nii.gz``);
* 2023: ``crossmoda2023_<etz|ldn|ukm>_<n>_{ceT1,Label}.nii.gz`` (``crossmoda23_training/TrainingSource/``),
  ``crossmoda2023_<site>_<n>_T2.nii.gz`` (``TrainingTarget/``, ``crossmoda23_validation/``).

Case id = file name without the modality suffix and extension (``crossmoda_12``, ``crossmoda2022_etz_106``);
domain (source = ceT1, target = hrT2 / T2), modality, site and year per case go to
``splits/crossmoda_cases.json``.

Labels (``--edition``, default ``auto``: 2023 when the files are named ``crossmoda2023_*``):

* 2021 / 2022: 0 background, 1 vestibular schwannoma, 2 cochlea;
* 2023: 0 background, 1 intra-meatal VS, 2 extra-meatal VS, 3 cochlea. A public description of the
  release lists the three structures in that order without their values; 1, 2, 3 is read from that order
  and ``--label-values INTRA EXTRA COCHLEA`` sets other raw values.

Labels are stored as float64; whole-number floats are accepted, anything else is one error line naming the
file and the value. A release mixing 2023 files with 2021/2022 ones (other classes) is refused under
``auto``; ``--edition 2023`` / ``2021-2022`` reads only that edition's files.

Intensity: per-volume percentile normalisation to 8 bit (``--percentiles``, default 0.5 99.5).
``--spacing MM`` resamples every slice in-plane (images linear, labels nearest) and ``--crop N`` centre
crops (or pads) it to N x N; both are recorded per case and undone when predictions are restacked.

Splits: source cases → ``train``/``val`` by patient (seeded; stratified on the site where the names give
it); target hrT2 / T2 → image-only ``target``; those under a ``*validation*`` folder → image-only ``target_val``.
"""
from __future__ import annotations

import argparse
import re
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
#: crossMoDA 2023's classes, in the order a public description of the release lists the structures.
CLASSES_2023 = ('background', 'vs_intrameatal', 'vs_extrameatal', 'cochlea')
#: The raw label values of ``CLASSES_2023[1:]`` by default (read from that order; ``--label-values``).
LABEL_VALUES_2023 = (1, 2, 3)
EDITIONS = ('auto', '2021-2022', '2023')
#: ``crossmoda_12_ceT1.nii.gz`` / ``crossmoda2022_etz_106_hrT2.nii.gz`` / ``crossmoda2023_ukm_3_T2.nii.gz`` →
#: case id, year, site, number, modality.
NAME = re.compile(r'^(?P<case>crossmoda(?:(?P<year>20\d\d)_(?P<site>ldn|etz|ukm))?_(?P<number>\d+))'
                  r'_(?P<modality>ceT1|hrT2|T2|Label)\.nii(?:\.gz)?$')
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


def _edition_of(match: re.Match) -> str:
    return '2023' if match['year'] == '2023' else '2021-2022'


def label_map_2023(values: Tuple[int, int, int] = LABEL_VALUES_2023) -> LabelMap:
    """crossMoDA 2023's label map: raw 0 → background, ``values`` → intra-meatal VS, extra-meatal VS, cochlea."""
    return LabelMap(CLASSES_2023, {0: 0, **{int(v): i for i, v in enumerate(values, start=1)}})


@register_converter
class CrossMoDAConverter(DatasetConverter):
    name = 'crossmoda'
    description = ('CrossMoDA 2021/2022/2023 vestibular schwannoma + cochlea MRI (ceT1 labelled, T2 unlabelled; '
                   '2023: intra- and extra-meatal VS)')
    label_map = LabelMap(CLASSES)
    expected_layout = ('crossmoda_<n>_ceT1.nii.gz + crossmoda_<n>_Label.nii.gz, crossmoda_<n>_hrT2.nii.gz '
                       '(2021), crossmoda<year>_<ldn|etz>_<n>_{ceT1,hrT2,Label}.nii.gz (2022) or '
                       'crossmoda2023_<etz|ldn|ukm>_<n>_{ceT1,Label,T2}.nii.gz (2023), at any depth')
    dataset_type = 'CrossMoDADataset'
    #: The dataset type of a 2023 preparation (four classes).
    dataset_type_2023 = 'CrossMoDA2023Dataset'
    dataset_types = (dataset_type_2023,)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case_meta: Dict[str, dict] = {}
        self.edition: Optional[str] = None
        if self.options.get('edition') in ('2021-2022', '2023'):
            self._set_edition(self.options['edition'])

    def _set_edition(self, edition: str) -> None:
        """Classes, raw values and dataset type of ``edition`` (this instance only)."""
        self.edition = edition
        if edition == '2023':
            values = self.options.get('label_values') or LABEL_VALUES_2023
            self.label_map = label_map_2023(tuple(int(v) for v in values))
            self.dataset_type = self.dataset_type_2023
        else:
            self.label_map = type(self).label_map
            self.dataset_type = type(self).dataset_type

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--percentiles', type=_percentile, nargs=2, metavar=('LOW', 'HIGH'),
                            default=list(DEFAULT_PERCENTILES),
                            help='per-volume intensity percentiles mapped onto 0 and 255 (default 0.5 99.5)')
        parser.add_argument('--spacing', type=_positive(float), default=None, metavar='MM',
                            help='resample slices in-plane to this pixel spacing (e.g. 0.41; default: keep)')
        parser.add_argument('--crop', type=_positive(int), default=None, metavar='N',
                            help='centre-crop (or pad) slices to N x N pixels after resampling (default: keep)')
        parser.add_argument('--edition', choices=EDITIONS, default='auto',
                            help='which release to read: 2021-2022 (VS, cochlea) or 2023 (intra-meatal VS, '
                                 'extra-meatal VS, cochlea); auto: 2023 when the files are named crossmoda2023_* '
                                 '(default auto; a named edition reads only its own files)')
        parser.add_argument('--label-values', type=_positive(int), nargs=3, default=None,
                            metavar=('INTRA', 'EXTRA', 'COCHLEA'),
                            help='2023 only: the raw label values of intra-meatal VS, extra-meatal VS and cochlea '
                                 '(default 1 2 3, the order a public description of the release lists them in)')

    def settings(self) -> dict:
        """Slice settings; a 2023 preparation adds its edition and raw label values (2021/2022 ones keep
        the three keys they always had, so datasets prepared before 2023 support stay up to date)."""
        low, high = self.options.get('percentiles') or DEFAULT_PERCENTILES
        if not low < high:
            raise MedSegError('--percentiles', f'LOW must be below HIGH, got {low:g} {high:g}')
        values = self.options.get('label_values')
        if values is not None:
            values = [int(v) for v in values]
            if len(values) != 3 or len(set(values)) != 3 or min(values) <= 0:
                raise MedSegError('--label-values', f'expected three distinct positive values, got {values}')
            if self.options.get('edition') == '2021-2022':
                raise MedSegError('--label-values', 'applies to the 2023 edition only (2021/2022 labels are 1 VS, '
                                                    '2 cochlea)')
        out = {'percentiles': [float(low), float(high)], 'spacing': self.options.get('spacing'),
               'crop': self.options.get('crop')}
        if self.edition == '2023' or self.options.get('edition') == '2023':
            out.update(edition='2023', label_values=list(values or LABEL_VALUES_2023))
        return out

    # ---- where the files are ----------------------------------------------------------------------
    def find_cases(self, src: Path) -> List[CaseSource]:
        self.settings()  # option errors before any reading
        files = self._edition_files(Path(src))
        scans: Dict[str, Tuple[Path, re.Match]] = {}
        labels: List[Tuple[Path, re.Match]] = []
        for path, match in files:
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

    def _edition_files(self, src: Path) -> List[Tuple[Path, re.Match]]:
        """The files of the edition read (``--edition``, or the one the names show), which sets the classes."""
        found = _scan_files(src)
        asked = self.options.get('edition') or 'auto'
        editions = sorted({_edition_of(m) for _, m in found})
        if asked == 'auto':
            if len(editions) > 1:
                first = {e: next(p for p, m in found if _edition_of(m) == e) for e in editions}
                raise MedSegError(src, f'holds crossMoDA 2023 files (e.g. {first["2023"].name}: intra-/extra-meatal '
                                       f'VS and cochlea) and 2021/2022 ones (e.g. {first["2021-2022"].name}: VS and '
                                       'cochlea), whose classes differ: pass --edition 2023 or --edition 2021-2022')
            edition = editions[0] if editions else '2021-2022'
        else:
            edition = asked
        if self.options.get('label_values') is not None and edition != '2023':
            raise MedSegError('--label-values', 'applies to the 2023 edition only, but the files under --src are '
                                                'crossMoDA 2021/2022 (1 VS, 2 cochlea)')
        self._set_edition(edition)
        return [(p, m) for p, m in found if _edition_of(m) == edition]

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
        """The label with its raw values (the engine maps them to class indices with :attr:`label_map`, which
        validates every voxel before any resampling or cropping could drop one)."""
        return None if case.label is None else read_nifti(case.label)

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
        """Patient hold-out of the source cases, stratified on the site where names give it: two sites (2022:
        ldn / etz) as one hold-out stratified on the site; three (2023: etz / ldn / ukm) as one hold-out per
        site, each stratified on foreground."""
        sites = {c: (self.case_meta.get(c) or {}).get('site') for c in has_foreground}
        named = set(sites.values()) - {None}
        if len(named) < 2:
            return super().assign_splits(has_foreground, groups)
        if len(named) == 2:
            return holdout_split(list(has_foreground), {c: s == 'etz' for c, s in sites.items()},
                                 self.val_fraction, self.seed, groups)
        out: Dict[str, str] = {}
        for site in sorted(set(sites.values()), key=str):
            members = [c for c in has_foreground if sites[c] == site]
            out.update(holdout_split(members, has_foreground, self.val_fraction, self.seed, groups))
        return out

    def split_files(self, lists: Mapping[str, List[str]]) -> dict:
        return {**super().split_files(lists), CASES_FILE: self.case_meta}
