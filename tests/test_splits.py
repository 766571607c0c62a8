import pytest

from mmseg_medical.splits import folds_as_splits, holdout_split, kfold_split

CASES = [f'{i:03d}' for i in range(49, 131)]  # the 82 Cranium patient ids
FG = {c: i % 4 != 0 for i, c in enumerate(CASES)}


def test_holdout_is_a_partition_stratified_and_deterministic():
    split = holdout_split(CASES, FG, 0.2, seed=3)
    assert set(split) == set(CASES) and set(split.values()) == {'train', 'val'}
    val = [c for c, s in split.items() if s == 'val']
    assert len(val) == round(sum(FG.values()) * 0.2) + round((len(CASES) - sum(FG.values())) * 0.2)
    assert any(FG[c] for c in val) and any(not FG[c] for c in val)
    assert holdout_split(CASES, FG, 0.2, seed=3) == split
    assert holdout_split(CASES, FG, 0.2, seed=4) != split


def test_holdout_does_not_depend_on_input_order():
    assert holdout_split(CASES[::-1], FG, 0.2, seed=0) == holdout_split(CASES, FG, 0.2, seed=0)


def test_tiny_sets_still_get_both_splits():
    split = holdout_split(['a', 'b'], {'a': True, 'b': True}, 0.2)
    assert sorted(split.values()) == ['train', 'val']


def test_kfold_every_case_in_exactly_one_validation_fold():
    fold_of = kfold_split(CASES, FG, 5, seed=0)
    folds = folds_as_splits(fold_of, 5)
    vals = [set(f['val']) for f in folds]
    assert set().union(*vals) == set(CASES)
    assert sum(len(v) for v in vals) == len(CASES)
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    for f in folds:
        assert not set(f['train']) & set(f['val'])
        assert any(FG[c] for c in f['val'])


def test_kfold_rejects_too_few_cases():
    with pytest.raises(ValueError, match='cannot fill'):
        kfold_split(['a', 'b'], {}, 5)
    with pytest.raises(ValueError, match='duplicate'):
        holdout_split(['a', 'a'], {})
