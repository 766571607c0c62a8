"""COVID-19-CT-Seg slices read as one subtask, several prepared datasets read as one (the benchmark's Task 2
and 3 training sets), and the datasets of every NIfTI-pair spec (MosMed, MSD Task06 Lung, StructSeg, NSCLC
and any spec added to :data:`mmseg_medical.conversion.nifti_pairs.SPECS`).

A prepared folder states its classes in ``dataset.json``; :func:`stored_label_map` maps them onto the
classes a config trains or tests (the subtask's), so a mask is never reinterpreted silently:

* the same classes: no mapping;
* COVID-19-CT-Seg's ``all`` store: its codes read as the subtask (:data:`~mmseg_medical.conversion.covid19.CODE_MAPS`);
* otherwise by class name, with the benchmark's lesion names (:data:`LESION_NAMES`: tumour, GTV, pleural
  effusion) read as the subtask's ``infection`` class; a stored class the subtask has no class for is an
  error (e.g. a MosMed folder tested with the lung model).

:class:`Covid19VolumeMetric` is :class:`~mmseg_medical.evaluation.VolumeMetric` reading each case's source
label (``labels/<case>.nii.gz``, stored classes) through the same map, so the 3D scores count the classes
the model was trained on.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.registry import DATASETS, METRICS

from ..conversion.covid19 import ALL, CODE_MAPS, JOINT, MIRROR_PAIRS, SUBTASKS, subtask_classes
from ..conversion.nifti_pairs import SPECS
from ..errors import MedSegError
from ..evaluation.volume_metric import VolumeMetric
from ..laterality import pairs_within
from .base import MedicalSliceDataset

_PALETTE = [[0, 0, 0], [0, 128, 255], [0, 200, 0], [255, 0, 0], [255, 255, 0], [255, 0, 255], [0, 255, 255]]
#: Class names of the benchmark's "lesion" (its evaluation script: ``LesionDSC``): one class of the
#: infection subtask, whatever the source calls it.
LESION_NAMES = ('infection', 'lesion', 'tumour', 'tumor', 'gtv', 'effusion', 'pleural_effusion')


def palette(num_classes: int) -> List[List[int]]:
    return [list(c) for c in _PALETTE[:num_classes]]


def _canonical(name: str) -> str:
    return 'infection' if name in LESION_NAMES else name


def stored_label_map(data_root: Optional[str], classes: Sequence[str], subtask: str) -> Optional[Dict[int, int]]:
    """Mask value → class index of ``classes`` for the prepared folder ``data_root`` (``None``: the masks
    already hold these indices, or the folder has no ``dataset.json``). Raises :class:`MedSegError` naming
    the folder when a stored class has no counterpart."""
    card_path = osp.join(data_root, 'dataset.json') if data_root else None
    if card_path is None or not osp.isfile(card_path):
        return None
    try:
        with open(card_path) as f:
            card = json.load(f)
        stored = [str(c) for c in card['classes']]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedSegError(card_path, f'cannot read its classes ({exc})') from None
    if tuple(stored) == tuple(classes):
        return None
    if card.get('name') == 'covid19' and (card.get('settings') or {}).get('subtask') == ALL:
        if subtask not in CODE_MAPS:
            raise MedSegError(card_path, f'the all-masks store is read as a subtask ({", ".join(CODE_MAPS)}), '
                                         f'not {subtask!r}')
        return dict(CODE_MAPS[subtask])
    wanted = {_canonical(c): i for i, c in enumerate(classes)}
    mapping = {}
    for value, name in enumerate(stored):
        target = wanted.get(_canonical(name))
        if target is None:
            raise MedSegError(card_path, f'stored class {name!r} (mask value {value}) has no class in '
                                         f'{list(classes)} (subtask {subtask!r})')
        mapping[value] = target
    return None if all(k == v for k, v in mapping.items()) else mapping


@DATASETS.register_module()
class Covid19Dataset(MedicalSliceDataset):
    """Chest CT slices (lung window) of ``prepare_dataset.py covid19`` (or of any prepared chest CT folder)
    read as a COVID-19-CT-Seg subtask: ``lung_infection`` (background, left_lung, right_lung, infection;
    default), ``lung`` or ``infection`` (``all``: the raw codes of the all-masks store). The metainfo's
    ``mirror_pairs`` are the subtask's share of :data:`~mmseg_medical.conversion.covid19.MIRROR_PAIRS` (saved in
    every checkpoint, read by mirror TTA).

    The masks are mapped to the subtask's classes by :func:`stored_label_map` from the folder's
    ``dataset.json``: one ``prepare_dataset.py covid19`` (default ``--subtask all``) feeds the joint, the
    lung and the infection model; a MosMed folder (background, infection) is read as the joint model's
    class 3 or the infection model's class 1.
    """

    METAINFO = dict(classes=subtask_classes(JOINT), palette=palette(4), mirror_pairs=MIRROR_PAIRS)

    def __init__(self, subtask: str = JOINT, metainfo: Optional[dict] = None, **kwargs) -> None:
        classes = subtask_classes(subtask)
        self.subtask = subtask
        metainfo = {'classes': classes, 'palette': palette(len(classes)),
                    'mirror_pairs': pairs_within(MIRROR_PAIRS, classes), **(metainfo or {})}
        super().__init__(metainfo=metainfo, **kwargs)

    def get_label_map(self, new_classes=None) -> Optional[Dict[int, int]]:  # type: ignore[override]
        """The stored masks → this subtask's classes (called by mmseg's ``__init__`` with ``data_root`` set)."""
        return stored_label_map(self.data_root, self._metainfo['classes'], self.subtask)


@DATASETS.register_module()
class Covid19MultiSourceDataset(Covid19Dataset):
    """The union of split lists of several prepared folders, read as one subtask (the benchmark's Task 2
    and 3 training and validation sets; mmengine's ``ConcatDataset`` cannot take folders with different
    stored classes, so each sample carries its own folder's label map).

    Args:
        sources: ``[dict(root='msd-lung', ann_file='splits/covid19_task2_train.txt'), ...]``: each
            ``root`` a prepared folder (relative to ``data_root``, or absolute) and ``ann_file`` one of its
            split lists (relative to ``root``).
        subtask: as :class:`Covid19Dataset`; every source's classes are mapped to it by name.
        data_root: the folder holding the prepared folders (e.g. ``'data/'``).
    """

    def __init__(self, sources: Sequence[dict], subtask: str = JOINT, data_root: Optional[str] = None,
                 data_prefix: Optional[dict] = None, **kwargs) -> None:
        if kwargs.pop('ann_file', ''):
            raise MedSegError(None, 'Covid19MultiSourceDataset takes its split lists per source '
                                    "(sources=[dict(root=..., ann_file=...)]), not ann_file")
        if not sources:
            raise MedSegError(None, 'Covid19MultiSourceDataset: sources is empty')
        for s in sources:
            if not isinstance(s, dict) or set(s) != {'root', 'ann_file'}:
                raise MedSegError(None, f'Covid19MultiSourceDataset: each source is dict(root=..., ann_file=...), '
                                        f'got {s!r}')
        self.sources = [dict(s) for s in sources]
        self._prefix = dict(data_prefix or dict(img_path='images/', seg_map_path='masks/'))
        super().__init__(subtask=subtask, data_root=data_root, data_prefix=dict(self._prefix), ann_file='',
                         **kwargs)

    def get_label_map(self, new_classes=None) -> None:  # type: ignore[override]
        return None  # per source, in each sample (load_data_list)

    def source_roots(self) -> List[Tuple[str, str]]:
        """(folder, split list path) of every source."""
        base = self.data_root or ''
        return [(osp.join(base, s['root']), osp.join(base, s['root'], s['ann_file'])) for s in self.sources]

    def load_data_list(self) -> List[dict]:
        data_list = []
        img_dir, seg_dir = self._prefix.get('img_path', ''), self._prefix.get('seg_map_path')
        for root, ann_file in self.source_roots():
            if not osp.isfile(ann_file):
                raise MedSegError(ann_file, 'split list not found (prepare that dataset, with --split for the '
                                            "benchmark's lists, or check the source's root / ann_file)")
            label_map = stored_label_map(root, self._metainfo['classes'], self.subtask)
            with open(ann_file) as f:
                stems = [ln.strip() for ln in f if ln.strip()]
            for stem in stems:
                info = dict(img_path=osp.join(root, img_dir, stem + self.img_suffix), label_map=label_map,
                            reduce_zero_label=self.reduce_zero_label, seg_fields=[])
                if seg_dir:
                    info['seg_map_path'] = osp.join(root, seg_dir, stem + self.seg_map_suffix)
                    if not osp.isfile(info['seg_map_path']):
                        raise MedSegError(info['seg_map_path'], f'no mask for slice {stem} listed by {ann_file}')
                data_list.append(info)
        return data_list


def subtask_of(classes: Sequence[str]) -> str:
    """The COVID-19-CT-Seg subtask whose classes are ``classes`` (``all`` for the store's codes)."""
    for name in (*SUBTASKS, ALL):
        if tuple(subtask_classes(name)) == tuple(classes):
            return name
    raise MedSegError(None, f'classes {list(classes)} are no COVID-19-CT-Seg subtask\'s')


def apply_label_map(array: np.ndarray, mapping: Optional[Dict[int, int]]) -> np.ndarray:
    """``mapping`` applied to an integer label array (values not in it are kept, as mmseg's LoadAnnotations)."""
    if not mapping:
        return array
    out = array.copy()
    for old, new in mapping.items():
        out[array == old] = new
    return out


@METRICS.register_module()
class Covid19VolumeMetric(VolumeMetric):
    """:class:`~mmseg_medical.evaluation.VolumeMetric` for :class:`Covid19Dataset` and
    :class:`Covid19MultiSourceDataset`: each case's source label (``labels/<case>.nii.gz``, in the classes
    its folder stores) is read through :func:`stored_label_map` for the evaluated classes, as the dataset
    reads the masks (the all-masks store as the subtask; MosMed's infection as class 3 of the joint model).
    Arguments as :class:`VolumeMetric`; with ``mim test --out DIR`` its files go to ``DIR/volumes`` as VolumeMetric's.
    """

    def source_classes(self, labels: np.ndarray, root: str, case_id: str) -> np.ndarray:
        classes = list((self.dataset_meta or {}).get('classes') or ())
        if not classes:
            return labels
        return apply_label_map(labels, stored_label_map(root, classes, subtask_of(classes)))


for _spec in SPECS.values():
    DATASETS.register_module(name=_spec.dataset_type, module=type(_spec.dataset_type, (MedicalSliceDataset,), {
        'METAINFO': dict(classes=tuple(_spec.classes), palette=palette(len(_spec.classes)),
                         mirror_pairs=tuple(_spec.mirror_pairs)),
        '__doc__': f'{_spec.description} (slices of ``prepare_dataset.py {_spec.name}``).',
        '__module__': __name__}))
