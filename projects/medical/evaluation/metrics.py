"""Per-case, per-class volume metrics: Dice, IoU, NSD, HD95 and ASSD.

Distances follow DeepMind's ``surface-distance`` definitions (see :mod:`.surface`); ``spacing`` gives one
voxel size (mm) per array axis. Empty classes follow the policy documented in :mod:`.surface`:

========================  ====  ====  ====  ===============  ===============
``empty``                 dice  iou   nsd   hd95             assd
========================  ====  ====  ====  ===============  ===============
``''`` (both present)     computed from the masks
``'both_empty'``          1     1     1     0                0
``'gt_empty'`` (FP)       0     0     0     volume diagonal  volume diagonal
``'pred_empty'`` (FN)     0     0     0     volume diagonal  volume diagonal
========================  ====  ====  ====  ===============  ===============

The volume diagonal is ``sqrt(sum((shape_i * spacing_i)^2))`` mm, the largest distance possible in the
volume: a finite worst case, so every case stays in every mean.

That is the ``default`` protocol. Every protocol (``hemseg``, ``hemseg-paper``, ``crossmoda``, ``covid19``)
defines its metrics, spacing, grid and empty-structure rules in its own module of :mod:`.protocols`.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import MedSegError
from .protocols import get_protocol, protocol_names
from .protocols.hemseg import monai_hd95  # noqa: F401  (kept importable here)

#: Metric columns of a per-case row of the ``default`` protocol, in report order (a protocol's own columns
#: are ``get_protocol(name).metrics``).
METRIC_NAMES = ('dice', 'iou', 'nsd', 'hd95', 'assd')


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is a registered protocol name (else one clear error)."""
    return get_protocol(protocol).name


def __getattr__(name: str):
    if name == 'PROTOCOLS':  # the registered names, read when asked (protocols register at import)
        return protocol_names()
    raise AttributeError(name)


Tolerance = Union[float, Mapping[int, float]]


def class_tolerances(classes: Sequence[int], nsd_tolerance: Tolerance) -> Dict[int, float]:
    """NSD tolerance (mm) for each class: one value for all, or a mapping that must cover every class."""
    if isinstance(nsd_tolerance, Mapping):
        missing = [c for c in classes if c not in nsd_tolerance]
        if missing:
            raise MedSegError(None, f'no NSD tolerance given for class(es) {missing}')
        tolerances = {c: float(nsd_tolerance[c]) for c in classes}
    else:
        tolerances = {c: float(nsd_tolerance) for c in classes}
    bad = {c: t for c, t in tolerances.items() if not (math.isfinite(t) and t >= 0)}
    if bad:
        raise MedSegError(None, f'NSD tolerances must be finite and >= 0 mm, got {bad}')
    return tolerances


def empty_row(cls: int, empty: str, max_distance: float) -> dict:
    """The ``default`` protocol's row of a class whose ground truth and/or prediction is empty."""
    return {'class': cls, **get_protocol('default').empty_values(empty, max_distance)}


def case_metrics(gt_labels: np.ndarray, pred_labels: np.ndarray, spacing: Sequence[float],
                 classes: Sequence[int], nsd_tolerance: Optional[Tolerance] = None, protocol: str = 'default',
                 names: Optional[Mapping[int, str]] = None, affine: Optional[np.ndarray] = None) -> List[dict]:
    """Metrics of one case for each class in ``classes``, as protocol ``protocol`` defines them.

    Args:
        gt_labels, pred_labels: integer label maps of the same 2D or 3D shape.
        spacing: voxel size in mm, one value per array axis (the file's header zooms).
        classes: label values to evaluate (each gets a row, even when absent from both maps).
        nsd_tolerance: NSD tolerance in mm, one for all classes or ``{class: mm}``; default: the protocol's
            (per class name in ``names``; ``default``: 1 mm).
        protocol: a registered protocol name (:mod:`mmseg_medical.evaluation.protocols`).
        names: class index -> class name (protocols set tolerances by name).
        affine: the ground truth file's affine (protocols that read the spacing from it); default ``diag(spacing)``.

    Returns:
        One dict per class: ``class``, the protocol's metrics, ``empty`` (``''``, ``'both_empty'``,
        ``'gt_empty'`` or ``'pred_empty'``); then one per union of classes the protocol scores (``crossmoda``
        on crossMoDA 2023 names: ``vs``), ``class`` its name.
    """
    spec = get_protocol(protocol)
    classes = [int(c) for c in classes]
    if isinstance(nsd_tolerance, Mapping):
        class_tolerances(classes, nsd_tolerance)
    tolerances = spec.tolerances(classes, names, nsd_tolerance)
    return spec.score(gt_labels, pred_labels, spacing, classes, tolerances, affine, names)
