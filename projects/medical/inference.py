"""Segment whole scans (NIfTI files, DICOM series) with a trained 2D model, slice by slice.

The scan gets the intensity rule of the dataset the model was trained on (the converter whose
``dataset_type`` is the config's test dataset type, built with the ``settings`` that ``prepare`` stored
in ``<data_root>/dataset.json``) and the one slice convention ``prepare`` writes (``slice_convention`` in
dataset.json, :mod:`mmseg_medical.orientation`), so its slices are the same 8-bit images the training
PNGs were. Each
slice is given to the model exactly as ``LoadImageFromFile`` gives a grayscale PNG (replicated to three
BGR channels) through the config's *test dataloader* pipeline (what ``mim test`` runs). The predicted
labels are restacked, put back into the scan's own voxel order and written as ``<case>.nii.gz`` with
the scan's affine (and, for NIfTI input, its header, so qform/sform codes are kept).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .conversion import CONVERTERS, DatasetConverter
from .errors import MedSegError
from .io import nifti_stem, read_dicom_folder, read_nifti
from .io.dicom import dicom_files_in
from .io.nifti import NIFTI_SUFFIXES
from .orientation import display_transform, to_display
from .restacking import to_source_grid
from .volume import Volume, save_nifti

PathLike = Union[str, os.PathLike]
NIFTI, DICOM = 'nifti', 'dicom'
#: ``(case_id, kind, path)``: kind is :data:`NIFTI` (a file) or :data:`DICOM` (a series folder).
InputCase = Tuple[str, str, Path]
#: ``LoadImageFromFile`` colour types that give a 2D array for a grayscale PNG (others give H x W x 3).
_TWO_D_COLOR_TYPES = ('grayscale', 'unchanged', 'grayscale_ignore_orientation')
PREDICTION_SUFFIX = '.nii.gz'


def _is_nifti(path: Path) -> bool:
    return path.is_file() and any(path.name.endswith(s) and len(path.name) > len(s) for s in NIFTI_SUFFIXES)


def find_inputs(path: PathLike) -> List[InputCase]:
    """The scans under ``path``: a NIfTI file, a folder that is one DICOM series, or a folder of them.

    In a folder of scans, NIfTI files and subfolders holding DICOM files count (hidden entries and
    anything else are skipped). Case id = NIfTI file stem or DICOM folder name; two scans with the same
    id, or nothing to segment, raise :class:`MedSegError`.
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
    for entry in sorted(path.iterdir()):
        if entry.name.startswith('.'):
            continue
        if _is_nifti(entry):
            found.append((nifti_stem(entry), NIFTI, entry))
        elif entry.is_dir() and dicom_files_in(entry):
            found.append((entry.name, DICOM, entry))
    if not found:
        raise MedSegError(path, 'nothing to segment: no NIfTI file (.nii/.nii.gz) and no DICOM series '
                                '(a folder of *.dcm or DICM-marked files) here or in its subfolders')
    seen: Dict[str, Path] = {}
    for case_id, _, entry in found:
        if case_id in seen:
            raise MedSegError(entry, f'case {case_id!r} is also given by {seen[case_id].name}')
        seen[case_id] = entry
    return found


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

    The class is the registered converter whose ``dataset_type`` is ``test_dataloader.dataset.type``;
    its settings come from ``<data_root>/dataset.json`` (``data_root`` as in the config, relative to the
    working directory) when that file exists, else the converter's defaults.
    """
    dataset = _test_dataset(cfg)
    dataset_type = dataset['type']
    matches = [cls for cls in CONVERTERS.values() if cls.dataset_type == dataset_type]
    if not matches:
        known = sorted(cls.dataset_type for cls in CONVERTERS.values() if cls.dataset_type)
        raise MedSegError(cfg.filename, f'dataset type {dataset_type!r} has no converter, so its intensity '
                                        f'rule is unknown (datasets with one: {", ".join(known)})')
    cls = matches[0]
    data_root = dataset.get('data_root')
    card = Path(data_root) / 'dataset.json' if data_root else None
    if card is None or not card.is_file():
        return cls()
    try:
        info = json.loads(card.read_text())
        settings = info.get('settings') or {}
        name = info.get('name')
    except (OSError, ValueError, AttributeError) as exc:
        raise MedSegError(card, f'cannot read dataset card ({type(exc).__name__}: {exc})') from None
    if name != cls.name:
        raise MedSegError(card, f'prepared by converter {name!r}, but dataset type {dataset_type!r} '
                                f'belongs to {cls.name!r}')
    if not isinstance(settings, dict):
        raise MedSegError(card, f'"settings" must be an object, got {type(settings).__name__}')
    try:
        return cls(**settings)
    except TypeError as exc:
        raise MedSegError(card, f'settings do not fit the {cls.name} converter ({exc})') from None


def spatial_for(cfg) -> Optional[Callable[[Volume], Tuple[Volume, Optional[dict]]]]:
    """The converter's in-plane resampling / cropping of a display-order scan (None if it has none)."""
    converter = converter_for(cfg)
    if type(converter).spatial_transform is DatasetConverter.spatial_transform:
        return None

    def apply(volume: Volume) -> Tuple[Volume, Optional[dict]]:
        image, _, record = converter.spatial_transform(volume, None)
        return image, record
    return apply


def intensity_for(cfg) -> Callable[[Volume], np.ndarray]:
    """The rule ``Volume → (Z, H, W) uint8`` that made the training slices of the config's dataset."""
    return converter_for(cfg).volume_intensity


def load_model(cfg, checkpoint: PathLike, device: str = 'cpu'):
    """``mmseg.apis.init_model`` with a strict checkpoint load and the test dataloader's pipeline.

    ``init_model`` loads non-strictly (a checkpoint of a differently sized model only logs warnings and
    fails later in the forward pass), so the weights are loaded here with ``strict=True``.
    ``model.cfg.test_pipeline`` is set to ``test_dataloader.dataset.pipeline``, which is what
    ``mim test`` runs (the top-level ``test_pipeline`` is a copy taken when the config file was read, so
    ``--cfg-options`` on the dataloader do not reach it); :func:`predict_volume` and
    ``mmseg.apis.inference_model`` then agree with ``mim test``.
    """
    import torch
    from mmengine.runner import load_checkpoint
    from mmseg.apis import init_model

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
    try:
        state = load_checkpoint(model, str(checkpoint), map_location='cpu', strict=True)
    except RuntimeError as exc:
        detail = ' '.join(str(exc).split())
        raise MedSegError(checkpoint, 'does not fit the model built from the config (pass the --cfg-options '
                                      f'it was trained with): {detail[:300]}') from None
    except Exception as exc:  # torch / pickle raise many types for unreadable checkpoints
        raise MedSegError(checkpoint, f'cannot read checkpoint ({type(exc).__name__}: {exc})') from None
    meta = state.get('meta', {}) if isinstance(state, dict) else {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()


def _array_pipeline(model) -> Tuple[Callable[[dict], dict], bool]:
    """The model's test pipeline fed from arrays; also whether it wants 2D (grayscale) images."""
    from mmengine.dataset import Compose

    steps = [copy.deepcopy(t) for t in model.cfg.test_pipeline if t.get('type') != 'LoadAnnotations']
    first = steps[0]
    if str(first.get('type')).split('.')[-1] != 'LoadImageFromFile':
        raise MedSegError(model.cfg.filename, f'test pipeline starts with {first.get("type")!r}, not '
                                              'LoadImageFromFile: cannot feed it slices')
    first['type'] = 'LoadImageFromNDArray'
    return Compose(steps), first.get('color_type', 'color') in _TWO_D_COLOR_TYPES


def predict_volume(model, volume_uint8: np.ndarray, batch_size: int = 8, desc: Optional[str] = None) -> np.ndarray:
    """Labels ``(Z, H, W)`` uint8 of an 8-bit ``(Z, H, W)`` or ``(Z, H, W, 3)`` scan, ``batch_size`` slices
    per forward pass.

    Each slice goes in as ``LoadImageFromFile`` reads its PNG: a grayscale image replicated to
    ``H x W x 3`` BGR (or left 2D when the pipeline loads grayscale); a 3-channel slice as it is.
    """
    import torch
    from tqdm import tqdm

    volume_uint8 = np.asarray(volume_uint8)
    channels = volume_uint8.ndim == 4 and volume_uint8.shape[3] == 3
    if not (volume_uint8.ndim == 3 or channels) or volume_uint8.dtype != np.uint8:
        raise ValueError(f'expected a (Z, H, W) or (Z, H, W, 3) uint8 array, got {volume_uint8.dtype} '
                         f'{volume_uint8.shape}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    pipeline, two_d = _array_pipeline(model)
    labels = np.zeros(volume_uint8.shape[:3], np.uint8)
    num_slices = volume_uint8.shape[0]
    with torch.no_grad(), tqdm(total=num_slices, desc=desc, unit='slice', disable=None, file=sys.stderr) as bar:
        for start in range(0, num_slices, batch_size):
            stop = min(start + batch_size, num_slices)
            data: Dict[str, list] = {'inputs': [], 'data_samples': []}
            for k in range(start, stop):
                if channels:  # 3-channel PNGs (e.g. one HU window per channel), BGR as cv2 wrote them
                    image = volume_uint8[k]
                else:
                    image = volume_uint8[k] if two_d else np.repeat(volume_uint8[k][:, :, None], 3, axis=2)
                packed = pipeline({'img': image})
                data['inputs'].append(packed['inputs'])
                data['data_samples'].append(packed['data_samples'])
            for k, sample in zip(range(start, stop), model.test_step(data)):
                pred = sample.pred_sem_seg.data[0].cpu().numpy()
                if pred.shape != volume_uint8.shape[1:3]:
                    raise RuntimeError(f'prediction shape {pred.shape} != slice shape {volume_uint8.shape[1:3]}')
                if pred.size and (pred.min() < 0 or pred.max() > 255):
                    raise RuntimeError(f'label values {pred.min()}..{pred.max()} do not fit uint8')
                labels[k] = pred
            bar.update(stop - start)
    return labels


def write_prediction(labels: np.ndarray, volume: Volume, path: PathLike) -> Path:
    """Write ``labels`` (Z, H, W) as a uint8 NIfTI with ``volume``'s affine (and NIfTI header, if any)."""
    if labels.shape != volume.array.shape:
        raise ValueError(f'labels shape {labels.shape} != volume shape {volume.array.shape}')
    prediction = Volume(array=labels.astype(np.uint8, copy=False), spacing=volume.spacing, affine=volume.affine)
    return save_nifti(prediction, Path(path), dtype=np.uint8, header=volume.meta.get('header'))


def infer(inputs: Sequence[InputCase], intensity: Callable[[Volume], np.ndarray], model, out_dir: PathLike,
          batch_size: int = 8, spatial: Optional[Callable[[Volume], Tuple[Volume, Optional[dict]]]] = None,
          postprocess: Optional[PathLike] = None) -> List[Path]:
    """Segment every input into ``out_dir/<case>.nii.gz``; all or nothing.

    Each scan is put in the display slice convention, then through ``spatial`` (the converter's in-plane
    resampling / cropping, :func:`spatial_for`) and ``intensity``; the optional ``postprocess`` rules (a
    ``postprocessing.json`` written by ``VolumeMetric``) apply on that slice grid, as in ``VolumeMetric``;
    the labels then go back the same way (:func:`~mmseg_medical.restacking.to_source_grid`).

    Predictions are staged in a hidden folder beside ``out_dir`` and moved in only when every case has
    succeeded (existing files of the same name are replaced); on any error nothing is written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MedSegError(out_dir, 'output exists and is not a folder')
    staging = out_dir.parent / f'.{out_dir.name}.infer-{uuid.uuid4().hex[:8]}'
    staging.mkdir(parents=True)
    try:
        names = []
        for case_id, kind, path in inputs:
            volume = load_input(kind, path)
            record = display_transform(volume)  # the slice convention the training PNGs were written in
            display = to_display(volume, record)
            grid, spatial_record = (spatial(display) if spatial else (display, None))
            labels = predict_volume(model, intensity(grid), batch_size, desc=case_id)
            if postprocess is not None:  # on the slice grid, where VolumeMetric chose and applies the rules
                from .evaluation.postprocess import apply_postprocessing
                labels = apply_postprocessing(labels, postprocess)
            # back the way prepare's slices came: the same inverse restacking uses
            labels = to_source_grid(labels, {'spatial': spatial_record, 'display_transform': record}).array
            name = f'{case_id}{PREDICTION_SUFFIX}'
            write_prediction(labels, volume, staging / name)
            names.append(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in names]
