"""Run labels: the shortest readable part of each config name that tells it from the others in one benchmark."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence


_TOKEN = re.compile(r'[_-]?[^_-]+')


def _tokens(name: str) -> List[str]:
    """A config name's parts, each with the ``_`` or ``-`` before it: ``a-b_c.py`` → ``a``, ``-b``, ``_c``."""
    return _TOKEN.findall(name[:-3] if name.endswith('.py') else name)


def _lcs(a: Sequence[str], b: Sequence[str]) -> List[str]:
    """A longest common subsequence of two token lists."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _slots(tokens: Sequence[str], common: Sequence[str]) -> List[List[str]]:
    """``tokens`` cut at the tokens of ``common`` (matched left to right): ``len(common) + 1`` runs of own tokens."""
    slots: List[List[str]] = [[]]
    k = 0
    for t in tokens:
        if k < len(common) and t == common[k]:
            slots.append([])
            k += 1
        else:
            slots[-1].append(t)
    return slots


def _differing_spans(toks: Sequence[Sequence[str]]) -> List[str]:
    """Each token list without the prefix and suffix all share (widened by one shared token while one is empty)."""
    shortest = min(len(t) for t in toks)
    p = 0
    while p < shortest and all(t[p] == toks[0][p] for t in toks):
        p += 1
    q = 0
    while q < shortest - p and all(t[-1 - q] == toks[0][-1 - q] for t in toks):
        q += 1
    while p + q and any(len(t) == p + q for t in toks):
        p, q = (p - 1, q) if p else (p, q - 1)
    return [''.join(t[p:len(t) - q]).lstrip('_-') for t in toks]


def run_labels(names: Sequence[str]) -> List[str]:
    """The shortest readable label of each config of one run that tells it from the others: the parts of its
    name that differ from the others' (``0.01`` / ``0.001``; ``fcn`` / ``pspnet``), shared parts between them
    shown as ``…`` (``0.01…3w``); when one name has nothing of its own, every label starts with the shared part
    before the difference (``hemseg`` / ``hemseg-3w``). Labels are unique: names that would still collide (the
    same file name in two folders) are numbered ``#1``, ``#2``."""
    names = [Path(n).name for n in names]
    toks = [_tokens(n) for n in names]
    if len(names) == 1:
        labels = [toks[0][0].lstrip('_-') if toks[0] else names[0]]
    else:
        common = toks[0]
        for t in toks[1:]:
            common = _lcs(common, t)
        slots = [_slots(t, common) for t in toks]
        differ = [k for k in range(len(common) + 1) if len({tuple(s[k]) for s in slots}) > 1]
        if any(not any(s[k] for k in differ) for s in slots):  # a name with nothing of its own: add context,
            for k in differ:  # the shared name field before the difference (``_hemseg``, ``fcn-unet-s5-d16``)
                j = k - 1
                while j > 0 and not common[j].startswith('_') and j not in differ:
                    j -= 1
                for s in slots:
                    s[k] = [*common[j:k], *s[k]] if k > 0 else [*s[k], common[0]]
        labels = ['…'.join(''.join(s[k]).lstrip('_-') for k in differ if s[k]) for s in slots]
        if len(set(labels)) < len(labels):  # the same own parts in other places: each name's differing span
            labels = _differing_spans(toks)
    seen: Dict[str, int] = {}
    out = []
    for label in labels:
        label = label or '(empty)'
        seen[label] = seen.get(label, 0) + 1
        out.append(label if labels.count(label) == 1 else f'{label} #{seen[label]}')
    return out
