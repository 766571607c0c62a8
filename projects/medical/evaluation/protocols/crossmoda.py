"""``crossmoda``: the crossMoDA challenge's scoring (``scores.py``), bit for bit.

Per case and structure (1 VS, 2 cochlea), as ``scores.py`` of CrossMoDA/CrossMoDA2022-Evaluation-code:

* Dice = medpy 0.5.2 ``dc(pred, gt)``: ``2 |P ∩ G| / (|P| + |G|)``; both empty: 1.0. medpy's ``dc`` catches
  ``ZeroDivisionError`` and returns 1.0, which is what it did when the challenge ran (NumPy < 2.3, where
  ``count_nonzero`` returns a Python ``int`` and ``2.0 * 0 / 0.0`` raises). From NumPy 2.3 on ``count_nonzero``
  returns a NumPy integer, the division gives NaN with a warning and the ``except`` branch is never reached;
  we keep the 1.0 ``scores.py`` produced then (the challenge's test labels always hold both structures, so it
  only matters for other label sets);
* ASSD = medpy 0.5.2 ``assd(pred, gt, voxelspacing)``: border voxels = mask XOR its binary erosion (face
  connectivity, voxels outside the array count as background), Euclidean distance transform with the
  spacing, the mean over the *concatenated* distances of both directions (every border voxel of either
  mask counts once; not area weighted). medpy <= 0.4.0, current when the challenge ran, took instead the
  mean of the two directed averages; the two agree when both borders have as many voxels. We follow the
  medpy on the package index today (0.5.2, what ``pip install medpy`` gives a user re-running
  ``scores.py``); :func:`medpy_assd` has ``concatenate=False`` for the 0.4.0 rule;
* spacing = ``[abs(affine[k, k]) for k in range(3)]`` of the ground truth's affine, as the official code
  does (the true voxel size only for axis-aligned affines; a zero on the diagonal is refused);
* an empty prediction of a structure scores ASSD = 350 mm (``MAX_VALUE_ASSD``); the official code has no
  rule for an empty ground truth (medpy raises): we score 350 mm there too and flag the case ``gt_empty``;
* results: median [IQR] per structure (and mean ± std), per site (London ``ldn``, Tilburg ``etz``, and
  crossMoDA 2023's third site ``ukm``, named by its code) where the case names carry it.

crossMoDA 2023 labels (1 intra-meatal VS, 2 extra-meatal VS, 3 cochlea: class names containing ``intra``,
``extra`` and ``cochlea``) are scored per structure **and** as the whole tumour, the union intra ∪ extra,
a structure named ``vs`` scored by the same rules on the union masks, so a 2023 model's ``vs`` row is
comparable with the 2021/2022 VS rows (one VS label there). The names come from the prepared dataset
(``--data``, ``VolumeMetric``); for label files alone, a first ground truth whose largest label is 3 is
read as 2023 (:meth:`CrossMoDAProtocol.class_names`).

``scores.py`` as published sets ``DEBBUGING = True``: it then scores every 5th case only and writes ASSD = 10
for every case. This protocol reproduces its non-debug branch (every case, the ASSD rule above), the one behind
the published results.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from ...errors import MedSegError
from ..surface import NOT_EMPTY, bounding_box, empty_category, union_box
from .base import Protocol, register_protocol

#: ``scores.py``: the ASSD of a structure whose prediction is empty (mm).
MAX_VALUE_ASSD = 350.0
SOURCE = 'CrossMoDA/CrossMoDA2022-Evaluation-code: scores.py @ 15ddf64 (medpy 0.5.2 dc, assd)'
#: Site code in crossMoDA 2022 / 2023 names (``crossmoda2022_etz_106``, ``crossmoda2021_ldn_12``,
#: ``crossmoda2023_ukm_3``) → site (2023's third site by its code: no source at hand names it).
SITES = {'ldn': 'London', 'etz': 'Tilburg', 'ukm': 'ukm'}
_SITE = re.compile(r'crossmoda20\d\d_(ldn|etz|ukm)_\d+')
#: crossMoDA 2023's class names (label 1, 2, 3), as the ``crossmoda`` converter writes them.
CLASSES_2023 = {1: 'vs_intrameatal', 2: 'vs_extrameatal', 3: 'cochlea'}
#: The union structure of crossMoDA 2023's two VS classes (the 2021/2022 tumour).
VS_UNION = 'vs'


def medpy_dc(result: np.ndarray, reference: np.ndarray) -> float:
    """medpy 0.5.2 ``metric.binary.dc`` as it ran with NumPy < 2.3: 1.0 when both masks are empty."""
    result, reference = np.asarray(result, bool), np.asarray(reference, bool)
    size = int(np.count_nonzero(result)) + int(np.count_nonzero(reference))
    return 2.0 * int(np.count_nonzero(result & reference)) / float(size) if size else 1.0


def medpy_assd(result: np.ndarray, reference: np.ndarray, spacing: Sequence[float],
               concatenate: bool = True) -> float:
    """medpy 0.5.2 ``metric.binary.assd(result, reference, voxelspacing=spacing)`` (both masks non-empty);
    ``concatenate=False``: medpy 0.4.0's mean of the two directed averages.

    Computed in the union bounding box plus a one-voxel background margin, which is exact: erosion treats
    voxels outside the array as background (so the margin keeps every border voxel a border voxel) and
    every border voxel of either mask lies in the box.
    """
    result, reference = np.asarray(result, bool), np.asarray(reference, bool)
    box = union_box(bounding_box(result), bounding_box(reference))
    if box is None or not result.any() or not reference.any():
        raise MedSegError(None, 'ASSD needs two non-empty masks')
    footprint = generate_binary_structure(result.ndim, 1)
    res, ref = np.pad(result[box], 1), np.pad(reference[box], 1)
    res_border = res ^ binary_erosion(res, structure=footprint, iterations=1)
    ref_border = ref ^ binary_erosion(ref, structure=footprint, iterations=1)
    sampling = np.asarray([float(s) for s in spacing], dtype=np.float64)
    to_reference = distance_transform_edt(~ref_border, sampling=sampling)[res_border]
    to_result = distance_transform_edt(~res_border, sampling=sampling)[ref_border]
    if concatenate:
        return float(np.concatenate([to_reference, to_result]).mean())
    return float(np.mean((to_reference.mean(), to_result.mean())))


class CrossMoDAProtocol(Protocol):
    def spacing(self, zooms: Sequence[float], affine: Optional[np.ndarray]) -> Tuple[float, ...]:
        diagonal = tuple(abs(float(np.asarray(affine)[k, k])) for k in range(len(zooms)))
        if not all(d > 0 for d in diagonal):
            raise MedSegError(None, f'protocol crossmoda: the spacing rule of scores.py (|diagonal of the ground '
                                    f'truth affine|) gives {diagonal} for this file: its axes are permuted; '
                                    'score it with --protocol default')
        return diagonal

    def class_row(self, gt_mask: np.ndarray, pred_mask: np.ndarray, spacing: Tuple[float, ...],
                  tolerance: float, diagonal: float) -> dict:
        empty = empty_category(bool(gt_mask.any()), bool(pred_mask.any()))
        assd = medpy_assd(pred_mask, gt_mask, spacing) if empty == NOT_EMPTY else MAX_VALUE_ASSD
        return {'dice': medpy_dc(pred_mask, gt_mask), 'assd': assd, 'empty': empty}

    def site(self, case: str) -> Optional[str]:
        match = _SITE.search(case)
        return None if match is None else SITES[match.group(1)]

    def class_names(self, max_label: int) -> Dict[int, str]:
        """crossMoDA 2023's names when the first ground truth's largest label is 3 (2021/2022 labels stop at
        2 and keep their numbers)."""
        return dict(CLASSES_2023) if max_label == 3 else {}

    def unions(self, names: Mapping[int, str], classes: Sequence[int]) -> Dict[str, Tuple[int, ...]]:
        """``vs`` = the scored classes whose names contain ``intra`` and ``extra`` (crossMoDA 2023's intra- and
        extra-meatal VS), when both are scored; else none."""
        intra = [c for c in classes if 'intra' in str(names.get(c, '')).lower()]
        extra = [c for c in classes if 'extra' in str(names.get(c, '')).lower()]
        if len(intra) == 1 and len(extra) == 1 and intra != extra:
            return {VS_UNION: (intra[0], extra[0])}
        return {}


CROSSMODA = register_protocol(CrossMoDAProtocol(
    name='crossmoda',
    title="the crossMoDA challenge's scores.py: medpy Dice and ASSD, median [IQR] per structure and site",
    source=SOURCE,
    metrics=('dice', 'assd'),
    spacing_rule='|diagonal of the ground truth affine| (as scores.py; equals the voxel size for axis-aligned files)',
    empty_rule='empty prediction: ASSD 350 mm (scores.py); both empty: Dice 1 (medpy 0.5.2 dc with NumPy < 2.3, as '
               'when the challenge ran; NumPy >= 2.3 makes it NaN); empty ground truth (undefined in scores.py): '
               'ASSD 350 mm, flagged gt_empty',
    aggregation_rule='median [IQR] and mean ± std per structure (2023 labels: also vs = intra ∪ extra); per site '
                     '(London ldn / Tilburg etz / ukm) from 2022 and 2023 names',
    median_iqr=True,
    omit_nan=True,
))
