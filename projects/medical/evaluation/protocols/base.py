"""What an evaluation protocol is: a small spec plus the few hooks where protocols differ.

A protocol says which metrics a case gets, how each is defined, where the voxel spacing comes from, the
grid it scores on, how empty structures score, the NSD tolerance per class, how cases are aggregated,
and which official code it reproduces. :class:`Protocol` holds those facts (the README's protocol table
is printed from them) and implements the default behaviour; a protocol module overrides only the hooks
it changes (:meth:`Protocol.spacing`, :meth:`Protocol.to_grid`, :meth:`Protocol.class_row`,
:meth:`Protocol.bootstrap_ci`, :meth:`Protocol.site`, :meth:`Protocol.unions`) and registers itself with
:func:`mmseg_medical.evaluation.protocols.register_protocol`.

Arrays given to :meth:`Protocol.score` are in the order of the file they came from (NIfTI ``i, j, k``
for files, ``z, h, w`` for 2D/3D arrays given directly), ``zooms`` one voxel size per array axis and
``affine`` the file's voxel-to-world matrix (``diag(zooms)`` when unknown).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...errors import MedSegError
from ..surface import (BOTH_EMPTY, NOT_EMPTY, assd, bounding_box, check_spacing, empty_category, hd95, nsd,
                       surface_distances_in_box, union_box, volume_diagonal)

Tolerance = Union[float, Mapping[int, float]]
#: A scored structure: a class index, or the name of a union of classes (:meth:`Protocol.unions`).
Structure = Union[int, str]


def structure_key(value) -> Structure:
    """A row's ``class`` as a structure key: a class index (``3``, ``'3'`` as a CSV cell) or a union's name."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value)
    return int(text) if text.lstrip('-').isdigit() else text


def structure_order(key: Structure) -> tuple:
    """Sort key of structures: class indices ascending, then unions by name."""
    return (0, key, '') if isinstance(key, int) else (1, 0, key)


def structure_seed(key: Structure) -> List[int]:
    """Entropy of a structure's bootstrap stream: ``[c]`` for class ``c`` (the stream it always had), the
    bytes of the name for a union (no class shares it)."""
    return [key] if isinstance(key, int) else [1000, *key.encode()]

#: Every metric column a protocol may report, with its unit and the key stem VolumeMetric logs.
METRIC_UNITS: Dict[str, str] = {'dice': 'fraction', 'iou': 'fraction', 'nsd': 'fraction', 'hd95': 'mm',
                                'assd': 'mm', 'hd95_vox': 'voxels', 'tp': 'voxels', 'fp': 'voxels', 'fn': 'voxels',
                                'tn': 'voxels', 'n_pred': 'voxels', 'n_ref': 'voxels'}
METRIC_KEYS: Dict[str, str] = {'dice': 'Dice', 'iou': 'IoU', 'nsd': 'NSD', 'hd95': 'HD95', 'assd': 'ASSD',
                               'hd95_vox': 'HD95vox', 'tp': 'TP', 'fp': 'FP', 'fn': 'FN', 'tn': 'TN',
                               'n_pred': 'n_pred', 'n_ref': 'n_ref'}


def metric_header(metric: str) -> str:
    """Column title of a metric in every table: its name and, for distances, its unit."""
    unit = METRIC_UNITS[metric]
    return metric if unit == 'fraction' else f'{metric} ({unit})'


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol (see the module docstring). Instances are immutable and registered by name."""

    name: str
    #: One line: what it is for.
    title: str
    #: The official code it reproduces (repository, file, commit) or 'this project'.
    source: str
    #: Per-case metric columns, in report order (keys of :data:`METRIC_UNITS`).
    metrics: Tuple[str, ...]
    #: Plain-language rules (printed in the README table and the report header).
    spacing_rule: str = 'header voxel sizes (zooms) of the ground truth'
    grid_rule: str = 'the source scan\'s voxel grid (predictions restacked and mapped back to it)'
    empty_rule: str = ('both empty: dice = iou = nsd = 1, distances 0; one empty: dice = iou = nsd = 0, '
                       'distances = volume diagonal (mm)')
    aggregation_rule: str = 'mean ± sample std over cases, 95% percentile-bootstrap CI (seeded)'
    #: NSD tolerance (mm) per class *name*; classes not named get ``default_tolerance``.
    tolerances_by_name: Mapping[str, float] = field(default_factory=dict)
    default_tolerance: Optional[float] = 1.0
    #: Case values that are NaN (undefined by the official code) are left out of the means (``n`` counts
    #: the rest) instead of being an error.
    omit_nan: bool = False
    #: Also report median [IQR] per class.
    median_iqr: bool = False

    # ---- spec ---------------------------------------------------------------------------------------
    @property
    def tolerance_rule(self) -> str:
        named = ', '.join(f'{n} {t:g} mm' for n, t in self.tolerances_by_name.items())
        default = 'given by the user' if self.default_tolerance is None else f'{self.default_tolerance:g} mm'
        return (f'{named}; others {default}' if named else default) if 'nsd' in self.metrics else 'no NSD'

    def tolerances(self, classes: Sequence[int], names: Optional[Mapping[int, str]] = None,
                   override: Optional[Tolerance] = None) -> Dict[int, float]:
        """NSD tolerance (mm) per class: ``override`` (one value or ``{class: mm}``) wins, then the
        protocol's value for the class name, then its default; a class left without one is an error."""
        names = names or {}
        out: Dict[int, float] = {}
        for c in classes:
            if isinstance(override, Mapping) and c in override:
                value = override[c]
            elif override is not None and not isinstance(override, Mapping):
                value = override
            elif names.get(c) in self.tolerances_by_name:
                value = self.tolerances_by_name[names[c]]
            elif self.default_tolerance is not None:
                value = self.default_tolerance
            else:
                raise MedSegError(None, f'protocol {self.name}: no NSD tolerance for class {c} '
                                        f'({names.get(c, "unnamed")}); pass one')
            out[c] = float(value)
        bad = {c: t for c, t in out.items() if not (math.isfinite(t) and t >= 0)}
        if bad:
            raise MedSegError(None, f'NSD tolerances must be finite and >= 0 mm, got {bad}')
        return out

    # ---- hooks ----------------------------------------------------------------------------------------
    def spacing(self, zooms: Sequence[float], affine: Optional[np.ndarray]) -> Tuple[float, ...]:
        """The voxel size per array axis the distances use."""
        return tuple(float(z) for z in zooms)

    def to_grid(self, gt: np.ndarray, pred: np.ndarray, zooms: Tuple[float, ...], affine: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...], np.ndarray]:
        """Ground truth, prediction, zooms and affine on the grid the protocol scores on (default: as given)."""
        return gt, pred, zooms, affine

    def class_row(self, gt_mask: np.ndarray, pred_mask: np.ndarray, spacing: Tuple[float, ...],
                  tolerance: float, diagonal: float) -> dict:
        """Metric values and ``empty`` flag of one class of one case (default: surface-distance metrics)."""
        gt_box, pred_box = bounding_box(gt_mask), bounding_box(pred_mask)
        empty = empty_category(gt_box is not None, pred_box is not None)
        if empty != NOT_EMPTY:
            return self.empty_values(empty, diagonal)
        box = union_box(gt_box, pred_box)
        gt_crop, pred_crop = gt_mask[box], pred_mask[box]
        n_gt, n_pred = int(np.count_nonzero(gt_crop)), int(np.count_nonzero(pred_crop))
        n_both = int(np.count_nonzero(gt_crop & pred_crop))
        sd = surface_distances_in_box(gt_crop, pred_crop, spacing, diagonal)
        return {'dice': 2.0 * n_both / (n_gt + n_pred), 'iou': n_both / (n_gt + n_pred - n_both),
                'nsd': nsd(sd, tolerance), 'hd95': self.hd95(gt_crop, pred_crop, spacing, sd),
                'assd': assd(sd), 'empty': NOT_EMPTY}

    def hd95(self, gt_crop: np.ndarray, pred_crop: np.ndarray, spacing: Tuple[float, ...], sd) -> float:
        """HD95 of two non-empty masks (default: DeepMind's surfel-weighted robust Hausdorff)."""
        return hd95(sd)

    def empty_values(self, empty: str, diagonal: float) -> dict:
        """The row of a class whose ground truth and/or prediction is empty (default policy)."""
        if empty == BOTH_EMPTY:
            return {'dice': 1.0, 'iou': 1.0, 'nsd': 1.0, 'hd95': 0.0, 'assd': 0.0, 'empty': empty}
        return {'dice': 0.0, 'iou': 0.0, 'nsd': 0.0, 'hd95': float(diagonal), 'assd': float(diagonal),
                'empty': empty}

    def bootstrap_ci(self, values: np.ndarray, n_bootstrap: int, seed: int, cls: Structure, ci: float) -> np.ndarray:
        """95% CI of the mean of each column of ``values`` (cases x metrics); returns shape (2, metrics)."""
        from ..summary import bootstrap_mean_ci
        return bootstrap_mean_ci(values, n_bootstrap, np.random.default_rng([seed, *structure_seed(cls)]), ci)

    def class_names(self, max_label: int) -> Dict[int, str]:
        """Class names of label values when only the files are known (e.g. ``evaluate_volumes`` without
        ``--data``), from the largest label of the first ground truth; default: none."""
        return {}

    def site(self, case: str) -> Optional[str]:
        """The acquisition site of a case, for a per-site breakdown (``None``: no breakdown)."""
        return None

    def unions(self, names: Mapping[int, str], classes: Sequence[int]) -> Dict[str, Tuple[int, ...]]:
        """Structures scored besides the classes, each the union of several of ``classes``:
        ``{name: class indices}``, from the class ``names`` (default: none)."""
        return {}

    # ---- the one scoring loop -----------------------------------------------------------------------
    def score(self, gt: np.ndarray, pred: np.ndarray, zooms: Sequence[float], classes: Sequence[int],
              tolerances: Mapping[int, float], affine: Optional[np.ndarray] = None,
              names: Optional[Mapping[int, str]] = None) -> List[dict]:
        """One row per class: ``{'class': c, <metrics>..., 'empty': flag}`` (see :meth:`class_row`), then one
        per union of classes (:meth:`unions` of ``names``), ``'class'`` its name, scored on the union masks
        by the same :meth:`class_row` (NSD tolerance: the smallest of its classes')."""
        gt, pred = _check_labels('ground truth', gt), _check_labels('prediction', pred)
        if gt.shape != pred.shape:
            raise MedSegError(None, f'ground truth shape {gt.shape} differs from prediction shape {pred.shape}')
        if gt.ndim not in (2, 3):
            raise MedSegError(None, f'only 2D and 3D label maps are supported, got shape {gt.shape}')
        zooms = check_spacing(zooms, gt.ndim)
        if affine is None:
            affine = np.diag([*zooms] + [1.0] * (4 - gt.ndim))
        gt, pred, zooms, affine = self.to_grid(gt, pred, zooms, np.asarray(affine, dtype=np.float64))
        spacing = check_spacing(self.spacing(zooms, affine), gt.ndim)
        diagonal = volume_diagonal(gt.shape, spacing)
        rows = []
        for cls in (int(c) for c in classes):
            row = self.class_row(gt == cls, pred == cls, spacing, float(tolerances[cls]), diagonal)
            rows.append({'class': cls, **{m: float(row[m]) for m in self.metrics}, 'empty': row['empty']})
        for name, members in self.unions(names or {}, [int(c) for c in classes]).items():
            tolerance = min(float(tolerances[c]) for c in members)
            row = self.class_row(np.isin(gt, members), np.isin(pred, members), spacing, tolerance, diagonal)
            rows.append({'class': name, **{m: float(row[m]) for m in self.metrics}, 'empty': row['empty']})
        return rows


def _check_labels(name: str, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.view(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise MedSegError(None, f'{name} labels must be an integer array, got dtype {labels.dtype}')
    return labels


_REGISTRY: Dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Register ``protocol`` under its name (one module per protocol calls this once)."""
    if protocol.name in _REGISTRY:
        raise ValueError(f'evaluation protocol {protocol.name!r} is already registered')
    _REGISTRY[protocol.name] = protocol
    return protocol


def get_protocol(protocol: Union[str, Protocol]) -> Protocol:
    """The registered protocol of that name (a :class:`Protocol` is returned as it is)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in _REGISTRY:
        raise MedSegError(None, f'unknown evaluation protocol {protocol!r}; choose from {sorted(_REGISTRY)}')
    return _REGISTRY[protocol]


def protocol_names() -> Tuple[str, ...]:
    return tuple(sorted(_REGISTRY))
