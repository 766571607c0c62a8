"""Dice over the slices that carry a per-slice flag (e.g. Cranium's hemorrhage subtypes).

A prepared dataset may record per-slice flags read from its release (``cases/<case>.json`` ``meta.slice_values``,
one value per source slice, the label's third NIfTI axis; ``dataset.json`` ``slice_flags.subtypes`` names the
flags to score). For each flag and class: per case, Dice of prediction and truth restricted to the case's
flagged slices (both empty there: 1, the ``default`` protocol's rule), summarised as mean ± sample std over the
cases with at least one flagged slice, and the Dice pooled over all those slices (2 Σ|P∩G| / Σ(|P| + |G|)).
A slice may carry several flags (a mixed bleed counts for each).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import MedSegError

#: The row of the table for slices flagged by any of the flags scored.
ANY = 'any'


def flagged_counts(gt: np.ndarray, pred: np.ndarray, slices: Sequence[int], cls: int) -> Tuple[int, int, int]:
    """(|P ∩ G|, |P|, |G|) of class ``cls`` over the given indices of the last axis (NIfTI k)."""
    index = np.asarray(slices, dtype=np.intp)
    g, p = gt[..., index] == cls, pred[..., index] == cls
    return int(np.count_nonzero(g & p)), int(np.count_nonzero(p)), int(np.count_nonzero(g))


def case_flag_rows(case: str, gt: np.ndarray, pred: np.ndarray, values: Mapping[str, Sequence[int]],
                   flags: Sequence[str], classes: Sequence[int]) -> List[dict]:
    """One row per (flag, class) the case has flagged slices for (plus :data:`ANY`, slices with any flag):
    ``case, flag, class, slices, inter, pred, gt``."""
    depth = gt.shape[-1]
    rows = []
    marked = {f: [k for k, v in enumerate(values[f]) if int(v)] for f in flags if f in values}
    for f, column in values.items():
        if f in marked and len(column) != depth:
            raise MedSegError(None, f'case {case}: {len(column)} {f} flags for {depth} slices')
    marked[ANY] = sorted({k for ks in marked.values() for k in ks})
    for flag, slices in marked.items():
        if not slices:
            continue
        for cls in classes:
            inter, n_pred, n_gt = flagged_counts(gt, pred, slices, cls)
            rows.append({'case': case, 'flag': flag, 'class': cls, 'slices': len(slices), 'inter': inter,
                         'pred': n_pred, 'gt': n_gt})
    return rows


def _dice(inter: int, n_pred: int, n_gt: int) -> float:
    return 1.0 if n_pred + n_gt == 0 else 2.0 * inter / (n_pred + n_gt)


def summarize_flags(rows: Sequence[dict], flags: Sequence[str]) -> Dict[Tuple[str, int], dict]:
    """(flag, class) → ``cases``, ``slices``, per-case Dice ``mean``/``std`` (ddof 1; 0 for one case) and
    ``pooled`` Dice, in the order of ``flags`` then :data:`ANY`."""
    groups: Dict[Tuple[str, int], List[dict]] = {}
    for r in rows:
        groups.setdefault((r['flag'], int(r['class'])), []).append(r)
    order = {f: i for i, f in enumerate([*flags, ANY])}
    out: Dict[Tuple[str, int], dict] = {}
    for key in sorted(groups, key=lambda k: (order.get(k[0], len(order)), k[1])):
        group = groups[key]
        dice = np.array([_dice(r['inter'], r['pred'], r['gt']) for r in group])
        inter, n_pred, n_gt = (sum(r[k] for r in group) for k in ('inter', 'pred', 'gt'))
        out[key] = {'cases': len(group), 'slices': sum(r['slices'] for r in group), 'mean': float(dice.mean()),
                    'std': float(dice.std(ddof=1)) if len(group) > 1 else 0.0, 'pooled': _dice(inter, n_pred, n_gt)}
    return out


def format_flags_markdown(summary: Mapping[Tuple[str, int], dict], names: Optional[Mapping[int, str]] = None,
                          source: str = 'slice flags') -> str:
    """The per-flag table of :func:`summarize_flags` (Dice in [0, 1], 4 decimals)."""
    lines = [f'Dice over the slices carrying each flag of {source} (truth and prediction restricted to those '
             'slices; both empty there: 1): mean ± std over the cases with such slices, and pooled over all of '
             f'them. `{ANY}`: slices with any of these flags.', '',
             '| flag | class | cases | slices | Dice per case | Dice pooled |', '|---|---|---:|---:|---:|---:|']
    for (flag, cls), s in summary.items():
        label = (names or {}).get(cls, str(cls))
        lines.append(f'| {flag} | {label} | {s["cases"]} | {s["slices"]} | {s["mean"]:.4f} ± {s["std"]:.4f} | '
                     f'{s["pooled"]:.4f} |')
    return '\n'.join(lines) + '\n'
