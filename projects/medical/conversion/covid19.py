"""COVID-19-CT-Seg (Zenodo 3757476): 20 chest CTs with lung and infection masks, and the benchmark's splits.

Two layouts of the same 20 cases, found at any depth under ``--src`` (``--layout auto`` takes the first
one found, Zenodo before Kaggle at the same depth):

* Zenodo: ``COVID-19-CT-Seg_20cases/<case>.nii.gz`` with masks of the same name in ``Lung_Mask/``,
  ``Infection_Mask/`` and ``Lung_and_Infection_Mask/`` (also accepted gunzipped, ``.nii``).
* Kaggle re-upload: ``ct_scans/coronacases_org_001.nii``,
  ``ct_scans/radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii``; masks ``lung_mask/``,
  ``infection_mask/``, ``lung_and_infection_mask/`` named ``coronacases_001.nii``,
  ``radiopaedia_4_85506_1.nii``. The case id is the Zenodo stem in both layouts.

``--subtask`` picks what the masks hold. ``all`` (default) reads the three mask folders into one label
store, so one prepared folder feeds every Task 1 model: each voxel's code (:data:`ALL_CLASSES`) is its
lung label (0 none, 1 left, 2 right, ``Lung_Mask``) plus 3 where ``Infection_Mask`` is 1, i.e. 0
background, 1 left lung, 2 right lung, 3 infection outside the lung masks, 4 infection in the left lung,
5 infection in the right lung. Codes 0..3 are the ``Lung_and_Infection_Mask`` labels, which must equal
that overlay (infection over lungs) voxel for voxel: a disagreement is an error naming the case. The
mmseg dataset (``Covid19Dataset(subtask=...)``) reads the store as the subtask's classes
(:data:`CODE_MAPS`): ``lung_infection`` (background, left lung, right lung, infection; the joint model),
``lung`` or ``infection``. ``--subtask lung_infection|lung|infection`` writes only that mask folder, as
before.

Intensity (:class:`ValueRangeRule`, decided by each volume's value range, never by its name): a volume
whose values lie in [0, 255] is already windowed to [-1250, 250] HU and scaled (the ``radiopaedia_*``
cases) and is kept; a volume in Hounsfield units (the ``coronacases_*``) goes through the lung window
[-1250, 250] → [0, 255]; anything else is an error.

Splits: every case once in the manifest (seeded hold-out ``train``/``val`` over patients, where the two
series of one Radiopaedia case are one patient), plus the benchmark's official lists read from the
shipped split files (:func:`benchmark_split`): Task 1 folds ``task1_fold{k}_train``
(4 cases) / ``task1_fold{k}_test`` (the other 16) and ``splits/task1_folds.json``; ``task2_test`` (all 20:
the Task 2 test set). Task 3 trains on a source's list plus ``task1_fold{k}_train`` and tests on
``task1_fold{k}_test`` (the Task 3 split files hold exactly these). The official folds are kept as
published, although they put two series of Radiopaedia cases 10 and 29 (same patient) into the train and
test lists of one fold.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS, KeepUint8, Window
from ..io.nifti import NIFTI_SUFFIXES, nifti_stem, read_nifti
from ..labels import LabelMap, as_integer_labels
from ..volume import Volume, check_same_geometry
from .base import CaseInfo, CaseSource, DatasetConverter, find_release_dir, register_converter

CORONACASES = tuple(f'coronacases_{i:03d}' for i in range(1, 11))
RADIOPAEDIA = ('radiopaedia_4_85506_1', 'radiopaedia_7_85703_0', 'radiopaedia_10_85902_1',
               'radiopaedia_10_85902_3', 'radiopaedia_14_85914_0', 'radiopaedia_27_86410_0',
               'radiopaedia_29_86490_1', 'radiopaedia_29_86491_1', 'radiopaedia_36_86526_0',
               'radiopaedia_40_86625_0')
#: The 20 case ids (Zenodo file stems), in the release's order.
CASES = CORONACASES + RADIOPAEDIA

#: The benchmark's split files, decoded from its pickles, shipped with this package (provenance inside).
SPLITS_FILE = Path(__file__).resolve().parents[1] / 'data' / 'covid19_splits.json'

#: The label store of subtask ``all``: code = lung label (0, 1 left, 2 right) + 3 where infected.
ALL_CLASSES = ('background', 'left_lung', 'right_lung', 'infection', 'infection_left_lung', 'infection_right_lung')
#: subtask → (classes, Zenodo mask folder, Kaggle mask folder). Raw label i is class i.
SUBTASKS: Dict[str, Tuple[Tuple[str, ...], str, str]] = {
    'lung_infection': (('background', 'left_lung', 'right_lung', 'infection'),
                       'Lung_and_Infection_Mask', 'lung_and_infection_mask'),
    'lung': (('background', 'left_lung', 'right_lung'), 'Lung_Mask', 'lung_mask'),
    'infection': (('background', 'infection'), 'Infection_Mask', 'infection_mask'),
}
#: How a subtask reads the codes of the ``all`` store: code → class index of the subtask.
CODE_MAPS: Dict[str, Dict[int, int]] = {
    'lung_infection': {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 3},
    'lung': {0: 0, 1: 1, 2: 2, 3: 0, 4: 1, 5: 2},
    'infection': {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1},
}
#: What a left-right mirroring exchanges (:mod:`mmseg_medical.laterality`): the lungs, and the store's codes of
#: infection inside each lung.
MIRROR_PAIRS = (('left_lung', 'right_lung'), ('infection_left_lung', 'infection_right_lung'))
ALL = 'all'
DEFAULT_SUBTASK = ALL
#: The subtask a dataset reads when none is named (the joint model of the ``all`` store).
JOINT = 'lung_infection'

ZENODO_IMAGES, KAGGLE_IMAGES = 'COVID-19-CT-Seg_20cases', 'ct_scans'
_KAGGLE_NAMES = (re.compile(r'coronacases_org_(\d{3})'), re.compile(r'radiopaedia_org_covid-19-pneumonia-(\d+_\d+_\d+)-dcm'))


def subtask_classes(subtask: str) -> Tuple[str, ...]:
    """Class names of a subtask (index = mask value; for ``all`` the store's codes)."""
    if subtask == ALL:
        return ALL_CLASSES
    if subtask not in SUBTASKS:
        raise ValueError(f'unknown subtask {subtask!r}; choose from {sorted(SUBTASKS) + [ALL]}')
    return SUBTASKS[subtask][0]


def encode_all(lung: np.ndarray, infection: np.ndarray, joint: np.ndarray, source: Optional[str] = None) -> np.ndarray:
    """The ``all`` store's codes of one case from its three masks (raw values, same shape).

    ``lung`` in {0, 1, 2}, ``infection`` in {0, 1}; ``joint`` must equal the overlay (3 where infected,
    else the lung label), else :class:`MedSegError` with the number of disagreeing voxels.
    """
    lung = as_integer_labels(lung, source)
    infection = as_integer_labels(infection, source)
    joint = as_integer_labels(joint, source)
    for name, values, allowed in (('Lung_Mask', lung, (0, 1, 2)), ('Infection_Mask', infection, (0, 1)),
                                  ('Lung_and_Infection_Mask', joint, (0, 1, 2, 3))):
        bad = np.setdiff1d(np.unique(values), allowed)
        if bad.size:
            raise MedSegError(source, f'{name} holds values {bad.tolist()[:5]} outside {list(allowed)}')
    infected = infection == 1
    overlay = np.where(infected, 3, lung)
    differ = int(np.count_nonzero(overlay != joint))
    if differ:
        raise MedSegError(source, f'Lung_and_Infection_Mask differs from Lung_Mask with Infection_Mask over it in '
                                  f'{differ} voxels, so one label store cannot hold all three; prepare each '
                                  'subtask into its own folder (--subtask lung_infection | lung | infection)')
    return np.where(infected, 3 + lung, lung).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _split_document() -> dict:
    try:
        return json.loads(SPLITS_FILE.read_text())
    except (OSError, ValueError) as exc:
        raise MedSegError(SPLITS_FILE, f'cannot read the shipped benchmark split file ({exc})') from None


def benchmark_split(name: str) -> List[Dict[str, List[str]]]:
    """One of the benchmark's split files by its name (e.g. ``'Task202_MSD_LungTumor_datasplit'``): a list
    of folds ``{'train': [...], 'val': [...], ('test': [...])}`` with the names exactly as published."""
    splits = _split_document()['splits']
    if name not in splits:
        raise KeyError(f'{name!r} is not one of the shipped split files ({", ".join(sorted(splits))})')
    return [{k: list(v) for k, v in fold.items()} for fold in splits[name]]


def benchmark_split_provenance() -> dict:
    """Where the shipped split files come from and how they were decoded."""
    return dict(_split_document()['source'])


def task1_folds() -> List[Dict[str, List[str]]]:
    """The benchmark's 5 Task 1 folds: ``{'train': 4 case ids, 'test': the other 16}`` in the order of
    ``Task1_COVID_datasplit`` (whose ``val`` lists are the test cases)."""
    return [{'train': fold['train'], 'test': fold['val']} for fold in benchmark_split('Task1_COVID_datasplit')]


def patient_of(case_id: str) -> str:
    """The patient of a case: the Radiopaedia case number groups its series (``radiopaedia_10_*``)."""
    parts = case_id.split('_')
    return '_'.join(parts[:2]) if parts[0] == 'radiopaedia' else case_id


def kaggle_case_id(path: Path) -> str:
    """Zenodo case id of a Kaggle scan name (``coronacases_org_001`` → ``coronacases_001``, ...)."""
    stem = nifti_stem(path)
    for prefix, pattern in zip(('coronacases_', 'radiopaedia_'), _KAGGLE_NAMES):
        match = pattern.fullmatch(stem)
        if match:
            return prefix + match.group(1)
    raise MedSegError(path, 'not a COVID-19-CT-Seg scan name of the Kaggle layout (expected '
                            'coronacases_org_<nnn> or radiopaedia_org_covid-19-pneumonia-<a>_<b>_<c>-dcm)')


@dataclass(frozen=True)
class ValueRangeRule:
    """Intensity by value range: [0, 255] → kept (already windowed); Hounsfield units → ``window``.

    HU: the minimum is at most ``air_hu`` (a chest CT always holds air) and the values lie within
    [``hu_min``, ``hu_max``]. 8-bit: the values lie within [0, 255]. A volume that is neither is refused.
    """

    window: Window = WINDOWS['lung']
    air_hu: float = -500.0
    hu_min: float = -4096.0
    hu_max: float = 32767.0

    def describe(self) -> str:
        return (f'values within [0, 255]: already windowed to [{self.window.lower:g}, {self.window.upper:g}] HU and '
                f'scaled, kept; minimum <= {self.air_hu:g} and values within [{self.hu_min:g}, {self.hu_max:g}]: '
                f'Hounsfield units, window [{self.window.lower:g}, {self.window.upper:g}] -> [0, 255]; '
                'any other range is an error')

    def convention(self, array: np.ndarray, source: Optional[str] = None) -> str:
        """``'8bit'`` or ``'hu'`` for ``array``; raises :class:`MedSegError` naming ``source`` otherwise."""
        lo, hi = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise MedSegError(source, 'image contains NaN or infinite values')
        if 0.0 <= lo and hi <= 255.0:
            return '8bit'
        if self.hu_min <= lo <= self.air_hu and hi <= self.hu_max:
            return 'hu'
        raise MedSegError(source, f'value range [{lo:g}, {hi:g}] fits neither Hounsfield units (minimum <= '
                                  f'{self.air_hu:g}, within [{self.hu_min:g}, {self.hu_max:g}]) nor 8-bit [0, 255]')

    def __call__(self, array: np.ndarray, source: Optional[str] = None) -> np.ndarray:
        if self.convention(array, source) == '8bit':
            return KeepUint8()(array)
        return self.window(array)


INTENSITY = ValueRangeRule()


def _marker(layout: str):
    def zenodo(d: Path) -> bool:
        return (d / ZENODO_IMAGES).is_dir()

    def kaggle(d: Path) -> bool:
        return (d / KAGGLE_IMAGES).is_dir() and any((d / SUBTASKS[s][2]).is_dir() for s in SUBTASKS)

    return {'zenodo': zenodo, 'kaggle': kaggle}.get(layout, lambda d: zenodo(d) or kaggle(d))


#: Mask folders read by the ``all`` store: name → (Zenodo folder, Kaggle folder).
ALL_MASKS = {s: (SUBTASKS[s][1], SUBTASKS[s][2]) for s in ('lung', 'infection', 'lung_infection')}


@register_converter
class Covid19Converter(DatasetConverter):
    name = 'covid19'
    description = ('COVID-19-CT-Seg 20 chest CTs, lung + infection masks, the benchmark\'s official lists '
                   '(Zenodo or Kaggle layout)')
    expected_layout = (f'{ZENODO_IMAGES}/<case>.nii.gz + Lung_Mask/, Infection_Mask/, Lung_and_Infection_Mask/ '
                       f'(Zenodo) or {KAGGLE_IMAGES}/coronacases_org_001.nii + lung_mask/, infection_mask/, '
                       'lung_and_infection_mask/ (Kaggle), at any depth')
    dataset_type = 'Covid19Dataset'
    mirror_pairs = MIRROR_PAIRS

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--layout', choices=('auto', 'zenodo', 'kaggle'), default='auto',
                            help='release layout (auto: the first found, Zenodo first)')
        parser.add_argument('--subtask', choices=[ALL] + sorted(SUBTASKS), default=DEFAULT_SUBTASK,
                            help='all (default): the three mask folders in one label store that every Task 1 config '
                                 'reads as its subtask; lung_infection: left lung, right lung, infection; lung: '
                                 'left, right; infection: infection only')

    @property
    def subtask(self) -> str:
        return self.options.get('subtask') or DEFAULT_SUBTASK

    @property
    def label_map(self) -> LabelMap:  # type: ignore[override]
        return LabelMap(subtask_classes(self.subtask))

    def settings(self) -> dict:
        # The layout is not a setting: both layouts give the same slices.
        return {'subtask': self.subtask, 'intensity_rule': INTENSITY.describe()}

    def card(self) -> dict:
        if self.subtask != ALL:
            return {}
        return {'label_store': {
            'codes': {str(i): c for i, c in enumerate(ALL_CLASSES)},
            'rule': 'code = Lung_Mask label (0, 1 left, 2 right) + 3 where Infection_Mask is 1; codes 0..3 are the '
                    'Lung_and_Infection_Mask labels',
            'subtasks': {s: {str(k): v for k, v in m.items()} for s, m in CODE_MAPS.items()},
            'subtask_classes': {s: list(subtask_classes(s)) for s in CODE_MAPS}}}

    # ---- cases -----------------------------------------------------------------------------------
    def _mask_dirs(self, release: Path, kaggle: bool) -> Dict[str, Path]:
        wanted = ALL_MASKS if self.subtask == ALL else {self.subtask: SUBTASKS[self.subtask][1:]}
        dirs = {}
        for name, (zenodo_dir, kaggle_dir) in wanted.items():
            folder = release / (kaggle_dir if kaggle else zenodo_dir)
            if not folder.is_dir():
                raise MedSegError(folder, f'mask folder of subtask {self.subtask!r} not found')
            dirs[name] = folder
        return dirs

    def find_cases(self, src: Path) -> List[CaseSource]:
        layout = self.options.get('layout') or 'auto'
        release = find_release_dir(src, _marker(layout), self.expected_layout)
        kaggle = layout == 'kaggle' or (layout == 'auto' and not _marker('zenodo')(release))
        image_dir = release / (KAGGLE_IMAGES if kaggle else ZENODO_IMAGES)
        mask_dirs = self._mask_dirs(release, kaggle)
        cases: Dict[str, CaseSource] = {}
        for scan in sorted(p for p in image_dir.iterdir() if p.name.endswith(NIFTI_SUFFIXES)):
            if scan.name.startswith('.'):  # macOS resource forks (._<name>) of re-zipped releases
                continue
            case_id = kaggle_case_id(scan) if kaggle else nifti_stem(scan)
            if case_id not in CASES:
                raise MedSegError(scan, f'not one of the 20 COVID-19-CT-Seg cases ({", ".join(CASES[:2])}, ...)')
            if case_id in cases:
                raise MedSegError(scan, f'case {case_id} occurs twice (also {cases[case_id].image})')
            masks = {}
            for name, mask_dir in mask_dirs.items():
                mask = next((m for m in (mask_dir / f'{case_id}{e}' for e in ('.nii.gz', '.nii')) if m.is_file()), None)
                if mask is None:
                    raise MedSegError(scan, f'no mask {mask_dir.name}/{case_id}.nii[.gz] for this scan')
                masks[name] = mask
            label = masks if self.subtask == ALL else masks[self.subtask]
            cases[case_id] = CaseSource(case_id, scan, label, group=patient_of(case_id))
        missing = [c for c in CASES if c not in cases]
        if missing:
            raise MedSegError(image_dir, f'{len(missing)} of the 20 cases missing ({", ".join(missing[:4])}'
                                         f'{", ..." if len(missing) > 4 else ""}): the Task 1 folds need all 20')
        return [cases[c] for c in CASES]

    def read_image(self, case: CaseSource) -> Volume:
        return read_nifti(case.image)

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        if not isinstance(case.label, dict):
            return read_nifti(case.label)
        masks = {name: read_nifti(path) for name, path in case.label.items()}
        lung = masks['lung']
        for name in ('infection', 'lung_infection'):
            check_same_geometry(lung, masks[name])
        codes = encode_all(lung.array, masks['infection'].array, masks['lung_infection'].array,
                           f'{case.case_id} ({", ".join(str(p) for p in case.label.values())})')
        return replace(lung, array=codes, source=lung.source)

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        return INTENSITY(image.array, image.source or str(case.image))

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """The same value-range rule for a scan given at inference time."""
        return INTENSITY(volume.array, volume.source)

    # ---- splits ----------------------------------------------------------------------------------
    def official_splits(self, cases: Mapping[str, CaseInfo]) -> Dict[str, List[str]]:
        lists = {}
        for k, fold in enumerate(task1_folds()):
            lists[f'task1_fold{k}_train'], lists[f'task1_fold{k}_test'] = fold['train'], fold['test']
        lists['task2_test'] = list(CASES)
        return lists

    def split_files(self, lists: Mapping[str, List[str]]) -> Dict[str, Any]:
        return {**super().split_files(lists), 'task1_folds.json': task1_folds()}
