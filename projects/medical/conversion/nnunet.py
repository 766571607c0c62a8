"""Any dataset in nnU-Net v2's raw layout (``nnUNet_raw/DatasetXXX_Name``): ``prepare_dataset.py nnunet``.

The release states itself in ``dataset.json``; this spec reads it as nnU-Net does:

* ``channel_names`` (``{"0": "T2", "1": "ADC"}``): one image file per channel and case,
  ``imagesTr/<case>_<XXXX><file_ending>``; every channel is kept (``images/`` channel 0,
  ``images_<XXXX>/`` channel XXXX; :class:`~mmseg_medical.datasets.LoadSliceStack` stacks them) and the prepared
  ``dataset.json`` lists them as ``channels``;
* ``labels`` (name → value, background 0): the class names, in value order; region-based labels (a list of
  values, nnU-Net's ``regions_class_order``) are refused: not supported yet;
* ``file_ending``: ``.nii.gz`` / ``.nii`` (nibabel) or ``.nrrd`` / ``.mha`` (SimpleITK),
  :mod:`~mmseg_medical.io.images`;
* ``numTraining``: must equal the cases found in ``imagesTr``.

Labelled cases are ``imagesTr`` + ``labelsTr/<case><file_ending>``; ``imagesTs`` cases (with ``labelsTs`` when
there) are pinned to split ``test``. Intensities per channel (recorded in ``dataset.json`` as ``intensity``): a
channel named CT as nnU-Net normalises CT (clip to the 0.5 / 99.5 percentiles of the training set's foreground
intensities, nnU-Net's fingerprint sample, :func:`~mmseg_medical.fingerprint.foreground_sample`), mapped
linearly onto 0–255; any other channel per case (its 0.5 / 99.5 percentiles onto 0–255).

``--folds K`` are nnU-Net's own (:func:`~mmseg_medical.splits.nnunet_folds`: ``KFold(K, shuffle=True,
random_state=12345)`` over the sorted training cases); ``--nnunet-splits FILE`` takes a ``splits_final.json`` as
it is. Either way ``splits/folds.json`` is nnU-Net's ``splits_final.json`` and ``fold{k}_train/val`` its lists.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import MedSegError, UsageError
from ..intensity import PercentileNormalize, Window
from ..io.images import ENDINGS, read_image
from ..labels import LabelMap
from ..splits import nnunet_folds
from ..volume import Volume
from .base import CaseSource, DatasetConverter, find_release_dir, register_converter

TEST_SPLIT = 'test'
#: Channel names nnU-Net normalises as CT (``channel_name_to_normalization_mapping``).
CT_NAMES = ('ct',)
PERCENTILES = (0.5, 99.5)


def is_ct(name: str) -> bool:
    return name.strip().casefold() in CT_NAMES


def read_release_card(path: Path) -> dict:
    """``dataset.json`` of an nnU-Net / Decathlon release as a dict (one clear :class:`UsageError` otherwise)."""
    if not path.is_file():
        raise UsageError(path, 'dataset.json not found: an nnU-Net raw dataset holds dataset.json, imagesTr/ and '
                               'labelsTr/')
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(path, f'malformed dataset.json ({type(exc).__name__}: {exc})') from None
    if not isinstance(card, dict):
        raise UsageError(path, f'dataset.json must hold a JSON object, got {type(card).__name__}')
    return card


def parse_labels(labels: Any, where: Path) -> LabelMap:
    """nnU-Net's ``labels`` (name → value) as a :class:`LabelMap`: classes in value order, values 0..n-1."""
    if not isinstance(labels, dict) or not labels:
        raise UsageError(where, f'"labels" must map class names to values, got {labels!r}')
    regions = [n for n, v in labels.items() if isinstance(v, (list, tuple))]
    if regions:
        raise UsageError(where, f'region-based labels ({", ".join(regions)}: lists of values) are not supported '
                                'yet; give each class one label value')
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values()):
        raise UsageError(where, f'"labels" values must be integers, got {labels!r}')
    by_value = sorted(labels.items(), key=lambda item: item[1])
    values = [v for _, v in by_value]
    if values != list(range(len(values))):
        raise UsageError(where, f'"labels" values must be 0, 1, ..., n-1 (background 0) as nnU-Net requires, got '
                                f'{values}')
    return LabelMap(tuple(str(n) for n, _ in by_value))


def parse_channels(channels: Any, where: Path, key: str = 'channel_names') -> Tuple[str, ...]:
    """``{"0": "T2", "1": "ADC"}`` → ``('T2', 'ADC')`` (keys must be 0..n-1)."""
    if not isinstance(channels, dict) or not channels:
        raise UsageError(where, f'"{key}" must map channel indices "0", "1", ... to names, got {channels!r}')
    try:
        keys = sorted(int(k) for k in channels)
    except (TypeError, ValueError):
        raise UsageError(where, f'"{key}" keys must be channel indices "0", "1", ..., got {list(channels)}') from None
    if keys != list(range(len(keys))):
        raise UsageError(where, f'"{key}" keys must be 0..n-1, got {keys}')
    return tuple(str(channels[str(k)] if str(k) in channels else channels[k]) for k in keys)


def read_splits_file(path: Path) -> List[Dict[str, List[str]]]:
    """A user's ``splits_final.json`` (a list of ``{"train": [...], "val": [...]}``), checked for form."""
    try:
        folds = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(path, f'cannot read the splits file ({type(exc).__name__}: {exc})') from None
    if not isinstance(folds, list) or not folds or not all(
            isinstance(f, dict) and all(isinstance(f.get(k), list) for k in ('train', 'val')) for f in folds):
        raise UsageError(path, 'a splits_final.json is a list of {"train": [case ids], "val": [case ids]}')
    return [{'train': [str(c) for c in f['train']], 'val': [str(c) for c in f['val']]} for f in folds]


class ChannelIntensity:
    """Per-channel intensity rules of a multi-channel release: dataset-level CT clip, else per-case percentiles."""

    channels: Tuple[str, ...]
    ct_clip: Dict[int, Tuple[float, float]]

    def channel_uint8(self, case: CaseSource, channel: int, image: Volume) -> np.ndarray:
        if channel in self.ct_clip:
            lo, hi = self.ct_clip[channel]
            return Window(lo, hi)(image.array.astype(np.float32))
        return PercentileNormalize(*PERCENTILES)(image.array)

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        return self.channel_uint8(case, 0, image)

    def intensity_card(self) -> dict:
        rules = {}
        for c, name in enumerate(self.channels):
            if c in self.ct_clip:
                lo, hi = self.ct_clip[c]
                rules[name] = {'rule': 'ct', 'clip': [lo, hi], 'to': [0, 255],
                               'from': 'percentiles 0.5 / 99.5 of the training foreground (nnU-Net sample)'}
            else:
                rules[name] = {'rule': 'percentile', 'percentiles': list(PERCENTILES), 'to': [0, 255],
                               'from': 'each case'}
        return {'channels': list(self.channels), 'intensity': rules}

    def fit_ct_clip(self, cases: Sequence[CaseSource]) -> None:
        """The clip of each CT channel from the labelled non-test cases (nnU-Net's fingerprint sample)."""
        from ..fingerprint import foreground_samples, samples_per_case

        self.ct_clip = {}
        ct = [c for c, name in enumerate(self.channels) if is_ct(name)]
        if not ct:
            return
        samples: Dict[int, List[np.ndarray]] = {c: [] for c in ct}
        training = [case for case in cases if case.label is not None and case.split != TEST_SPLIT]
        for case in training:
            label = self.read_label(case)
            drawn = foreground_samples([np.asarray(v.array, np.float32) for v in self.read_channels(case)],
                                       label.array, num_samples=samples_per_case(len(training)))
            for c in ct:
                samples[c].append(drawn[c])
        for c in ct:
            values = np.concatenate(samples[c]) if samples[c] else np.zeros(0)
            if values.size == 0:
                raise MedSegError(None, f'CT channel {self.channels[c]!r}: no foreground voxel in the training cases')
            lo, hi = np.percentile(values, [0.5, 99.5])
            self.ct_clip[c] = (float(lo), float(hi))


@register_converter
class NnUNetConverter(ChannelIntensity, DatasetConverter):
    """nnU-Net v2 raw dataset (``DatasetXXX_Name``: dataset.json, imagesTr/, labelsTr/, imagesTs/, labelsTs/)."""

    name = 'nnunet'
    description = "any dataset in nnU-Net v2's raw layout (DatasetXXX_Name with dataset.json)"
    expected_layout = 'dataset.json + imagesTr/<case>_0000<file_ending> + labelsTr/<case><file_ending>'
    dataset_type = 'NnUNetDataset'
    #: Every bad input of a user's release (dataset.json, a file, a label value, a geometry) exits 2.
    input_error_status = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channels: Tuple[str, ...] = ()
        self.label_map = LabelMap(('background',))
        self.ct_clip = {}
        self.release_name = ''
        self.user_folds: Optional[List[Dict[str, List[str]]]] = None
        if self.options.get('nnunet_splits'):
            self.user_folds = read_splits_file(Path(self.options['nnunet_splits']))
            self.folds = len(self.user_folds)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--nnunet-splits', type=Path, default=None,
                            help="a splits_final.json of the user's nnU-Net run, taken as it is: its folds become "
                                 'fold{k}_train / fold{k}_val and splits/folds.json (default with --folds K: '
                                 "nnU-Net's own KFold(K, shuffle=True, random_state=12345) over the sorted cases)")

    def settings(self) -> dict:
        return {'nnunet_splits': None if not self.options.get('nnunet_splits')
                else str(Path(self.options['nnunet_splits']).resolve())}

    def split_settings(self) -> dict:
        return {**super().split_settings(), 'nnunet_splits': self.settings()['nnunet_splits'],
                'splits_content': self.user_folds}

    def card(self) -> dict:
        return {**self.intensity_card(), 'release': self.release_name, 'file_ending_source': self.file_ending}

    # ---- the spec --------------------------------------------------------------------------------
    file_ending = '.nii.gz'

    def read_card(self, release: Path) -> dict:
        """Read and check ``dataset.json``; sets the channels, label map and file ending."""
        where = release / 'dataset.json'
        card = read_release_card(where)
        missing = [k for k in ('channel_names', 'labels', 'file_ending', 'numTraining') if k not in card]
        if missing:
            raise UsageError(where, f'dataset.json lacks {", ".join(missing)} (nnU-Net v2 dataset.json; a Decathlon '
                                    'release with "modality" is read by prepare_dataset.py msd)')
        self.channels = parse_channels(card['channel_names'], where)
        self.label_map = parse_labels(card['labels'], where)
        ending = card['file_ending']
        if ending not in ENDINGS:
            raise UsageError(where, f'file_ending {ending!r} is not supported; one of {", ".join(ENDINGS)}')
        self.file_ending = ending
        return card

    def _cases_in(self, release: Path, images: str, labels: str, split: Optional[str], required: bool
                  ) -> List[CaseSource]:
        ending = self.file_ending
        pattern = re.compile(rf'(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(ending)}')
        found: Dict[str, Dict[int, Path]] = {}
        folder = release / images
        for path in sorted(folder.glob(f'*{ending}')) if folder.is_dir() else ():
            match = pattern.fullmatch(path.name)
            if match and not path.name.startswith('.'):
                found.setdefault(match['case'], {})[int(match['channel'])] = path
        cases = []
        for case_id, files in sorted(found.items()):
            extra = sorted(set(files) - set(range(len(self.channels))))
            if extra:
                raise UsageError(files[extra[0]], f'channel {extra[0]:04d} is not in channel_names '
                                                  f'({len(self.channels)} channel(s))')
            for c in range(len(self.channels)):
                if c not in files:
                    raise UsageError(folder / f'{case_id}_{c:04d}{ending}',
                                     f'channel file missing for case {case_id} (channel {c}: {self.channels[c]})')
            label = release / labels / f'{case_id}{ending}'
            if not label.is_file():
                if required:
                    raise UsageError(label, f'label missing for case {case_id} (imagesTr case without labelsTr file)')
                label = None
            image = {f'{c:04d}': files[c] for c in range(len(self.channels))}
            cases.append(CaseSource(case_id, image, label, split=split))
        return cases

    def find_cases(self, src: Path) -> List[CaseSource]:
        release = find_release_dir(src, lambda d: (d / 'imagesTr').is_dir(), self.expected_layout)
        self.release_name = release.name
        card = self.read_card(release)
        training = self._cases_in(release, 'imagesTr', 'labelsTr', None, required=True)
        if card['numTraining'] != len(training):
            raise UsageError(release / 'dataset.json', f'numTraining is {card["numTraining"]} but imagesTr holds '
                                                       f'{len(training)} case(s)')
        cases = training + self._cases_in(release, 'imagesTs', 'labelsTs', TEST_SPLIT, required=False)
        self.fit_ct_clip(cases)
        return cases

    def read_channels(self, case: CaseSource) -> List[Volume]:
        return [read_image(path) for path in case.image.values()]

    def read_image(self, case: CaseSource) -> Volume:
        return self.read_channels(case)[0]

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        return None if case.label is None else read_image(case.label)

    # ---- nnU-Net's folds -------------------------------------------------------------------------
    def fold_lists(self, pool: Sequence[str], strata: Mapping[str, Any], groups: Mapping[str, str]
                   ) -> List[Dict[str, List[str]]]:
        if self.user_folds is None:
            return nnunet_folds(pool, self.folds)
        known = set(pool)
        for k, fold in enumerate(self.user_folds):
            unknown = sorted(set(fold['train'] + fold['val']) - known)
            if unknown:
                raise UsageError(self.options['nnunet_splits'], f'fold {k} names cases that are not training cases '
                                                                f'of this dataset: {", ".join(unknown[:4])}')
        return [{'train': sorted(f['train']), 'val': sorted(f['val'])} for f in self.user_folds]

    def check_split_options(self, cases: Sequence[CaseSource]) -> None:
        """With ``--nnunet-splits``: any number of folds (one custom train/val split too) and every case a fold
        names a training case (checked before any conversion)."""
        if self.user_folds is None:
            return super().check_split_options(cases)
        folds, self.folds = self.folds, None
        try:
            super().check_split_options(cases)
        finally:
            self.folds = folds
        known = {c.case_id for c in cases if c.label is not None and c.split != TEST_SPLIT}
        for k, fold in enumerate(self.user_folds):
            unknown = sorted(set(fold['train'] + fold['val']) - known)
            if unknown:
                raise ValueError(f'--nnunet-splits {self.options["nnunet_splits"]}: fold {k} names cases that are '
                                 f'not training cases of this dataset: {", ".join(unknown[:4])}')

    def split_files(self, lists: Mapping[str, List[str]]) -> Dict[str, Any]:
        files = dict(super().split_files(lists))
        if self.user_folds is not None:  # the user's file as it is (its order), beside our sorted form
            files['folds.json'] = self.user_folds
        return files


def parse_msd_labels(labels: Any, where: Path) -> LabelMap:
    """The Decathlon's ``labels`` (value → name: ``{"0": "background", "1": "edema"}``) as a :class:`LabelMap`."""
    if not isinstance(labels, dict) or not labels:
        raise UsageError(where, f'"labels" must map label values to class names, got {labels!r}')
    try:
        by_name = {str(name): int(value) for value, name in labels.items()}
    except (TypeError, ValueError):
        raise UsageError(where, f'"labels" keys must be label values "0", "1", ..., got {list(labels)}') from None
    return parse_labels(by_name, where)


@register_converter
class MsdConverter(NnUNetConverter):
    """Medical Segmentation Decathlon task (``TaskXX_Name``: dataset.json with modality/labels/training, 4D images)."""

    name = 'msd'
    description = 'any Medical Segmentation Decathlon task (TaskXX_Name; 4D multi-modality images)'
    expected_layout = ('dataset.json ("modality", "labels", "training") + imagesTr/<case>.nii.gz + '
                       'labelsTr/<case>.nii.gz')
    dataset_type = 'NnUNetDataset'

    def find_cases(self, src: Path) -> List[CaseSource]:
        release = find_release_dir(src, lambda d: (d / 'dataset.json').is_file() and (d / 'imagesTr').is_dir(),
                                   self.expected_layout)
        self.release_name = release.name
        where = release / 'dataset.json'
        card = read_release_card(where)
        missing = [k for k in ('modality', 'labels', 'training') if k not in card]
        if missing:
            raise UsageError(where, f'dataset.json lacks {", ".join(missing)} (a Decathlon dataset.json; an nnU-Net '
                                    'v2 release with "channel_names" is read by prepare_dataset.py nnunet)')
        self.channels = parse_channels(card['modality'], where, 'modality')
        self.label_map = parse_msd_labels(card['labels'], where)
        self.file_ending = '.nii.gz'
        if not isinstance(card['training'], list):
            raise UsageError(where, '"training" must be a list of {"image": ..., "label": ...}')
        cases = []
        for entry in card['training']:
            if not isinstance(entry, dict) or not {'image', 'label'} <= set(entry):
                raise UsageError(where, f'"training" entry {entry!r} lacks "image" / "label"')
            image, label = release / entry['image'], release / entry['label']
            for path in (image, label):
                if not path.is_file():
                    raise UsageError(path, 'listed in dataset.json "training" but not found')
            cases.append(CaseSource(_msd_case(image), image, label))
        for entry in card.get('test') or []:
            image = release / (entry if isinstance(entry, str) else entry.get('image', ''))
            if not image.is_file():
                raise UsageError(image, 'listed in dataset.json "test" but not found')
            cases.append(CaseSource(_msd_case(image), image, None, split=TEST_SPLIT))
        self.fit_ct_clip(cases)
        return cases

    def read_channels(self, case: CaseSource) -> List[Volume]:
        from ..io.images import read_channels_4d

        volumes = read_channels_4d(case.image)
        if len(volumes) != len(self.channels):
            raise MedSegError(case.image, f'{len(volumes)} channel(s) in the image, {len(self.channels)} in '
                                          f'dataset.json "modality"')
        return volumes


def _msd_case(path: Path) -> str:
    name = path.name
    return name[:-len('.nii.gz')] if name.endswith('.nii.gz') else path.stem
