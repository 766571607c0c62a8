"""Slice PNGs (predictions or ground truth) → volumes with the source geometry, via the manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from .errors import MedSegError
from .manifest import group_by_case, read_case_geometry, read_manifest, restack
from .volume import Volume

PathLike = Union[str, Path]


def read_mask_png(path: PathLike) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise MedSegError(path, 'cannot read mask PNG')
    return array


def split_cases(root: PathLike, split: str) -> List[str]:
    """The cases of split list ``split`` of a prepared dataset (``OUT/splits.json``)."""
    path = Path(root) / 'splits.json'
    try:
        lists = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MedSegError(path, f'cannot read split lists ({type(exc).__name__}: {exc})') from None
    if split not in lists:
        raise MedSegError(path, f'no split {split!r}; the dataset has: {", ".join(sorted(lists))}')
    return list(lists[split])


def iter_case_volumes(root: PathLike, pred_dir: Optional[PathLike] = None, split: Optional[str] = None
                      ) -> Iterator[Tuple[str, Volume, Optional[Volume]]]:
    """Yield ``(case_id, ground truth, prediction)`` volumes for the labelled cases of ``split``.

    ``split`` is a split list name (``OUT/splits.json``: ``val``, ``fold2_val``, ...). Predictions are ``<pred_dir>/<slice stem>.png`` (what ``mim test --out`` writes); a missing
    prediction slice is an error naming it. Without ``pred_dir`` the prediction is ``None``.
    """
    root = Path(root)
    cases = None if split is None else set(split_cases(root, split))
    records = [r for r in read_manifest(root) if r.mask and (cases is None or r.case_id in cases)]
    for case_id, rows in group_by_case(records).items():
        geometry = read_case_geometry(root, case_id)
        gt = restack({r.slice_index: read_mask_png(root / r.mask) for r in rows}, geometry)
        pred = None
        if pred_dir is not None:
            planes: Dict[int, np.ndarray] = {}
            for r in rows:
                path = Path(pred_dir) / f'{r.stem}.png'
                if not path.is_file():
                    raise MedSegError(path, f'no prediction for slice {r.slice_index} of case {case_id}')
                planes[r.slice_index] = read_mask_png(path)
            pred = restack(planes, geometry)
        yield case_id, gt, pred


def to_source_grid(array_zhw: np.ndarray, geometry: dict) -> Volume:
    """A prediction restacked on the slice grid of ``cases/<case>.json`` → the source scan's own voxel
    grid: the converter's in-plane ``spatial`` transform undone (if any), then the display reorientation
    (:func:`mmseg_medical.orientation.source_volume`), so it overlays the source file exactly."""
    from .orientation import source_volume

    if geometry.get('spatial'):
        from .spatial import invert_spatial
        array_zhw = invert_spatial(array_zhw, geometry['spatial'])
    record = geometry.get('display_transform')
    affine = geometry.get('affine') if record is None else None
    return source_volume(array_zhw, record, affine)
