"""One converter for every release of NIfTI image/label pairs, driven by a declarative :class:`NiftiPairSpec`.

A spec states where the files are (path patterns with one ``{case}``), the label map (raw value → class,
optionally "others → background") and the HU window; :func:`register_nifti_pairs` turns it into a
``prepare_dataset.py <name>`` converter, and :mod:`mmseg_medical.datasets.covid19` registers its mmseg
dataset (``spec.dataset_type``) from :data:`SPECS`. Adding a dataset is adding a spec, no other Python::

    NSCLC = register_nifti_pairs(NiftiPairSpec(
        name='nsclc', description='NSCLC-Radiomics lung tumour (GTV-1) masks',
        image='{case}/image.nii.gz', label='{case}/GTV-1.nii.gz',
        classes=('background', 'tumour'), dataset_type='NsclcDataset'))

The COVID-19-CT-Seg benchmark's Task 2/3 sources ship as specs: :data:`MSD_LUNG` here, StructSeg lungs and
gross target volume in :mod:`.structseg`, NSCLC lungs and pleural effusion in :mod:`.nsclc`; MosMed (its
external test set) in :mod:`.mosmed`. A spec with ``benchmark_splits`` takes ``--split covid19-task2`` /
``covid19-task3``: the benchmark's official lists of that source, read from the shipped split files
(:func:`mmseg_medical.conversion.covid19.benchmark_split`), as split lists ``covid19_task2_train`` /
``covid19_task2_val`` and ``covid19_task3_fold{k}_train`` / ``covid19_task3_fold{k}_val`` (the source's part of
fold k; the four COVID-19-CT-Seg cases it adds are ``task1_fold{k}_train`` of the prepared COVID-19-CT-Seg),
plus ``splits/covid19_task2.json`` / ``covid19_task3.json`` with the official entries as published. A split
asked for by name also makes the default lists: ``train`` / ``val`` are then Task 2's lists (Task 3 fold 0's
when only Task 3 is named) and the cases neither names are ``unlisted``, never a random hold-out. A spec
with ``configurable=True`` (a release whose layout is not documented) takes ``--image-pattern``,
``--label-pattern`` and ``--label-values``.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS
from ..io.nifti import read_nifti
from ..labels import LabelMap, as_integer_labels
from ..volume import Volume
from .base import CaseInfo, CaseSource, DatasetConverter, find_release_dir, register_converter

CASE = '{case}'


@dataclass(frozen=True)
class NiftiPairSpec:
    """A NIfTI image/label release, declaratively.

    Args:
        name: CLI name (``prepare_dataset.py <name>``).
        description: one line for ``--help``.
        image: path of a case's image below the release folder, with one ``{case}`` (the case id) and
            optionally ``*`` wildcards elsewhere, e.g. ``'imagesTr/{case}.nii.gz'``, ``'{case}/data.nii.gz'``.
        label: path of the case's label, with ``{case}`` and no wildcards, e.g. ``'labelsTr/{case}.nii.gz'``.
        classes: class names, index 0 = background.
        dataset_type: the registered mmseg dataset type of the prepared slices.
        raw_values: raw label value → class index (default: raw ``i`` is class ``i``).
        others: ``'background'``: raw values not in ``raw_values`` become background (e.g. organs not
            segmented); ``None``: any such value is an error.
        window: HU window, a key of :data:`mmseg_medical.intensity.WINDOWS`.
        case_pattern: regular expression a case id must match (other files are ignored).
        split: pin every case to this split (external test sets); ``None``: seeded train/val hold-out.
        missing_label: an image without label is an ``'error'`` or ``'skip'``-ped.
        release_names: folder names the release is looked for under ``--src`` (e.g. ``('Thoracic_OAR',)``
            where one download holds several releases of the same layout); ``--src`` itself is always
            accepted. Empty: the first folder holding images.
        benchmark_splits: the COVID-19-CT-Seg benchmark's split files of this source, (Task 2 name, Task 3
            name), e.g. ``('Task202_MSD_LungTumor_datasplit', 'Task302_MSD_LungTumor_datasplit')``.
        official_name: how the split files name a case, with ``{case}`` (StructSeg: ``'train_{case}'``).
        configurable: the layout options ``--image-pattern``, ``--label-pattern``, ``--label-values``.
        mirror_pairs: classes a left-right mirroring exchanges, by name (e.g. ``(('left_lung', 'right_lung'),)``):
            written to ``dataset.json`` and the mmseg dataset's metainfo (:mod:`mmseg_medical.laterality`).
    """

    name: str
    description: str
    image: str
    label: str
    classes: Tuple[str, ...]
    dataset_type: str
    raw_values: Optional[Mapping[int, int]] = None
    others: Optional[str] = None
    window: str = 'lung'
    case_pattern: str = r'[^/]+'
    split: Optional[str] = None
    missing_label: str = 'error'
    release_names: Tuple[str, ...] = ()
    benchmark_splits: Optional[Tuple[str, str]] = None
    official_name: str = CASE
    configurable: bool = False
    mirror_pairs: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.image.count(CASE) != 1 or self.label.count(CASE) != 1:
            raise ValueError(f'{self.name}: image and label patterns need exactly one {CASE}')
        if '*' in self.label:
            raise ValueError(f'{self.name}: the label pattern takes no wildcards (it is formatted with the case id)')
        if self.others not in (None, 'background'):
            raise ValueError(f"{self.name}: others must be None or 'background', got {self.others!r}")
        if self.window not in WINDOWS:
            raise ValueError(f'{self.name}: unknown window {self.window!r}; choose from {sorted(WINDOWS)}')
        if self.missing_label not in ('error', 'skip'):
            raise ValueError(f"{self.name}: missing_label must be 'error' or 'skip'")
        if self.official_name.count(CASE) != 1:
            raise ValueError(f'{self.name}: official_name needs exactly one {CASE}')
        unknown = [n for pair in self.mirror_pairs for n in pair if n not in self.classes]
        if unknown:
            raise ValueError(f'{self.name}: mirror_pairs name classes it does not have: {unknown}')

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(tuple(self.classes), None if self.raw_values is None else dict(self.raw_values))

    @property
    def image_glob(self) -> str:
        return self.image.replace(CASE, '*')

    def case_id(self, relative: str) -> Optional[str]:
        """The case id of an image path relative to the release folder ('/'-separated), None if no match."""
        before, after = (re.escape(p).replace(r'\*', '[^/]*') for p in self.image.split(CASE))
        regex = f'{before}(?P<case>{self.case_pattern}){after}'
        match = re.fullmatch(regex, relative)
        return match.group('case') if match else None

    def case_of_official(self, name: str) -> Optional[str]:
        """The case id of a split file's name (``train_7`` → ``7`` for StructSeg), None if it is not one."""
        before, after = (re.escape(p) for p in self.official_name.split(CASE))
        match = re.fullmatch(f'{before}(?P<case>.+){after}', name)
        return match.group('case') if match else None


#: ``--split`` values: the benchmark's task → index into ``NiftiPairSpec.benchmark_splits``.
BENCHMARK_TASKS = {'covid19-task2': 0, 'covid19-task3': 1}
#: With ``--split``: the split of the cases no official list names (``train`` / ``val`` are the official lists).
UNLISTED_SPLIT = 'unlisted'


def parse_label_values(text: str) -> Dict[int, int]:
    """``'0:0,1:1,2:2'`` → ``{0: 0, 1: 1, 2: 2}`` (raw label value → class index)."""
    try:
        pairs = [item.split(':') for item in text.split(',') if item.strip()]
        mapping = {int(raw): int(index) for raw, index in pairs}
    except ValueError:
        raise ValueError(f'label values must be RAW:CLASS items separated by commas, e.g. "0:0,1:1", got {text!r}') \
            from None
    if not mapping:
        raise ValueError('label values: at least one RAW:CLASS item')
    return mapping


#: name → spec of every registered NIfTI-pair release (the datasets module registers their mmseg datasets).
SPECS: Dict[str, NiftiPairSpec] = {}


class NiftiPairConverter(DatasetConverter):
    """The shared converter; a subclass per spec is made by :func:`register_nifti_pairs`."""

    spec: NiftiPairSpec

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        spec = cls.spec
        if spec.benchmark_splits:
            parser.add_argument('--split', nargs='+', choices=sorted(BENCHMARK_TASKS), default=None,
                                help="write the COVID-19-CT-Seg benchmark's official lists of this source: "
                                     'covid19-task2 (covid19_task2_train/_val), covid19-task3 '
                                     '(covid19_task3_fold{k}_train/_val: the source part of fold k); train/val '
                                     'are then the official lists too (Task 2, else Task 3 fold 0; cases neither '
                                     'names: unlisted), not a random hold-out')
        if spec.configurable:
            parser.add_argument('--image-pattern', default=None,
                                help=f'image path below the release folder with one {CASE} (default {spec.image})')
            parser.add_argument('--label-pattern', default=None,
                                help=f'label path with one {CASE} (default {spec.label})')
            values = ','.join(f'{k}:{v}' for k, v in sorted(spec.label_map.mapping.items()))
            parser.add_argument('--label-values', default=None,
                                help=f'raw label value → class index as RAW:CLASS,... (default {values}; '
                                     f'classes {", ".join(spec.classes)}; unlisted values '
                                     f'{"become background" if spec.others else "are an error"})')

    @property
    def layout(self) -> NiftiPairSpec:
        """The spec with the layout options applied (``configurable`` specs)."""
        spec, opts = self.spec, self.options
        if not spec.configurable:
            return spec
        change = {}
        if opts.get('image_pattern'):
            change['image'] = opts['image_pattern']
        if opts.get('label_pattern'):
            change['label'] = opts['label_pattern']
        if opts.get('label_values'):
            values = opts['label_values']
            change['raw_values'] = parse_label_values(values) if isinstance(values, str) else \
                {int(k): int(v) for k, v in dict(values).items()}
        try:
            return replace(spec, **change) if change else spec
        except ValueError as exc:
            raise MedSegError(None, str(exc)) from None

    @property
    def label_map(self) -> LabelMap:  # type: ignore[override]
        return self.layout.label_map

    def settings(self) -> dict:
        out = {'window': self.spec.window, 'others': self.spec.others}
        if self.spec.configurable:
            layout = self.layout
            out.update(image_pattern=layout.image, label_pattern=layout.label,
                       label_values=','.join(f'{k}:{v}' for k, v in sorted(layout.label_map.mapping.items())))
        return out

    def split_settings(self) -> dict:
        tasks = self.options.get('split')
        return {**super().split_settings(), **({'split': sorted(tasks)} if tasks else {})}

    def __reduce__(self):
        # The class is made at run time: workers rebuild it from the (picklable) spec.
        return _rebuild, (self.spec, self.seed, self.val_fraction, self.folds, self.options, self.skip_bad,
                          self.nifti_out)

    def _images(self, release: Path) -> List[Tuple[str, Path]]:
        layout = self.layout
        found = []
        for path in sorted(release.glob(layout.image_glob)):
            relative = path.relative_to(release).as_posix()
            if any(part.startswith('.') for part in relative.split('/')) or not path.is_file():
                continue  # hidden files, e.g. the ._<name> resource forks in MSD's tarballs
            case_id = layout.case_id(relative)
            if case_id is not None:
                found.append((case_id, path))
        return found

    def find_cases(self, src: Path) -> List[CaseSource]:
        spec = self.layout
        names = spec.release_names

        def marker(d: Path) -> bool:
            return (not names or d.name in names or d == Path(src)) and bool(self._images(d))

        release = find_release_dir(src, marker, self.expected_layout)
        cases = []
        for case_id, image in self._images(release):
            label = release / spec.label.replace(CASE, case_id)
            if not label.is_file():
                if spec.missing_label == 'skip':
                    continue
                raise MedSegError(image, f'no label {label.relative_to(release).as_posix()} for this image')
            cases.append(CaseSource(case_id, image, label, split=spec.split))
        return cases

    # ---- the benchmark's official lists ----------------------------------------------------------
    def _official_cases(self, names: List[str], cases: Mapping[str, object], what: str) -> List[str]:
        ids = [self.spec.case_of_official(n) for n in names]
        unknown = [n for n, c in zip(names, ids) if c is None]
        if unknown:
            raise MedSegError(None, f'{what}: names {unknown[:3]} do not fit {self.spec.official_name}')
        missing = [n for n, c in zip(names, ids) if c not in cases]
        if missing:
            raise MedSegError(None, f'{what}: {len(missing)} of its {len(names)} cases are not in this release '
                                    f'({", ".join(missing[:4])}{", ..." if len(missing) > 4 else ""}); the official '
                                    'lists need every case (or prepare without --split)')
        return ids  # type: ignore[return-value]

    def _benchmark_entries(self, task: str) -> List[Dict[str, List[str]]]:
        from .covid19 import CASES, benchmark_split, task1_folds

        name = self.spec.benchmark_splits[BENCHMARK_TASKS[task]]  # type: ignore[index]
        folds = benchmark_split(name)
        if task == 'covid19-task3':  # each fold = the source's lists + Task 1 fold k's four training cases
            for k, (fold, task1) in enumerate(zip(folds, task1_folds())):
                covid = [n for n in fold['train'] if n in CASES]
                if sorted(covid) != sorted(task1['train']) or fold.get('test') != task1['test']:
                    raise MedSegError(None, f'{name} fold {k}: its COVID-19-CT-Seg cases are not Task 1 fold {k}')
        return folds

    def assign_splits(self, has_foreground: Mapping[str, bool], groups: Mapping[str, str]) -> Dict[str, str]:
        """With ``--split``, ``train`` / ``val`` are the official lists of the first task named in sorted order
        (``covid19-task2``: its one split; ``covid19-task3`` alone: fold 0's source part), never a random
        hold-out beside them; cases neither list names go to ``unlisted``. Without: the seeded hold-out."""
        tasks = sorted(self.options.get('split') or ())
        if not tasks:
            return super().assign_splits(has_foreground, groups)
        from .covid19 import CASES

        fold = self._benchmark_entries(tasks[0])[0]
        split_of = {c: UNLISTED_SPLIT for c in has_foreground}
        for split, names in (('train', [n for n in fold['train'] if n not in CASES]), ('val', fold['val'])):
            for name in names:
                case = self.spec.case_of_official(name)
                if case in split_of:
                    split_of[case] = split
        return split_of

    def official_splits(self, cases: Mapping[str, CaseInfo]) -> Dict[str, List[str]]:
        from .covid19 import CASES

        lists: Dict[str, List[str]] = {}
        for task in self.options.get('split') or ():
            name = self.spec.benchmark_splits[BENCHMARK_TASKS[task]]  # type: ignore[index]
            prefix = task.replace('-', '_')
            folds = self._benchmark_entries(task)
            for k, fold in enumerate(folds):
                tag = f'{prefix}_fold{k}' if len(folds) > 1 else prefix
                lists[f'{tag}_train'] = self._official_cases([n for n in fold['train'] if n not in CASES], cases,
                                                             f'{name} fold {k} train')
                lists[f'{tag}_val'] = self._official_cases(fold['val'], cases, f'{name} fold {k} val')
        return lists

    def split_files(self, lists: Mapping[str, List[str]]) -> Dict[str, Any]:
        files = dict(super().split_files(lists))
        for task in self.options.get('split') or ():
            files[f'{task.replace("-", "_")}.json'] = {
                'split_file': self.spec.benchmark_splits[BENCHMARK_TASKS[task]],  # type: ignore[index]
                'official_name': self.spec.official_name, 'folds': self._benchmark_entries(task)}
        return files

    def read_image(self, case: CaseSource) -> Volume:
        return read_nifti(case.image)

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        label = read_nifti(case.label)
        if self.layout.others == 'background':
            values = as_integer_labels(label.array, label.source)
            label.array = np.where(np.isin(values, list(self.label_map.mapping)), values, 0)
        return label

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        return self.volume_intensity(image)

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """HU → the spec's window; also used for inference."""
        return WINDOWS[self.spec.window](volume.array)


def nifti_pair_converter(spec: NiftiPairSpec) -> Type[NiftiPairConverter]:
    """The converter class of ``spec`` (not registered)."""
    label_values = ', '.join(f'{raw} {spec.classes[i]}' for raw, i in sorted(spec.label_map.mapping.items()) if i)
    where = f'{"|".join(spec.release_names)}/' if spec.release_names else ''
    attrs = dict(spec=spec, name=spec.name, description=spec.description,
                 dataset_type=spec.dataset_type, mirror_pairs=tuple(spec.mirror_pairs),
                 expected_layout=f'{where}{spec.image} + {spec.label} ({label_values}'
                                 f'{"; others background" if spec.others else ""}), at any depth',
                 __doc__=f'{spec.description}.\n\nImages {spec.image}, labels {spec.label}; window {spec.window}.')
    return type(f'{spec.dataset_type.replace("Dataset", "")}Converter', (NiftiPairConverter,), attrs)


def _rebuild(spec: NiftiPairSpec, seed: int, val_fraction: float, folds: Optional[int], options: dict,
             skip_bad: bool = False, nifti_out: Optional[Path] = None) -> NiftiPairConverter:
    return nifti_pair_converter(spec)(seed=seed, val_fraction=val_fraction, folds=folds, skip_bad=skip_bad,
                                      nifti_out=nifti_out, **options)


def register_nifti_pairs(spec: NiftiPairSpec) -> NiftiPairSpec:
    """Register ``spec`` as converter ``spec.name`` (and in :data:`SPECS`); returns the spec."""
    register_converter(nifti_pair_converter(spec))
    SPECS[spec.name] = spec
    return spec


MSD_LUNG = register_nifti_pairs(NiftiPairSpec(
    name='msd-lung', description='Medical Segmentation Decathlon Task06 Lung: lung tumours (COVID-19-CT-Seg Task 2/3 source)',
    image='imagesTr/{case}.nii.gz', label='labelsTr/{case}.nii.gz', case_pattern=r'lung_\d+',
    classes=('background', 'tumour'), dataset_type='MsdLungDataset', window='lung',
    benchmark_splits=('Task202_MSD_LungTumor_datasplit', 'Task302_MSD_LungTumor_datasplit')))
