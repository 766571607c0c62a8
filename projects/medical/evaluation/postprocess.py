"""nnU-Net-style connected-component post-processing of predicted label volumes.

Per class, connected components (3D on a restacked volume; face connectivity by default, as
``scipy.ndimage.label``) are removed when they are smaller than a size in voxels, or all but the largest
component is removed (``'largest'``, nnU-Net's "remove all but the largest component"). Removed voxels
become background (0). The rule per class is chosen on validation cases the way nnU-Net's
``determine_postprocessing`` does: a rule is kept only where it raises the class's mean Dice over the
cases (the empty-mask policy applies: a case whose only false-positive component is removed goes from
``gt_empty`` (Dice 0) to ``both_empty`` (Dice 1)); otherwise the class is left alone.

A rule set is ``{class: min_voxels}`` where ``min_voxels`` is an int (components with fewer voxels go) or
``'largest'``; :func:`save_rules` / :func:`load_rules` store it as JSON for inference.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from ..errors import MedSegError

#: Keep only the largest component of a class.
LARGEST = 'largest'
Rule = Union[int, str]
#: Candidates :func:`choose_min_sizes` tries by default (voxels, and all-but-largest).
DEFAULT_CANDIDATES: Tuple[Rule, ...] = (LARGEST, 5, 10, 20, 50, 100, 200, 500, 1000)


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    if not 1 <= connectivity <= ndim:
        raise MedSegError(None, f'connectivity must be in 1..{ndim} for {ndim}D labels, got {connectivity}')
    return ndimage.generate_binary_structure(ndim, connectivity)


def check_rule(cls: int, rule: Rule) -> Rule:
    """A valid rule: ``'largest'`` or a whole number of voxels >= 0."""
    if rule == LARGEST:
        return LARGEST
    if isinstance(rule, bool) or not isinstance(rule, (int, np.integer)) or rule < 0:
        raise MedSegError(None, f'class {cls}: post-processing rule must be {LARGEST!r} or a voxel count >= 0, '
                                f'got {rule!r}')
    return int(rule)


def min_voxels_from_mm3(min_mm3: float, spacing: Sequence[float]) -> int:
    """The voxel count of a component of ``min_mm3`` mm^3 at ``spacing`` (rounded up)."""
    voxel = float(np.prod([float(s) for s in spacing]))
    if not (math.isfinite(min_mm3) and min_mm3 >= 0 and voxel > 0):
        raise MedSegError(None, f'need a volume >= 0 mm^3 and a positive spacing, got {min_mm3}, {spacing}')
    return int(math.ceil(min_mm3 / voxel - 1e-9))


def _component_sizes(mask: np.ndarray, structure: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Component map of ``mask`` (0 = outside) and the voxel count of each component (index 0 unused)."""
    components, n = ndimage.label(mask, structure=structure)
    return components, np.bincount(components.ravel(), minlength=n + 1)


def _kept(sizes: np.ndarray, rule: Rule) -> np.ndarray:
    """Boolean per component index (0 = background, never kept) for a rule."""
    keep = np.zeros(sizes.shape, bool)
    if sizes.size <= 1:
        return keep
    if rule == LARGEST:
        keep[1 + int(np.argmax(sizes[1:]))] = True
    else:
        keep[1:] = sizes[1:] >= rule
    return keep


def remove_small_components(labels: np.ndarray, min_size: Mapping[int, Rule],
                            connectivity: int = 1) -> np.ndarray:
    """A copy of ``labels`` where, per class in ``min_size``, components below the rule are background.

    ``min_size[c]`` is a voxel count (components with fewer voxels are removed) or ``'largest'`` (all but
    the largest component are removed). Classes not in ``min_size`` are unchanged. ``connectivity`` as in
    ``scipy.ndimage.generate_binary_structure`` (1: faces; ``labels.ndim``: faces, edges and corners).
    """
    labels = np.asarray(labels)
    out = labels.copy()
    structure = _structure(labels.ndim, connectivity)
    for cls, rule in min_size.items():
        rule = check_rule(cls, rule)
        if rule == 0:
            continue
        mask = labels == cls
        if not mask.any():
            continue
        components, sizes = _component_sizes(mask, structure)
        out[mask & ~_kept(sizes, rule)[components]] = 0
    return out


def _dice(n_gt: int, n_pred: int, n_both: int) -> float:
    """Dice with the empty-mask policy (both empty: 1, one empty: 0)."""
    return 1.0 if n_gt + n_pred == 0 else 2.0 * n_both / (n_gt + n_pred)


def class_dice_by_rule(pairs: Iterable[Tuple[np.ndarray, np.ndarray]], cls: int, candidates: Sequence[Rule],
                       connectivity: int = 1) -> Tuple[List[float], Dict[Rule, List[float]]]:
    """Per-case Dice of class ``cls`` without post-processing and after each candidate rule.

    Each prediction is labelled once; a rule's Dice comes from the component sizes and their overlap with
    the ground truth.
    """
    candidates = [check_rule(cls, r) for r in candidates]
    before: List[float] = []
    after: Dict[Rule, List[float]] = {r: [] for r in candidates}
    for gt_labels, pred_labels in pairs:
        gt, pred = np.asarray(gt_labels) == cls, np.asarray(pred_labels) == cls
        n_gt = int(np.count_nonzero(gt))
        components, sizes = _component_sizes(pred, _structure(pred.ndim, connectivity))
        overlap = np.bincount(components[gt], minlength=sizes.size)
        before.append(_dice(n_gt, int(sizes[1:].sum()), int(overlap[1:].sum())))
        for rule in candidates:
            keep = _kept(sizes, rule)
            after[rule].append(_dice(n_gt, int(sizes[keep].sum()), int(overlap[keep].sum())))
    return before, after


def choose_min_sizes(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], classes: Sequence[int],
                     candidates: Sequence[Rule] = DEFAULT_CANDIDATES, connectivity: int = 1,
                     min_gain: float = 0.0) -> Dict[int, Optional[Rule]]:
    """Per class, the candidate rule that maximises mean Dice over ``pairs`` (ground truth, prediction).

    A class gets ``None`` (no post-processing) unless its best rule raises the mean Dice by more than
    ``min_gain``; between rules with the same mean Dice the first in ``candidates`` wins.
    """
    chosen: Dict[int, Optional[Rule]] = {}
    for cls in classes:
        before, after = class_dice_by_rule(pairs, int(cls), candidates, connectivity)
        baseline = float(np.mean(before)) if before else 0.0
        best, best_mean = None, baseline + min_gain
        for rule, values in after.items():
            mean = float(np.mean(values)) if values else 0.0
            if mean > best_mean:
                best, best_mean = rule, mean
        chosen[int(cls)] = best
    return chosen


def active_rules(rules: Mapping[int, Optional[Rule]]) -> Dict[int, Rule]:
    """The rules that do something (drops ``None`` and 0)."""
    return {int(c): check_rule(c, r) for c, r in rules.items() if r is not None and r != 0}


def describe_rules(rules: Mapping[int, Optional[Rule]]) -> str:
    """One line per class: what the rule removes."""
    parts = []
    for cls, rule in sorted(rules.items()):
        if rule is None or rule == 0:
            parts.append(f'class {cls}: none')
        elif rule == LARGEST:
            parts.append(f'class {cls}: keep only the largest component')
        else:
            parts.append(f'class {cls}: remove components < {rule} voxels')
    return '; '.join(parts)


def apply_postprocessing(labels: np.ndarray, rules: Union[str, Path, Mapping[int, Optional[Rule]]],
                         connectivity: int = 1) -> np.ndarray:
    """Post-process a predicted label volume with rules given as a mapping or a :func:`save_rules` file.

    The hook for inference: ``labels = apply_postprocessing(labels, 'work_dirs/x/volumes/postprocessing.json')``
    (the file's own connectivity then applies). Components are found in ``labels`` as given (3D for a
    (Z, H, W) volume).
    """
    if isinstance(rules, (str, Path)):
        rules, connectivity = load_rules(rules)
    return remove_small_components(labels, active_rules(rules), connectivity)


def save_rules(path: Union[str, Path], rules: Mapping[int, Optional[Rule]], connectivity: int = 1,
               **info) -> Path:
    """Write ``{"min_size": {class: rule}, "connectivity": c, ...info}`` as JSON (for inference)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {'min_size': {str(c): r for c, r in sorted(active_rules(rules).items())},
            'connectivity': int(connectivity), **info}
    path.write_text(json.dumps(data, indent=1) + '\n')
    return path


def load_rules(path: Union[str, Path]) -> Tuple[Dict[int, Rule], int]:
    """``(rules, connectivity)`` from a :func:`save_rules` file."""
    try:
        data = json.loads(Path(path).read_text())
        rules = {int(c): check_rule(int(c), r) for c, r in data['min_size'].items()}
        return rules, int(data.get('connectivity', 1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MedSegError(path, f'not a post-processing file ({type(exc).__name__}: {exc})') from exc
