"""Mirror pairs by class name → the channel permutation of a left-right mirrored pass, written out by hand."""
from __future__ import annotations

import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.laterality import check_pairs, declared_pairs, lateral_classes, mirror_permutation, pairs_within

COVID_PAIRS = (('left_lung', 'right_lung'), ('infection_left_lung', 'infection_right_lung'))


def test_lateral_classes_are_names_with_the_word_left_or_right():
    assert lateral_classes(['background', 'left_lung', 'Right-Kidney', 'cleft', 'brightness', 'infection_right_lung']) \
        == ['left_lung', 'Right-Kidney', 'infection_right_lung']


@pytest.mark.parametrize('classes, perm', [
    (('background', 'left_lung', 'right_lung', 'infection'), [0, 2, 1, 3]),
    (('background', 'left_lung', 'right_lung'), [0, 2, 1]),
    (('background', 'infection'), [0, 1]),
    (('background', 'left_lung', 'right_lung', 'infection', 'infection_left_lung', 'infection_right_lung'),
     [0, 2, 1, 3, 5, 4]),
])
def test_permutation_of_each_covid_subtask(classes, perm):
    assert mirror_permutation(classes, COVID_PAIRS) == perm


def test_lateral_class_without_partner_is_refused():
    with pytest.raises(MedSegError, match=r"^ckpt\.pth: classes left_lung, right_lung are left/right classes and no "
                                          r"mirror pair is declared for them"):
        mirror_permutation(('background', 'left_lung', 'right_lung'), (), 'ckpt.pth')
    with pytest.raises(MedSegError, match='classes left_lung are left/right'):
        mirror_permutation(('background', 'left_lung'), COVID_PAIRS)     # its partner is not a class


def test_pairs_are_checked_and_restricted_to_the_classes():
    assert pairs_within(COVID_PAIRS, ('background', 'left_lung', 'right_lung', 'infection')) == COVID_PAIRS[:1]
    for bad in ([('a',)], [('a', 'a')], [('a', 'b'), ('b', 'c')], ['ab']):
        with pytest.raises(MedSegError):
            check_pairs(bad, 'dataset.json')


def test_declared_pairs_checkpoint_first_then_the_prepared_dataset_then_the_dataset_type(tmp_path):
    (tmp_path / 'dataset.json').write_text('{"name": "x", "classes": [], "mirror_pairs": [["l_left", "l_right"]]}')
    assert declared_pairs({'classes': ('background',)}, 'Covid19Dataset', str(tmp_path)) == (('l_left', 'l_right'),)
    assert declared_pairs({'mirror_pairs': []}, 'Covid19Dataset', str(tmp_path)) == ()
    (tmp_path / 'dataset.json').write_text('{"name": "x", "classes": []}')
    assert declared_pairs({}, 'Covid19Dataset', str(tmp_path)) == COVID_PAIRS


def test_declared_pairs_checkpoint_first_then_the_dataset_type():
    assert declared_pairs({'mirror_pairs': [['a_left', 'a_right']]}, 'Covid19Dataset') == (('a_left', 'a_right'),)
    assert declared_pairs({'classes': ('background',)}, 'Covid19Dataset') == COVID_PAIRS
    assert declared_pairs({}, 'StructSegLungDataset') == (('left_lung', 'right_lung'),)
    assert declared_pairs({}, 'CraniumDataset') == () == declared_pairs(None, 'NoSuchDataset')
