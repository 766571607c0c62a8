"""Patient-level splits: every case lands in exactly one split; slices never leak across splits."""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np


def _strata(case_ids: Sequence[str], has_foreground: Mapping[str, bool]) -> List[List[str]]:
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError('duplicate case ids')
    return [[c for c in ids if has_foreground.get(c, False)], [c for c in ids if not has_foreground.get(c, False)]]


def holdout_split(case_ids: Sequence[str], has_foreground: Mapping[str, bool], val_fraction: float = 0.2,
                  seed: int = 0, names: Sequence[str] = ('train', 'val')) -> Dict[str, str]:
    """Case → split for a seeded, foreground-stratified hold-out split.

    Each stratum (cases with / without foreground) gives ``round(n * val_fraction)`` cases to the second
    split; at least one case goes to each split when there are two or more cases.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    rng = np.random.default_rng(seed)
    train, val = names
    assignment: Dict[str, str] = {}
    for stratum in _strata(case_ids, has_foreground):
        order = [stratum[i] for i in rng.permutation(len(stratum))]
        n_val = int(round(len(order) * val_fraction))
        for i, case in enumerate(order):
            assignment[case] = val if i < n_val else train
    n = len(assignment)
    for target, source in ((val, train), (train, val)):
        if n >= 2 and target not in assignment.values():
            # Move one case, preferring the larger stratum, so both splits exist.
            movable = sorted(c for c, s in assignment.items() if s == source)
            assignment[movable[int(rng.integers(len(movable)))]] = target
    return assignment


def kfold_split(case_ids: Sequence[str], has_foreground: Mapping[str, bool], folds: int = 5,
                seed: int = 0) -> Dict[str, int]:
    """Case → fold index (0..folds-1), seeded and stratified; fold sizes differ by at most one."""
    if folds < 2:
        raise ValueError(f'need at least 2 folds, got {folds}')
    if len(set(case_ids)) < folds:
        raise ValueError(f'{len(set(case_ids))} cases cannot fill {folds} folds')
    rng = np.random.default_rng(seed)
    assignment: Dict[str, int] = {}
    offset = 0
    for stratum in _strata(case_ids, has_foreground):
        order = [stratum[i] for i in rng.permutation(len(stratum))]
        for i, case in enumerate(order):
            assignment[case] = (offset + i) % folds
        offset += len(order)
    return assignment


def folds_as_splits(fold_of: Mapping[str, int], folds: int) -> List[Dict[str, List[str]]]:
    """nnU-Net ``splits_final.json`` form: one ``{"train": [...], "val": [...]}`` per fold."""
    return [{'train': sorted(c for c, f in fold_of.items() if f != k),
             'val': sorted(c for c, f in fold_of.items() if f == k)} for k in range(folds)]
