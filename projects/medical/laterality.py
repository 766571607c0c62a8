"""Left/right classes under mirroring: the mirror pairs a dataset declares, and what a left-right flip does to them.

In the project's slice convention (:mod:`mmseg_medical.orientation`: L, P, S, radiological display) the image
columns (``W``) run from the patient's right to the patient's left and the rows (``H``) from anterior to
posterior. So a flip of the columns (mmcv's ``'horizontal'`` and ``'diagonal'`` flips; TTA axis ``W`` of
``--tta flip`` and of two of the four ``flip2`` passes) mirrors the patient's left and right: a left lung
becomes a right lung. A flip of the rows alone (``'vertical'``, TTA axis ``H``) keeps the sides.

A dataset declares its mirror pairs by class name (``mirror_pairs`` of its converter / NIfTI-pair spec,
written to ``dataset.json`` by prepare and carried in the mmseg dataset's metainfo, hence in every
checkpoint's ``meta['dataset_meta']``). :func:`mirror_permutation` turns them into the channel permutation a
mirrored pass applies; a class whose name says left or right (:func:`lateral_classes`) without a declared
partner makes a left-right mirroring an error rather than a silent swap.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence, Tuple

from .errors import MedSegError

#: Words of a class name that give it a side.
LATERAL_WORDS = ('left', 'right')
#: mmcv ``RandomFlip`` directions that mirror the image columns (the patient's left-right axis).
LEFT_RIGHT_DIRECTIONS = ('horizontal', 'diagonal')
#: The TTA / slice axis that runs left-right (``W``: the columns of an ``(H, W)`` slice).
LEFT_RIGHT_AXIS = 'W'
Pairs = Tuple[Tuple[str, str], ...]


def lateral_classes(classes: Sequence[str]) -> List[str]:
    """The class names that hold the word ``left`` or ``right`` (``left_lung``, ``infection_right_lung``)."""
    return [str(c) for c in classes if set(re.split(r'[^a-z0-9]+', str(c).lower())) & set(LATERAL_WORDS)]


def check_pairs(pairs, where: Optional[str] = None) -> Pairs:
    """``pairs`` as a tuple of ``(name, name)`` pairs of distinct names, no name in two pairs; else
    :class:`MedSegError` naming ``where``."""
    out, seen = [], set()
    for pair in pairs or ():
        if isinstance(pair, str) or len(pair) != 2 or not all(isinstance(n, str) for n in pair) or pair[0] == pair[1]:
            raise MedSegError(where, f'mirror pairs are pairs of two different class names, got {pair!r}')
        if seen & set(pair):
            raise MedSegError(where, f'class {sorted(seen & set(pair))[0]!r} is in two mirror pairs')
        seen.update(pair)
        out.append((str(pair[0]), str(pair[1])))
    return tuple(out)


def pairs_within(pairs, classes: Sequence[str]) -> Pairs:
    """The declared pairs whose two classes are both in ``classes`` (a subtask's share of a dataset's pairs)."""
    names = set(classes)
    return tuple(p for p in check_pairs(pairs) if set(p) <= names)


def mirror_permutation(classes: Sequence[str], pairs, who: Optional[str] = None) -> List[int]:
    """``perm`` with ``perm[c]`` = the class that class ``c`` is in the mirrored image (paired classes
    exchanged, the others kept), so ``probabilities[perm]`` swaps the paired channels.

    A lateral class (:func:`lateral_classes`) without a partner in ``classes`` is a :class:`MedSegError`
    naming ``who``: mirroring could not say what it becomes.
    """
    index = {str(c): i for i, c in enumerate(classes)}
    perm = list(range(len(classes)))
    paired = set()
    for a, b in check_pairs(pairs, who):
        if a in index and b in index:
            perm[index[a]], perm[index[b]] = index[b], index[a]
            paired.update((a, b))
    unpaired = [c for c in lateral_classes(classes) if c not in paired]
    if unpaired:
        raise MedSegError(who, f'classes {", ".join(unpaired)} are left/right classes and no mirror pair is declared '
                               f'for {"them" if len(unpaired) > 1 else "it"} (the dataset\'s mirror_pairs), so a '
                               'left-right mirroring would swap the sides')
    return perm


def declared_pairs(dataset_meta: Optional[dict], dataset_type: Optional[str] = None,
                   data_root: Optional[str] = None) -> Pairs:
    """A model's mirror pairs: its ``dataset_meta['mirror_pairs']`` (the checkpoint's), else those of the
    prepared dataset ``data_root`` (its ``dataset.json``, when it has the key), else the
    ``METAINFO['mirror_pairs']`` of the registered mmseg dataset ``dataset_type`` (checkpoints saved before
    the pairs were declared), else none."""
    pairs = (dataset_meta or {}).get('mirror_pairs')
    if pairs is None and data_root and os.path.isfile(os.path.join(data_root, 'dataset.json')):
        from .manifest import read_dataset_card

        pairs = read_dataset_card(data_root).get('mirror_pairs')
        if pairs is not None:
            return check_pairs(pairs, os.path.join(data_root, 'dataset.json'))
    if pairs is None and dataset_type:
        from mmseg.registry import DATASETS

        try:
            dataset_cls = DATASETS.get(dataset_type)
        except Exception:  # an unregistered type: nothing declared
            dataset_cls = None
        pairs = (getattr(dataset_cls, 'METAINFO', None) or {}).get('mirror_pairs')
    return check_pairs(pairs or ())


def swap_label_values(labels, value_pairs: Sequence[Tuple[int, int]]):
    """A copy of the integer label array ``labels`` with each pair's two values exchanged."""
    import numpy as np

    out = np.array(labels, copy=True)
    for a, b in value_pairs:
        out[labels == a] = b
        out[labels == b] = a
    return out
