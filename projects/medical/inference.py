"""Segment whole scans (NIfTI files, DICOM series, the cases of a prepared dataset) with trained 2D models.

One path for every caller (``tools/infer_volume.py``, ``tools/pseudo_label.py``):

* :class:`Predictor` gives per-slice class probabilities of one model or an ensemble (softmax probabilities
  averaged over the models), optionally with mirror test-time augmentation (``flip``: left-right, ``flip2``:
  both in-plane axes, as nnU-Net's 2D mirroring; a left-right mirrored pass exchanges the probabilities of the
  dataset's declared mirror pairs, :mod:`mmseg_medical.laterality`), ``batch_size`` slices per forward pass under
  ``torch.inference_mode``. Each slice goes in as ``LoadImageFromFile`` gives its PNG (grayscale replicated
  to three BGR channels) through the config's *test dataloader* pipeline (what ``mim test`` runs), so one
  model without TTA labels a slice as ``mim test`` does.
* :class:`ScanCase` readers make a scan's 8-bit slices exactly as ``prepare`` made the training PNGs: the
  display slice convention (:mod:`mmseg_medical.orientation`), the converter's in-plane resampling /
  cropping and its intensity rule, with the ``settings`` ``prepare`` stored in ``dataset.json``
  (:func:`file_cases` for files given by path, :func:`dataset_cases` for a split of a prepared dataset,
  read from its raw release by the converter that prepared it).
* :func:`segment` writes ``<case>.nii.gz`` (labels in the scan's own voxel order with its affine; for NIfTI
  input also its header) and optionally ``<case>.npz`` (the probabilities, mapped back the same way).
* :func:`infer` is the whole of ``tools/infer_volume.py`` as one call (models, inputs or a prepared split,
  output folder), for scripts such as the benchmark runner.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import shutil
import sys
import uuid
import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .conversion import CONVERTERS, DatasetConverter
from .errors import MedSegError
from .io import nifti_stem, read_dicom_folder, read_nifti
from .io.dicom import dicom_files_in
from .io.nifti import NIFTI_SUFFIXES
from .orientation import display_transform, to_display, to_source
from .outputs import PREDICTION_LISTING, check_apart, unlisted_entries, write_listing
from .restacking import split_cases, to_source_grid
from .spatial import invert_spatial
from .volume import Volume, save_nifti

PathLike = Union[str, os.PathLike]
NIFTI, DICOM = 'nifti', 'dicom'
#: ``(case_id, kind, path)``: kind is :data:`NIFTI` (a file) or :data:`DICOM` (a series folder).
InputCase = Tuple[str, str, Path]
#: ``LoadImageFromFile`` colour types that give a 2D array for a grayscale PNG (others give H x W x 3).
_TWO_D_COLOR_TYPES = ('grayscale', 'unchanged', 'grayscale_ignore_orientation')
PREDICTION_SUFFIX = '.nii.gz'
PROBABILITIES_SUFFIX = '.npz'
#: Test-time augmentation: the in-plane mirrorings whose probabilities are averaged (mapped back), as
#: names of the flipped slice axes: ``W`` = columns (left-right), ``H`` = rows (anterior-posterior).
TTA_MODES: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    'none': ((),),
    'flip': ((), ('W',)),
    'flip2': ((), ('W',), ('H',), ('H', 'W')),
}
_IMAGE_AXIS = {'H': 0, 'W': 1}        # of an (H, W) or (H, W, 3) slice
_PROBABILITY_DIM = {'H': 1, 'W': 2}   # of a (C, H, W) probability map
#: Folder and file names below an ``--input`` folder that hold labels, not scans (words = the lower-case
#: name split at anything but letters and digits): the first word starts with ``mask`` or ``label`` or is one
#: of these, or the last word is one of these or ``mask(s)``/``label(s)``.
_LABEL_WORDS = ('seg', 'segmentation', 'segmentations', 'gt')
_LABEL_LAST_WORDS = _LABEL_WORDS + ('mask', 'masks', 'label', 'labels')


def _is_nifti(path: Path) -> bool:
    return path.is_file() and any(path.name.endswith(s) and len(path.name) > len(s) for s in NIFTI_SUFFIXES)


def _label_like(name: str) -> bool:
    words = [w for w in re.split(r'[^a-z0-9]+', name.lower()) if w]
    return bool(words) and (words[0].startswith(('mask', 'label')) or words[0] in _LABEL_WORDS
                            or words[-1] in _LABEL_LAST_WORDS)


def read_by_find_inputs(input_dir: Path, inside: Path) -> bool:
    """Whether :func:`find_inputs` of ``input_dir`` would search ``inside`` (a folder below it): not when a
    folder on the way is hidden or label-like (``--input scans --output scans/seg`` is allowed)."""
    parts = inside.relative_to(input_dir).parts
    return not any(part.startswith('.') or _label_like(part) for part in parts)


def find_inputs(path: PathLike) -> List[InputCase]:
    """The scans at or below ``path``: a NIfTI file, a folder that is one DICOM series, or a folder holding
    NIfTI files and DICOM series folders at any depth (``RELEASE/ct_scans/049.nii``).

    Below a given folder, hidden entries are skipped, and so are label files and folders: names that begin
    with a word starting with ``mask`` or ``label`` or with ``seg``/``segmentation(s)``/``gt``, or that end
    with one of those words or ``mask(s)``/``label(s)`` (``masks/``, ``labelsTr/``, ``Lung_Mask/``,
    ``crossmoda_1_Label.nii.gz``, ``051_seg.nii.gz``; not the Cranium release folder
    ``…-detection-and-segmentation-1.0.0``). A folder holding DICOM files is one series
    (not searched further). Case id = NIfTI file stem or DICOM folder name; two scans with the same id, or
    nothing to segment, raise :class:`MedSegError` naming the files.
    """
    path = Path(path)
    if not path.exists():
        raise MedSegError(path, 'input not found')
    if path.is_file():
        if not _is_nifti(path):
            raise MedSegError(path, 'not a NIfTI file (.nii/.nii.gz); give a DICOM series by its folder')
        return [(nifti_stem(path), NIFTI, path)]
    if dicom_files_in(path):
        return [(path.resolve().name, DICOM, path)]
    found: List[InputCase] = []
    folders = [path]
    while folders:
        folder = folders.pop(0)
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith('.') or _label_like(nifti_stem(entry) if entry.is_file() else entry.name):
                continue
            if _is_nifti(entry):
                found.append((nifti_stem(entry), NIFTI, entry))
            elif entry.is_dir():
                if dicom_files_in(entry):
                    found.append((entry.name, DICOM, entry))
                else:
                    folders.append(entry)
    if not found:
        raise MedSegError(path, 'nothing to segment: no NIfTI file (.nii/.nii.gz) and no DICOM series '
                                '(a folder of *.dcm or DICM-marked files) here or in its subfolders')
    seen: Dict[str, Path] = {}
    for case_id, _, entry in found:
        if case_id in seen:
            raise MedSegError(entry, f'case {case_id!r} is also given by {seen[case_id]}; give one of the '
                                     'folders as --input')
        seen[case_id] = entry
    return found


def _crossmoda_case(stem: str) -> Optional[str]:
    from .conversion.crossmoda import NAME

    match = NAME.match(f'{stem}.nii.gz')
    return match['case'] if match and match['modality'] != 'Label' else None


def _covid19_case(stem: str) -> Optional[str]:
    from .conversion.covid19 import kaggle_case_id

    try:
        return kaggle_case_id(Path(f'{stem}.nii'))
    except MedSegError:
        return None


#: converter name → the dataset's case id of a scan file stem, where the release names scans by more than
#: the case id (None: keep the stem). CrossMoDA ``crossmoda_5_hrT2`` → ``crossmoda_5``; COVID-19-CT-Seg's
#: Kaggle names ``coronacases_org_001`` → ``coronacases_001``.
SCAN_CASE_IDS: Dict[str, Callable[[str], Optional[str]]] = {'crossmoda': _crossmoda_case, 'covid19': _covid19_case}


def dataset_case_id(converter: DatasetConverter, stem: str) -> str:
    """The case id a prepared dataset of ``converter`` gives the scan file named ``stem`` (else ``stem``)."""
    rule = SCAN_CASE_IDS.get(converter.name)
    return (rule(stem) if rule else None) or stem


def load_input(kind: str, path: PathLike) -> Volume:
    """Read one scan found by :func:`find_inputs` (NIfTI: header kept in ``meta['header']``)."""
    if kind == NIFTI:
        return read_nifti(path)
    if kind == DICOM:
        return read_dicom_folder(path)
    raise ValueError(f'unknown input kind {kind!r}')


def load_config(config: PathLike, cfg_options: Optional[dict] = None):
    """The mmengine ``Config`` of ``config`` with ``cfg_options`` (``--cfg-options``) merged in."""
    from mmengine.config import Config

    if not Path(config).is_file():
        raise MedSegError(config, 'config file not found')
    try:
        with warnings.catch_warnings():
            # mmengine resolves ``mmseg::`` bases through pkg_resources, which warns on every reload.
            warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
            cfg = Config.fromfile(str(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except Exception as exc:  # mmengine raises assorted errors for broken configs
        raise MedSegError(config, f'cannot load config ({type(exc).__name__}: {exc})') from None
    return cfg


def _test_dataset(cfg) -> dict:
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if not dataset.get('type'):
        raise MedSegError(cfg.filename, 'config has no test_dataloader.dataset.type')
    return dataset


def converter_for(cfg) -> DatasetConverter:
    """The converter that prepared the config's test dataset, with the settings it was prepared with.

    The class is the registered converter whose ``dataset_type`` (or one of its ``dataset_types``) is
    ``test_dataloader.dataset.type``;
    its settings come from ``<data_root>/dataset.json`` (``data_root`` as in the config, relative to the
    working directory) when that file exists, else the converter's defaults.
    """
    dataset = _test_dataset(cfg)
    dataset_type = dataset['type']
    matches = [cls for cls in CONVERTERS.values() if dataset_type in (cls.dataset_type, *cls.dataset_types)]
    if not matches:
        known = sorted(t for cls in CONVERTERS.values() for t in (cls.dataset_type, *cls.dataset_types) if t)
        raise MedSegError(cfg.filename, f'dataset type {dataset_type!r} has no converter, so its intensity '
                                        f'rule is unknown (datasets with one: {", ".join(known)})')
    cls = matches[0]
    data_root = dataset.get('data_root')
    card = Path(data_root) / 'dataset.json' if data_root else None
    if card is None or not card.is_file():
        return cls()
    from .manifest import read_dataset_card as read_card

    info = read_card(data_root)
    settings, name = info.get('settings') or {}, info.get('name')
    if name != cls.name:
        raise MedSegError(card, f'prepared by converter {name!r}, but dataset type {dataset_type!r} '
                                f'belongs to {cls.name!r}')
    if not isinstance(settings, dict):
        raise MedSegError(card, f'"settings" must be an object, got {type(settings).__name__}')
    try:
        return cls(**settings)
    except TypeError as exc:
        raise MedSegError(card, f'settings do not fit the {cls.name} converter ({exc})') from None


def intensity_for(cfg) -> Callable[[Volume], np.ndarray]:
    """The rule ``Volume → (Z, H, W) uint8`` that made the training slices of the config's dataset."""
    return converter_for(cfg).volume_intensity


def load_model(cfg, checkpoint: PathLike, device: str = 'cpu'):
    """``mmseg.apis.init_model`` with a strict checkpoint load and the test dataloader's pipeline.

    ``init_model`` loads non-strictly (a checkpoint of a differently sized model only logs warnings and
    fails later in the forward pass), so the checkpoint is checked against the model first
    (:func:`mmseg_medical.checkpoints.check_fits`: one line, as ``mim test`` gives), its training config against
    ``cfg``'s input (:func:`~mmseg_medical.checkpoints.check_same_input`), and loaded with ``strict=True``.
    ``model.cfg.test_pipeline`` is set to ``test_dataloader.dataset.pipeline``, which is what
    ``mim test`` runs (the top-level ``test_pipeline`` is a copy taken when the config file was read, so
    ``--cfg-options`` on the dataloader do not reach it); :func:`predict_volume` and
    ``mmseg.apis.inference_model`` then agree with ``mim test``.
    """
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    from mmseg.apis import init_model

    from .checkpoints import check_fits, check_same_input, read_checkpoint

    if not Path(checkpoint).is_file():
        raise MedSegError(checkpoint, 'checkpoint file not found')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise MedSegError('--device', f'{device} requested but CUDA is not available; use --device cpu')
    cfg = copy.deepcopy(cfg)
    cfg.test_pipeline = copy.deepcopy(_test_dataset(cfg).get('pipeline') or cfg.get('test_pipeline'))
    if not cfg.test_pipeline:
        raise MedSegError(cfg.filename, 'config has no test pipeline')
    try:
        with warnings.catch_warnings():  # mmseg's advice on training losses means nothing here
            warnings.filterwarnings('ignore', category=UserWarning, module=r'mmseg\.')
            model = init_model(cfg, None, device='cpu')
    except Exception as exc:  # registry / build errors of a broken model config
        raise MedSegError(cfg.filename, f'cannot build the model ({type(exc).__name__}: {exc})') from None
    state = read_checkpoint(checkpoint)
    check_fits(model, state, checkpoint)   # the one line mim test / mim train print too (CheckpointFitHook)
    check_same_input(state, cfg, checkpoint)   # shapes that fit can still be another input (1 slice vs 2.5D)
    _load_checkpoint_to_model(model, state, strict=True)
    meta = state.get('meta', {}) if isinstance(state, dict) else {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()


def model_classes(model) -> Tuple[str, ...]:
    """The class names a model predicts: its checkpoint's ``dataset_meta``, else its test dataset class's
    ``METAINFO``, else ``0 … num_classes-1``."""
    meta = getattr(model, 'dataset_meta', None) or {}
    num_classes = int(model.decode_head.num_classes)
    classes = meta.get('classes')
    if not classes:
        from mmseg.registry import DATASETS

        try:
            dataset_cls = DATASETS.get(_test_dataset(model.cfg)['type'])
        except Exception:  # an unregistered type or a config without a test dataset: no names known
            dataset_cls = None
        classes = (getattr(dataset_cls, 'METAINFO', None) or {}).get('classes')
    if not classes or len(classes) != num_classes:
        classes = tuple(str(c) for c in range(num_classes))
    return tuple(str(c) for c in classes)


def _decision(model) -> Optional[float]:
    """``None`` (labels = argmax of the probabilities) or a sigmoid head's threshold on class 1."""
    head = model.decode_head
    return float(head.threshold) if int(getattr(head, 'out_channels', 0)) == 1 else None


@dataclass(frozen=True)
class ArrayPipeline:
    """A model's test pipeline fed from arrays: ``pipeline`` (the steps after loading), whether it wants 2D
    (grayscale) images, and for a 2.5D model (``LoadSliceStack``) the ``offsets`` and ``windows`` its
    channels are stacked with (:func:`mmseg_medical.datasets.stack_slices`, the rule the training slices
    were stacked by), else ``offsets=None``."""

    pipeline: Callable[[dict], dict]
    two_d: bool
    offsets: Optional[Tuple[int, ...]] = None
    windows: Optional[Tuple[int, ...]] = None

    def input_of(self, item) -> np.ndarray:
        """The model input of one slice: ``item`` is a slice ``(H, W[, 3])`` or ``(volume, k)``, slice ``k``
        of a ``(Z, H, W[, n])`` volume in its context (a 2.5D model stacks the neighbours)."""
        from .datasets.transforms import stack_slices

        volume, k = item if isinstance(item, tuple) else (None, None)
        if self.offsets is not None:
            if volume is None:
                raise MedSegError(None, 'a 2.5D model (LoadSliceStack) needs each slice with its scan: '
                                        'give (volume, index) items')
            return stack_slices(volume, k, self.offsets, self.windows)
        image = volume[k] if volume is not None else item
        if image.ndim == 2 and not self.two_d:  # a grayscale PNG as LoadImageFromFile reads it: BGR copies
            image = np.repeat(image[:, :, None], 3, axis=2)
        return image


def _array_pipeline(model) -> ArrayPipeline:
    """The model's test pipeline fed from arrays (:class:`ArrayPipeline`)."""
    from mmengine.dataset import Compose

    steps = [copy.deepcopy(t) for t in model.cfg.test_pipeline if t.get('type') != 'LoadAnnotations']
    first = steps[0]
    kind = str(first.get('type')).split('.')[-1]
    if kind == 'LoadSliceStack':
        offsets = tuple(int(o) for o in first.get('offsets', (-1, 0, 1)))
        windows = first.get('windows')
        steps[0] = dict(type='LoadImageFromNDArray')
        return ArrayPipeline(Compose(steps), False, offsets, None if windows is None else tuple(windows))
    if kind != 'LoadImageFromFile':
        raise MedSegError(model.cfg.filename, f'test pipeline starts with {first.get("type")!r}, not '
                                              'LoadImageFromFile or LoadSliceStack: cannot feed it slices')
    first['type'] = 'LoadImageFromNDArray'
    return ArrayPipeline(Compose(steps), first.get('color_type', 'color') in _TWO_D_COLOR_TYPES)


def class_probabilities(seg_logits):
    """Class probabilities ``(K, H, W)`` float32 of one sample's ``seg_logits`` ``(C, H, W)`` (a torch
    tensor, or a NumPy array for a NumPy result): softmax over C > 1 channels; a sigmoid head (C = 1, whose
    ``seg_logits`` mmseg already passed through the sigmoid) gives ``[1 - p, p]``."""
    import torch

    as_numpy = isinstance(seg_logits, np.ndarray)
    logits = torch.from_numpy(seg_logits) if as_numpy else seg_logits
    logits = logits.float()
    if logits.shape[0] == 1:
        probabilities = torch.cat([1.0 - logits, logits], dim=0)
    else:
        probabilities = torch.softmax(logits, dim=0)
    return probabilities.numpy() if as_numpy else probabilities


class Predictor:
    """Per-slice class probabilities of one model or an ensemble, with optional mirror TTA.

    ``models``: loaded models (:func:`load_model`) that predict the same classes with the same decision
    rule (argmax, or one sigmoid threshold), else :class:`MedSegError`. The probability of a slice is the
    mean over the models of each model's mean over the ``tta`` mirrorings (each mirrored slice's
    probabilities mirrored back), summed pairwise so that the result is exactly mirror-equivariant: the
    probabilities of a mirrored slice are the mirrored probabilities, bit for bit (every mirrored copy of
    a batch is its own forward pass of the same slices, so the same inputs meet the same computation).

    A pass mirrored left-right (TTA axis ``W``: the columns, the patient's right to left in the slice
    convention) also exchanges the channels of ``mirror_pairs`` (class names; default: the first model's
    declared pairs, :func:`~mmseg_medical.laterality.declared_pairs`), so ``left_lung`` seen mirrored counts
    as ``right_lung``; a left-right mirrored slice then gives the mirrored probabilities with those channels
    exchanged. A left/right class without a declared partner makes such a ``tta`` a :class:`MedSegError`.
    """

    def __init__(self, models: Sequence, tta: str = 'none', batch_size: int = 8,
                 names: Optional[Sequence[str]] = None, mirror_pairs: Optional[Sequence[Tuple[str, str]]] = None
                 ) -> None:
        if not models:
            raise ValueError('a Predictor needs at least one model')
        if tta not in TTA_MODES:
            raise MedSegError('--tta', f'unknown mode {tta!r}; choose from {", ".join(TTA_MODES)}')
        if batch_size < 1:
            raise MedSegError('--batch-size', f'must be >= 1, got {batch_size}')
        names = list(names) if names is not None else [f'model {i + 1}' for i in range(len(models))]
        self.models = list(models)
        self.tta = tta
        self.batch_size = batch_size
        self.classes = model_classes(models[0])
        self.threshold = _decision(models[0])
        for model, name in zip(self.models[1:], names[1:]):
            classes = model_classes(model)
            if classes != self.classes:
                raise MedSegError(name, f'predicts classes {list(classes)}, but {names[0]} predicts '
                                        f'{list(self.classes)}: the models of an ensemble must have the same classes')
            if _decision(model) != self.threshold:
                raise MedSegError(name, f'decides labels by {_describe_decision(_decision(model))}, but {names[0]} '
                                        f'by {_describe_decision(self.threshold)}: the models of an ensemble must '
                                        'decide labels the same way')
        if len(self.classes) > 256:
            raise MedSegError(names[0], f'{len(self.classes)} classes do not fit uint8 label maps')
        self._mirror = self._mirror_permutation(mirror_pairs, names[0])
        self._pipelines = [_array_pipeline(model) for model in self.models]

    def _mirror_permutation(self, pairs, name: str) -> Optional[List[int]]:
        """The channel permutation of a left-right mirrored pass (None: the TTA mode has none)."""
        from .laterality import LEFT_RIGHT_AXIS, declared_pairs, mirror_permutation

        if not any(LEFT_RIGHT_AXIS in axes for axes in TTA_MODES[self.tta]):
            return None
        if pairs is None:
            model = self.models[0]
            dataset = _test_dataset(model.cfg) if hasattr(model, 'cfg') else {}
            pairs = declared_pairs(getattr(model, 'dataset_meta', None), dataset.get('type'), dataset.get('data_root'))
        try:
            return mirror_permutation(self.classes, pairs, name)
        except MedSegError as exc:
            raise MedSegError('--tta', f'{self.tta} mirrors left and right, but {exc}; use --tta none') from None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """uint8 labels of ``(C, ...)`` probabilities: argmax over C (ties: the lower class), or for a
        sigmoid head ``p[1] > threshold`` (as ``mim test`` decides)."""
        if self.threshold is None:
            return np.argmax(probabilities, axis=0).astype(np.uint8)
        return (probabilities[1] > self.threshold).astype(np.uint8)

    @property
    def stacks(self) -> bool:
        """Whether a model of the ensemble is 2.5D (needs each slice's neighbours: ``(volume, k)`` items)."""
        return any(p.offsets is not None for p in self._pipelines)

    def slice_probabilities(self, slices: Iterable) -> Iterator[np.ndarray]:
        """``(C, H, W)`` float32 probabilities of each 8-bit slice, in order, reading ``batch_size`` slices at
        a time. An item is a slice (``(H, W)`` or ``(H, W, 3)`` BGR; sizes may differ) or ``(volume, k)``:
        slice ``k`` of a ``(Z, H, W[, n])`` volume, which 2.5D models need (their neighbours are stacked)."""
        stream = iter(slices)
        while True:
            batch = list(islice(stream, self.batch_size))
            if not batch:
                return
            for item in batch:
                image = item[0][item[1]] if isinstance(item, tuple) else item
                if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
                    raise ValueError(f'expected (H, W) or (H, W, 3) uint8 slices, got {image.dtype} {image.shape}')
            yield from self._batch(batch)

    def _batch(self, items: List) -> List[np.ndarray]:
        import torch

        flips = TTA_MODES[self.tta]
        total: Optional[List] = None
        with torch.inference_mode():
            for model, pipeline in zip(self.models, self._pipelines):
                images = [pipeline.input_of(item) for item in items]
                terms = []
                for axes in flips:
                    inputs = images if not axes else [
                        np.ascontiguousarray(np.flip(im, axis=tuple(_IMAGE_AXIS[a] for a in axes))) for im in images]
                    probabilities = self._forward(model, pipeline.pipeline, inputs)
                    if axes:
                        dims = [_PROBABILITY_DIM[a] for a in axes]
                        probabilities = [p.flip(dims=dims) for p in probabilities]
                        if 'W' in axes:  # the patient's left is now right: exchange the paired classes back
                            probabilities = [p[self._mirror] for p in probabilities]
                    terms.append(probabilities)
                mean = [_pairwise_sum([t[i] for t in terms]) * (1.0 / len(flips)) for i in range(len(images))]
                total = mean if total is None else [a + b for a, b in zip(total, mean)]
        scale = 1.0 / len(self.models)
        return [(p * scale if len(self.models) > 1 else p).cpu().numpy() for p in total]

    @staticmethod
    def _forward(model, pipeline, images: List[np.ndarray]) -> List:
        data: Dict[str, list] = {'inputs': [], 'data_samples': []}
        for image in images:
            packed = pipeline({'img': image})
            data['inputs'].append(packed['inputs'])
            data['data_samples'].append(packed['data_samples'])
        out = []
        for image, sample in zip(images, model.test_step(data)):
            probabilities = class_probabilities(sample.seg_logits.data)
            if tuple(probabilities.shape[1:]) != image.shape[:2]:
                raise RuntimeError(f'probabilities of shape {tuple(probabilities.shape)} for a slice of shape '
                                   f'{image.shape[:2]}')
            out.append(probabilities)
        return out

    def predict_volume(self, volume_uint8: np.ndarray, desc: Optional[str] = None,
                       probabilities_dtype: Optional[np.dtype] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """``(labels (Z, H, W) uint8, probabilities (C, Z, H, W) or None)`` of an 8-bit ``(Z, H, W)`` or
        ``(Z, H, W, 3)`` scan. With ``probabilities_dtype`` the probabilities are kept in that dtype and the
        labels are decided on those stored values, so they are exactly their argmax."""
        from tqdm import tqdm

        volume_uint8 = np.asarray(volume_uint8)
        channels = volume_uint8.ndim == 4 and volume_uint8.shape[3] == 3
        if not (volume_uint8.ndim == 3 or channels) or volume_uint8.dtype != np.uint8:
            raise ValueError(f'expected a (Z, H, W) or (Z, H, W, 3) uint8 array, got {volume_uint8.dtype} '
                             f'{volume_uint8.shape}')
        z = volume_uint8.shape[0]
        labels = np.zeros(volume_uint8.shape[:3], np.uint8)
        probabilities = None
        if probabilities_dtype is not None:
            probabilities = np.empty((self.num_classes,) + volume_uint8.shape[:3], dtype=probabilities_dtype)
        with tqdm(total=z, desc=desc, unit='slice', disable=None, leave=False, file=sys.stderr) as bar:
            for k, p in enumerate(self.slice_probabilities((volume_uint8, k) for k in range(z))):
                if p.shape[0] != self.num_classes:
                    raise RuntimeError(f'{p.shape[0]} probability channels for {self.num_classes} classes')
                if probabilities is not None:
                    probabilities[:, k] = p
                    p = probabilities[:, k]
                labels[k] = self.decide(p)
                bar.update(1)
        return labels, probabilities


def _pairwise_sum(terms: List):
    """``t0`` / ``t0 + t1`` / ``(t0 + t1) + (t2 + t3)``: a sum that a mirroring of the TTA set only
    permutes within commutative pairs, so it is the same in floating point."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] for i in range(0, len(terms), 2)]
    return terms[0]


def _describe_decision(threshold: Optional[float]) -> str:
    return 'argmax' if threshold is None else f'a sigmoid threshold of {threshold:g}'


# ---- reading scans as prepare read them ---------------------------------------------------------------------
@dataclass
class ScanCase:
    """One scan to segment: ``load()`` gives ``(source volume, 8-bit slices on the model's grid, geometry)``
    where geometry holds ``display_transform`` and ``spatial`` (how the slices were made from the source,
    undone by :func:`~mmseg_medical.restacking.to_source_grid`)."""

    case_id: str
    load: Callable[[], Tuple[Volume, np.ndarray, dict]]
    source: str = ''


def _slices_as_prepared(converter: DatasetConverter, image: Volume, to_uint8: Callable[[Volume], np.ndarray]
                        ) -> Tuple[np.ndarray, dict]:
    """What ``convert_case`` does to a case's image: display convention (sources already in display
    orientation are kept), the converter's in-plane transform, its intensity rule."""
    record = None if image.meta.get('display_orientation') else display_transform(image)
    display = to_display(image, record)
    grid, _, spatial = converter.spatial_transform(display, None)
    return to_uint8(grid), {'display_transform': record, 'spatial': spatial}


def file_cases(inputs: Sequence[InputCase], converter: DatasetConverter) -> List[ScanCase]:
    """Scans found by :func:`find_inputs`, read with ``converter``'s rules (its ``volume_intensity``);
    case ids as the converter's dataset names them (:func:`dataset_case_id`)."""
    def reader(kind: str, path: Path) -> Callable[[], Tuple[Volume, np.ndarray, dict]]:
        def load() -> Tuple[Volume, np.ndarray, dict]:
            volume = load_input(kind, path)
            pixels, geometry = _slices_as_prepared(converter, volume, converter.volume_intensity)
            return volume, pixels, geometry
        return load

    cases = [ScanCase(dataset_case_id(converter, case_id) if kind == NIFTI else case_id, reader(kind, path), str(path))
             for case_id, kind, path in inputs]
    seen: Dict[str, str] = {}
    for case in cases:
        if case.case_id in seen:
            raise MedSegError(case.source, f'is case {case.case_id!r} of the {converter.name} dataset, as is '
                                           f'{seen[case.case_id]}')
        seen[case.case_id] = case.source
    return cases


def read_dataset_card(root: PathLike) -> dict:
    """``<root>/dataset.json`` of a prepared dataset (:func:`mmseg_medical.manifest.read_dataset_card`), checked to
    name a known converter and hold its settings as an object."""
    from .manifest import read_dataset_card as read_card

    info = read_card(root)
    card = Path(root) / 'dataset.json'
    if info.get('name') not in CONVERTERS:
        raise MedSegError(card, f'names no known converter (got {info.get("name")!r}; '
                                f'known: {", ".join(sorted(CONVERTERS))})')
    if not isinstance(info.get('settings') or {}, dict):
        raise MedSegError(card, '"settings" must be an object')
    return info


def dataset_cases(root: PathLike, split: str, src: Optional[PathLike] = None) -> Tuple[DatasetConverter, List[ScanCase]]:
    """The cases of split list ``split`` of the prepared dataset ``root``, read from the raw release as
    ``prepare`` read them: the converter named in ``dataset.json`` with its ``settings`` finds the cases
    under ``src`` (default: the release folder ``dataset.json`` records as ``source``) and reads each
    case's image (``read_image``, ``to_uint8``), so e.g. a HemSeg scan comes from the flat RSNA folder and
    its scan list without restructuring. Returns the converter and the cases in split order.

    Raises :class:`MedSegError` for an unknown split, a release that is not there, or a case of the split
    the release no longer gives; :meth:`ScanCase.load` raises when a case's slices no longer have the
    shape ``prepare`` recorded (``cases/<case>.json``).
    """
    from .manifest import read_case_geometry

    root = Path(root)
    info = read_dataset_card(root)
    wanted = split_cases(root, split)
    if src is None:
        if not info.get('source'):
            raise MedSegError(root / 'dataset.json', 'records no release folder ("source": the dataset was '
                                                     'prepared from options naming each input); give --src')
        src = Path(info['source'])
        if not src.exists():
            raise MedSegError(src, f'the release {root / "dataset.json"} was prepared from is not there; '
                                   'give its new place as --src')
    src = Path(src)
    if not src.exists():
        raise MedSegError(src, 'release folder not found (--src)')
    try:
        converter = CONVERTERS[info['name']](skip_bad=True, **(info.get('settings') or {}))
    except TypeError as exc:
        raise MedSegError(root / 'dataset.json', f'settings do not fit the {info["name"]} converter ({exc})') from None
    with contextlib.redirect_stderr(io.StringIO()):  # the spec's split warnings concern prepare, not inference
        found = {case.case_id: case for case in converter.find_cases(src)}
    missing = [c for c in wanted if c not in found]
    if missing:
        why = converter.skipped.get(missing[0])
        raise MedSegError(src, f'{len(missing)} case(s) of split {split!r} not found in this release, e.g. '
                               f'{missing[0]}' + (f' ({why})' if why else ''))

    def reader(case) -> Callable[[], Tuple[Volume, np.ndarray, dict]]:
        def load() -> Tuple[Volume, np.ndarray, dict]:
            image = converter.read_image(case)
            pixels, geometry = _slices_as_prepared(converter, image, lambda grid: converter.to_uint8(case, grid))
            recorded = read_case_geometry(root, case.case_id).get('shape_zhw')
            if recorded is not None and list(pixels.shape[:3]) != list(recorded):
                raise MedSegError(image.source, f'case {case.case_id} gives slices (Z, H, W) {list(pixels.shape[:3])} '
                                                f'but was prepared as {list(recorded)}: the release or the code '
                                                'changed since prepare; prepare the dataset again')
            return image, pixels, geometry
        return load

    return converter, [ScanCase(c, reader(found[c]), str(next(found[c].files(), src))) for c in wanted]


# ---- writing ---------------------------------------------------------------------------------------------
def write_prediction(labels: np.ndarray, volume: Volume, path: PathLike) -> Path:
    """Write ``labels`` (Z, H, W) as a uint8 NIfTI with ``volume``'s affine (and NIfTI header, if any).

    A source without an affine (frames of a viewer's export) is written with none (qform and sform codes
    0), as ``labels/<case>.nii.gz`` of the prepared dataset is.
    """
    if labels.shape != volume.array.shape:
        raise ValueError(f'labels shape {labels.shape} != volume shape {volume.array.shape}')
    prediction = Volume(array=labels.astype(np.uint8, copy=False), spacing=volume.spacing, affine=volume.affine)
    if volume.affine is None:
        import nibabel as nib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(prediction.nifti_array()), None), str(path))
        return path
    return save_nifti(prediction, Path(path), dtype=np.uint8, header=volume.meta.get('header'))


def probabilities_to_source(probabilities: np.ndarray, geometry: dict) -> np.ndarray:
    """``(C, Z, H, W)`` probabilities on the slice grid → ``(C, I, J, K)`` in the source file's voxel order
    (NIfTI ``(i, j, k)``), through the inverse the labels take (:func:`~mmseg_medical.restacking.to_source_grid`):
    the in-plane crop undone (voxels outside it: probability 1 for class 0, background, and 0 for the
    others), nearest-neighbour back from a resampled grid, the display reorientation undone."""
    out = None
    for c in range(probabilities.shape[0]):
        plane = probabilities[c]
        if geometry.get('spatial'):
            plane = invert_spatial(plane, geometry['spatial'], fill=1 if c == 0 else 0)
        plane = to_source(plane, geometry.get('display_transform')).transpose(2, 1, 0)
        if out is None:
            out = np.empty((probabilities.shape[0],) + plane.shape, dtype=probabilities.dtype)
        out[c] = plane
    return out


def segment(cases: Sequence[ScanCase], predictor: Predictor, out_dir: PathLike,
            postprocess: Optional[PathLike] = None, probabilities_dtype: Optional[np.dtype] = None,
            label_suffix: str = '') -> List[Path]:
    """Segment every case into ``out_dir/<case><label_suffix>.nii.gz`` (and, with ``probabilities_dtype``,
    ``out_dir/<case>.npz`` holding ``probabilities``: classes x the source's voxel shape); all or nothing.

    The labels are decided on the slice grid (on the stored probabilities when those are saved, so the
    saved labels are exactly their argmax), then the optional ``postprocess`` rules (a
    ``postprocessing.json`` written by ``VolumeMetric``) apply there as in ``VolumeMetric`` (they change
    the labels only), and both go back to the source grid by the same inverse. One case is in memory at
    a time. Files are staged in a hidden folder beside ``out_dir`` and moved in only when every case has
    succeeded (existing files of the same name are replaced); on any error nothing is written (nor are
    the missing parent folders of ``out_dir`` left behind).

    ``out_dir`` may hold other files: they are never deleted. The files of this run are listed in
    ``out_dir/infer_volume.json`` (:data:`~mmseg_medical.outputs.PREDICTION_LISTING`, replaced with the
    files), ``evaluate_volumes`` scores only the prediction files listed there, and the others (stale
    predictions of an earlier run, a user's notes) are named in one ``warning:`` line on stderr. A staging
    folder a killed run left (its process gone) is removed first.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MedSegError(out_dir, 'output exists and is not a folder')
    rules = None
    if postprocess is not None:
        from .evaluation.postprocess import load_rules
        load_rules(postprocess)  # a bad file is an error before any scan is read
        rules = postprocess
    from .conversion.engine import remove_stale
    remove_stale(out_dir.parent, f'.{out_dir.name}.infer-*')  # left by a killed run
    staging = out_dir.parent / f'.{out_dir.name}.infer-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    created = next((p for p in reversed(out_dir.absolute().parents) if not p.exists()), None)
    staging.mkdir(parents=True)
    done = False
    try:
        names: List[str] = []
        for case in tqdm(cases, desc='cases', unit='case', disable=None if len(cases) > 1 else True, file=sys.stderr):
            volume, pixels, geometry = case.load()
            labels, probabilities = predictor.predict_volume(pixels, case.case_id, probabilities_dtype)
            del pixels
            if rules is not None:  # on the slice grid, where VolumeMetric chose and applies the rules
                from .evaluation.postprocess import apply_postprocessing
                labels = apply_postprocessing(labels, rules)
            name = f'{case.case_id}{label_suffix}{PREDICTION_SUFFIX}'
            write_prediction(to_source_grid(labels, geometry).array, volume, staging / name)
            names.append(name)
            if probabilities is not None:
                name = f'{case.case_id}{PROBABILITIES_SUFFIX}'
                np.savez_compressed(staging / name, probabilities=probabilities_to_source(probabilities, geometry))
                names.append(name)
            del volume, labels, probabilities
        write_listing(staging, names)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names + [PREDICTION_LISTING]:  # the listing last: it names files that are in place
            os.replace(staging / name, out_dir / name)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and created is not None:  # folders made only for the staging area go too
            shutil.rmtree(created, ignore_errors=True)
    others = unlisted_entries(out_dir)
    if others:
        shown = ', '.join(others[:20]) + (f' and {len(others) - 20} more' if len(others) > 20 else '')
        print(f'warning: {out_dir}: {len(others)} file(s) here were not written by this run and are left as they '
              f'are, not deleted (evaluate_volumes scores only the files listed in {PREDICTION_LISTING}): {shown}',
              file=sys.stderr)
    return [out_dir / name for name in names]


def infer(models: Sequence[Tuple[PathLike, PathLike]], out_dir: PathLike, input: Optional[PathLike] = None,
          data: Optional[PathLike] = None, split: Optional[str] = None, src: Optional[PathLike] = None,
          cfg_options: Optional[dict] = None, tta: str = 'none', batch_size: int = 8, device: str = 'cpu',
          postprocess: Optional[PathLike] = None, probabilities_dtype: Optional[np.dtype] = None,
          label_suffix: str = '') -> List[Path]:
    """What ``tools/infer_volume.py`` does: segment the scans under ``input``, or the cases of split ``split``
    of the prepared dataset ``data`` (read from its raw release, ``src`` overriding the recorded one), with
    the ensemble of ``models`` (``(config, checkpoint)`` pairs, config ``None``: the training config the
    checkpoint carries; ``cfg_options`` apply to every config) into
    ``out_dir`` (:func:`segment`). Every model is loaded, and the inputs found, before any case is read;
    returns the written files."""
    if (input is None) == (data is None):
        raise ValueError('give exactly one of input and data')
    check_apart(out_dir, '--output', {'--input': input}, read_inside=read_by_find_inputs)
    if data is not None:  # a prepared dataset: replaced whole by prepare --overwrite; its release: searched whole
        from .manifest import read_dataset_card
        recorded = src if src is not None else read_dataset_card(data).get('source')
        check_apart(out_dir, '--output', {'--data': data, '--src': recorded})
    from .checkpoints import config_from_checkpoint

    # a model given as a checkpoint alone (config None) is built from the training config it carries
    keys = [checkpoint if config is None else config for config, checkpoint in models]
    configs = {key: load_config(key, cfg_options) if config is not None else config_from_checkpoint(key, cfg_options)
               for key, (config, _) in dict(zip(keys, models)).items()}
    if data is not None:
        if not split:
            raise MedSegError('--split', 'give the split list of --data to segment, e.g. --split test')
        converter, cases = dataset_cases(data, split, src)
        for config, cfg in configs.items():  # e.g. a COVID-19-CT-Seg model on MosMed: allowed, but said
            dataset_type = (cfg.get('test_dataloader') or {}).get('dataset', {}).get('type')
            if dataset_type != converter.dataset_type:
                print(f'warning: {config} tests on {dataset_type}; {data} was prepared by the {converter.name} '
                      f'converter ({converter.dataset_type}), whose rules make the slices', file=sys.stderr)
    else:
        inputs = find_inputs(input)
        readers = {config: converter_for(cfg) for config, cfg in configs.items()}
        first, converter = next(iter(readers.items()))
        for config, other in readers.items():
            if (other.name, other.settings()) != (converter.name, converter.settings()):
                raise MedSegError(config, f'reads scans as {other.name} {other.settings()}, but {first} as '
                                          f'{converter.name} {converter.settings()}: the models of an ensemble '
                                          'must share the intensity rule and slice grid')
        cases = file_cases(inputs, converter)
    loaded = [load_model(configs[key], checkpoint, device) for key, (_, checkpoint) in zip(keys, models)]
    predictor = Predictor(loaded, tta, batch_size, names=[str(checkpoint) for _, checkpoint in models])
    return segment(cases, predictor, out_dir, postprocess, probabilities_dtype, label_suffix)
