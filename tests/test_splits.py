"""Patient-level splits: properties that must hold for any seed (partition, groups, strata, determinism)."""
import math

import pytest

from mmseg_medical.splits import folds_as_splits, groups_straddling, holdout_split, kfold_split

CASES = [f'{i:03d}' for i in range(49, 131)]  # the 82 Cranium patient ids
FG = {c: i % 4 != 0 for i, c in enumerate(CASES)}
# HemSeg-like: scans grouped by patient, 1-3 scans each
GROUP = {c: f'p{(i * 7) // 17}' for i, c in enumerate(CASES)}


@pytest.mark.parametrize('seed', range(5))
def test_holdout_is_a_stratified_partition_of_groups(seed):
    split = holdout_split(CASES, FG, 0.2, seed=seed, groups=GROUP)
    assert set(split) == set(CASES) and set(split.values()) == {'train', 'val'}
    val_groups = {GROUP[c] for c, s in split.items() if s == 'val'}
    train_groups = {GROUP[c] for c, s in split.items() if s == 'train'}
    assert not val_groups & train_groups                                  # no patient in both
    assert len(val_groups) == math.ceil(0.2 * len(set(GROUP.values())))   # ceil(fraction x groups)
    val = [c for c, s in split.items() if s == 'val']
    assert any(FG[c] for c in val) and any(not FG[c] for c in val)
    assert holdout_split(CASES[::-1], FG, 0.2, seed=seed, groups=GROUP) == split   # order independent
    assert holdout_split(CASES, FG, 0.2, seed=seed, groups=GROUP) == split         # deterministic


def test_holdout_seed_changes_the_split_and_default_groups_are_cases():
    a, b = holdout_split(CASES, FG, 0.2, seed=3), holdout_split(CASES, FG, 0.2, seed=4)
    assert a != b
    assert sum(s == 'val' for s in a.values()) == math.ceil(0.2 * len(CASES))
    # stratification: the val share of foreground cases is the overall share within one case
    fg_val = sum(FG[c] for c, s in a.items() if s == 'val')
    assert abs(fg_val - round(sum(FG.values()) * 17 / 82)) <= 1


def test_tiny_sets_still_get_both_splits():
    split = holdout_split(['a', 'b'], {'a': True, 'b': True}, 0.2)
    assert sorted(split.values()) == ['train', 'val']
    assert holdout_split(['a', 'b'], {}, 0.5, groups={'a': 'p', 'b': 'p'}) == {'a': 'train', 'b': 'train'}


@pytest.mark.parametrize('groups', [None, GROUP])
def test_kfold_every_case_in_exactly_one_validation_fold(groups):
    fold_of = kfold_split(CASES, FG, 5, seed=0, groups=groups)
    folds = folds_as_splits(fold_of, 5)
    vals = [set(f['val']) for f in folds]
    assert set().union(*vals) == set(CASES)
    assert sum(len(v) for v in vals) == len(CASES)
    if groups is None:
        sizes = [len(v) for v in vals]
        assert max(sizes) - min(sizes) <= 1
    for f in folds:
        assert not set(f['train']) & set(f['val'])
        assert any(FG[c] for c in f['val'])
    lists = {f'fold{k}_{n}': f[n] for k, f in enumerate(folds) for n in ('train', 'val')}
    assert groups_straddling(lists, groups or {}, [(f'fold{k}_train', f'fold{k}_val') for k in range(5)]) == []
    assert kfold_split(CASES[::-1], FG, 5, seed=0, groups=groups) == fold_of


def test_groups_straddling_finds_a_leak():
    lists = {'train': ['a', 'b'], 'val': ['c']}
    assert groups_straddling(lists, {'a': 'p1', 'b': 'p2', 'c': 'p2'}, [('train', 'val')]) == ['p2']


def test_kfold_and_holdout_reject_bad_arguments():
    with pytest.raises(ValueError, match='2 patient groups cannot fill 5 folds'):
        kfold_split(['a', 'b'], {}, 5)
    with pytest.raises(ValueError, match='1 patient groups cannot fill 2 folds'):
        kfold_split(['a', 'b'], {}, 2, groups={'a': 'p', 'b': 'p'})
    with pytest.raises(ValueError, match='duplicate'):
        holdout_split(['a', 'a'], {})
    with pytest.raises(ValueError, match=r'val_fraction must be in \(0, 1\)'):
        holdout_split(['a', 'b'], {}, 1.0)
