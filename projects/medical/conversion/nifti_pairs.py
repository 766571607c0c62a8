"""One converter for every release of NIfTI image/label pairs, driven by a declarative :class:`NiftiPairSpec`.

A spec states where the files are (path patterns with one ``{case}``), the label map (raw value → class,
optionally "others → background") and the HU window; :func:`register_nifti_pairs` turns it into a
``prepare_dataset.py <name>`` converter, and :mod:`mmseg_medical.datasets.covid19` registers its mmseg
dataset (``spec.dataset_type``) from :data:`SPECS`. Adding a dataset is adding a spec, no other Python::

    NSCLC = register_nifti_pairs(NiftiPairSpec(
        name='nsclc', description='NSCLC-Radiomics lung tumour (GTV-1) masks',
        image='{case}/image.nii.gz', label='{case}/GTV-1.nii.gz',
        classes=('background', 'tumour'), dataset_type='NsclcDataset'))

The COVID-19-CT-Seg benchmark's Task 2/3 sources ship as specs here (:data:`MSD_LUNG`,
:data:`STRUCTSEG_LUNG`); MosMed is one in :mod:`.mosmed`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Type

import numpy as np

from ..errors import MedSegError
from ..intensity import WINDOWS
from ..io.nifti import read_nifti
from ..labels import LabelMap, as_integer_labels
from ..volume import Volume
from .base import CaseSource, DatasetConverter, find_release_dir, register_converter

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


#: name → spec of every registered NIfTI-pair release (the datasets module registers their mmseg datasets).
SPECS: Dict[str, NiftiPairSpec] = {}


class NiftiPairConverter(DatasetConverter):
    """The shared converter; a subclass per spec is made by :func:`register_nifti_pairs`."""

    spec: NiftiPairSpec

    def settings(self) -> dict:
        return {'window': self.spec.window, 'others': self.spec.others}

    def __reduce__(self):
        # The class is made at run time: workers rebuild it from the (picklable) spec.
        return _rebuild, (self.spec, self.seed, self.val_fraction, self.folds, self.options)

    def _images(self, release: Path) -> List[Tuple[str, Path]]:
        found = []
        for path in sorted(release.glob(self.spec.image_glob)):
            relative = path.relative_to(release).as_posix()
            if any(part.startswith('.') for part in relative.split('/')) or not path.is_file():
                continue  # hidden files, e.g. the ._<name> resource forks in MSD's tarballs
            case_id = self.spec.case_id(relative)
            if case_id is not None:
                found.append((case_id, path))
        return found

    def find_cases(self, src: Path) -> List[CaseSource]:
        spec = self.spec
        release = find_release_dir(src, lambda d: bool(self._images(d)), self.expected_layout)
        cases = []
        for case_id, image in self._images(release):
            label = release / spec.label.replace(CASE, case_id)
            if not label.is_file():
                if spec.missing_label == 'skip':
                    continue
                raise MedSegError(image, f'no label {label.relative_to(release).as_posix()} for this image')
            cases.append(CaseSource(case_id, image, label, split=spec.split))
        return cases

    def read_image(self, case: CaseSource) -> Volume:
        return read_nifti(case.image)

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        label = read_nifti(case.label)
        if self.spec.others == 'background':
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
    attrs = dict(spec=spec, name=spec.name, description=spec.description, label_map=spec.label_map,
                 dataset_type=spec.dataset_type,
                 expected_layout=f'{spec.image} + {spec.label} ({label_values}'
                                 f'{"; others background" if spec.others else ""}), at any depth',
                 __doc__=f'{spec.description}.\n\nImages {spec.image}, labels {spec.label}; window {spec.window}.')
    return type(f'{spec.dataset_type.replace("Dataset", "")}Converter', (NiftiPairConverter,), attrs)


def _rebuild(spec: NiftiPairSpec, seed: int, val_fraction: float, folds: Optional[int],
             options: dict) -> NiftiPairConverter:
    return nifti_pair_converter(spec)(seed=seed, val_fraction=val_fraction, folds=folds, **options)


def register_nifti_pairs(spec: NiftiPairSpec) -> NiftiPairSpec:
    """Register ``spec`` as converter ``spec.name`` (and in :data:`SPECS`); returns the spec."""
    register_converter(nifti_pair_converter(spec))
    SPECS[spec.name] = spec
    return spec


MSD_LUNG = register_nifti_pairs(NiftiPairSpec(
    name='msd-lung', description='Medical Segmentation Decathlon Task06 Lung: lung tumours (COVID-19-CT-Seg Task 2/3 source)',
    image='imagesTr/{case}.nii.gz', label='labelsTr/{case}.nii.gz', case_pattern=r'lung_\d+',
    classes=('background', 'tumour'), dataset_type='MsdLungDataset', window='lung'))

STRUCTSEG_LUNG = register_nifti_pairs(NiftiPairSpec(
    name='structseg-lung', description='StructSeg 2019 Thoracic OAR, lungs only (COVID-19-CT-Seg Task 2/3 source)',
    image='{case}/data.nii.gz', label='{case}/label.nii.gz', case_pattern=r'\d+',
    classes=('background', 'left_lung', 'right_lung'), raw_values={0: 0, 1: 1, 2: 2}, others='background',
    dataset_type='StructSegLungDataset', window='lung'))
