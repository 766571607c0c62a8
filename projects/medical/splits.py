"""Patient-level splits: every *group* (patient) lands in exactly one split; slices never leak.

Cases are scans; ``groups`` maps each case to its patient (default: the case itself). Hold-out and
k-fold assignments are stratified on a label per case, by default "has foreground" (a spec may give
another, e.g. Cranium's patient-level hemorrhage subtype), and computed with scikit-learn
(``train_test_split`` over groups, ``StratifiedGroupKFold``), deterministic for a seed and independent of
the order the cases are given in.
"""
from __future__ import annotations

import warnings
from typing import Dict, Hashable, List, Mapping, Optional, Sequence

import numpy as np


def _groups(case_ids: Sequence[str], groups: Optional[Mapping[str, str]]) -> Dict[str, str]:
    if len(set(case_ids)) != len(case_ids):
        raise ValueError('duplicate case ids')
    return {c: (groups or {}).get(c) or c for c in sorted(case_ids)}


def check_val_fraction(val_fraction: float) -> float:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    return val_fraction


def check_folds(folds: int, num_groups: Optional[int] = None) -> int:
    if folds < 2:
        raise ValueError(f'need at least 2 folds, got {folds}')
    if num_groups is not None and num_groups < folds:
        raise ValueError(f'{num_groups} patient groups cannot fill {folds} folds')
    return folds


def _group_label(values: Sequence[Hashable]) -> Hashable:
    """A group's stratum from its cases' labels: booleans (has foreground) → any; else the one label they
    share, or their sorted names joined with ``+`` when they differ."""
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return any(values)
    distinct = sorted({str(v) for v in values})
    return values[0] if len(distinct) == 1 else '+'.join(distinct)


def holdout_split(case_ids: Sequence[str], has_foreground: Mapping[str, Hashable], val_fraction: float = 0.2,
                  seed: int = 0, groups: Optional[Mapping[str, str]] = None,
                  names: Sequence[str] = ('train', 'val')) -> Dict[str, str]:
    """Case → ``names[0]``/``names[1]``: a seeded hold-out over patient groups, stratified on foreground.

    ``ceil(val_fraction × groups)`` groups go to the second split (scikit-learn's ``train_test_split`` on
    the sorted group ids, stratified on "any case of the group has foreground" when every stratum has
    at least two groups). ``has_foreground`` may hold any hashable stratum label per case instead of a
    boolean (a group's label: :func:`_group_label`). With two or more groups both splits are non-empty;
    one group goes to the first.
    """
    from sklearn.model_selection import train_test_split

    check_val_fraction(val_fraction)
    group_of = _groups(case_ids, groups)
    group_ids = sorted(set(group_of.values()))
    train, val = names
    if len(group_ids) < 2:
        return {c: train for c in group_of}
    members: Dict[str, list] = {g: [] for g in group_ids}
    for c, g in group_of.items():
        members[g].append(has_foreground.get(c, False))
    labels = [_group_label(members[g]) for g in group_ids]
    n_val = min(max(1, int(np.ceil(val_fraction * len(group_ids)))), len(group_ids) - 1)
    try:
        _, val_groups = train_test_split(group_ids, test_size=n_val, random_state=seed, stratify=labels)
    except ValueError:  # a stratum with fewer than two groups, or fewer val slots than strata
        _, val_groups = train_test_split(group_ids, test_size=n_val, random_state=seed)
    val_set = set(val_groups)
    return {c: val if g in val_set else train for c, g in group_of.items()}


def kfold_split(case_ids: Sequence[str], has_foreground: Mapping[str, Hashable], folds: int = 5, seed: int = 0,
                groups: Optional[Mapping[str, str]] = None) -> Dict[str, int]:
    """Case → fold index (0..folds-1): scikit-learn's ``StratifiedGroupKFold`` (shuffled, seeded).

    Each patient group is in exactly one validation fold; folds are balanced in size and in the stratum
    label (``has_foreground``: a boolean, or any hashable label per case, e.g. a hemorrhage subtype).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    group_of = _groups(case_ids, groups)
    check_folds(folds, len(set(group_of.values())))
    cases = list(group_of)
    labels = [has_foreground.get(c, False) for c in cases]
    y = np.array([int(v) if isinstance(v, (bool, np.bool_)) else str(v) for v in labels])
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of: Dict[str, int] = {}
    with warnings.catch_warnings():  # "least populated class has only N members": fine for tiny sets
        warnings.simplefilter('ignore', UserWarning)
        for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(cases)), y, [group_of[c] for c in cases])):
            for i in val_idx:
                fold_of[cases[i]] = k
    return fold_of


#: nnU-Net v2's fold seed (``nnUNetTrainer.do_split``).
NNUNET_FOLD_SEED = 12345


def nnunet_folds(case_ids: Sequence[str], folds: int = 5, seed: int = NNUNET_FOLD_SEED) -> List[Dict[str, List[str]]]:
    """The folds nnU-Net v2 writes as ``splits_final.json`` when it has none: scikit-learn's
    ``KFold(folds, shuffle=True, random_state=seed)`` over the sorted case ids
    (``nnunetv2.utilities.crossval_split.generate_crossval_split``); lists in sorted order, as nnU-Net's."""
    from sklearn.model_selection import KFold

    ids = sorted(case_ids)
    check_folds(folds, len(ids))
    out = []
    for train, val in KFold(n_splits=folds, shuffle=True, random_state=seed).split(ids):
        out.append({'train': [ids[i] for i in train], 'val': [ids[i] for i in val]})
    return out


def folds_as_splits(fold_of: Mapping[str, int], folds: int) -> List[Dict[str, List[str]]]:
    """nnU-Net ``splits_final.json`` form: one ``{"train": [...], "val": [...]}`` per fold."""
    return [{'train': sorted(c for c, f in fold_of.items() if f != k),
             'val': sorted(c for c, f in fold_of.items() if f == k)} for k in range(folds)]


def groups_straddling(split_cases: Mapping[str, Sequence[str]], groups: Mapping[str, str],
                      exclusive: Sequence[Sequence[str]]) -> List[str]:
    """Groups found in more than one split of any set of mutually exclusive splits (should be empty)."""
    bad = set()
    for names in exclusive:
        seen: Dict[str, str] = {}
        for name in names:
            for case in split_cases.get(name, ()):
                g = groups.get(case, case)
                if seen.setdefault(g, name) != name:
                    bad.add(g)
    return sorted(bad)
