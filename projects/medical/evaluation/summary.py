"""Per-class summary of per-case metric rows: mean, std, percentile-bootstrap CI and empty counts.

Every row counts: cases whose class was empty in the ground truth and/or the prediction enter every
mean with the policy values of :mod:`.surface` (nothing is dropped), and the summary reports how many
cases fell in each empty category.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping

import numpy as np

from ..errors import MedSegError
from .metrics import METRIC_NAMES, check_protocol
from .surface import EMPTY_CATEGORIES

#: Metrics reported in millimetres (the others are fractions in [0, 1]).
DISTANCE_METRICS = ('hd95', 'assd')


def bootstrap_mean_ci(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator,
                      ci: float) -> np.ndarray:
    """Percentile-bootstrap CI of the mean of each column of ``values`` (cases x metrics).

    Resamples cases with replacement (the same resamples for every column), vectorised: the number of
    times each case is drawn in each resample comes from one multinomial draw. Returns shape (2, metrics).
    """
    n = values.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)
    means = counts @ values / n
    alpha = 1.0 - ci
    return np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)


def hemseg_bootstrap_ci(values: np.ndarray, n_bootstrap: int = 5000, ci: float = 0.95) -> np.ndarray:
    """The HemSeg paper's CI of the mean of each column (``evaluation/eval_bootstrap_ci.py``), per column:
    ``RandomState(47).choice(column, size=(n_bootstrap, n))``, row means sorted, CI =
    ``[stat[int(alpha/2 * B)], stat[int((1 - alpha/2) * B)]]`` with ``alpha = 1 - ci``. Returns (2, metrics)."""
    values = np.asarray(values, dtype=np.float64)
    alpha = 1.0 - ci
    out = np.empty((2, values.shape[1]))
    for j in range(values.shape[1]):
        samples = np.random.RandomState(47).choice(values[:, j], size=(n_bootstrap, values.shape[0]), replace=True)
        stat = np.sort(np.mean(samples, axis=1))
        out[:, j] = stat[int(alpha / 2 * n_bootstrap)], stat[int((1 - alpha / 2) * n_bootstrap)]
    return out


def summarize(rows: Iterable[Mapping], n_bootstrap: int = 5000, seed: int = 0,
              ci: float = 0.95, protocol: str = 'default') -> Dict[int, dict]:
    """Summarise per-case rows (as returned by ``case_metrics``) per class.

    Returns ``{class: {'n': cases, 'empty': {category: count}, 'ci': ci, 'n_bootstrap': n_bootstrap,
    metric: {'mean', 'std', 'ci_low', 'ci_high'} for each metric}}``, classes in ascending order. ``std``
    is the sample standard deviation (ddof=1; 0 for a single case). The bootstrap of class ``c`` uses
    ``numpy.random.default_rng([seed, c])``, so a class's CI does not depend on the other classes' rows.
    ``n_bootstrap=0`` computes no CI: ``ci_low`` and ``ci_high`` are ``None``. ``protocol='hemseg'`` uses
    :func:`hemseg_bootstrap_ci` (``seed`` is then unused: the paper's code always draws from 47).
    """
    if n_bootstrap < 0:
        raise MedSegError(None, f'the number of bootstrap resamples must be >= 0 (0: no CI), got {n_bootstrap}')
    if not 0.0 < ci < 1.0:
        raise MedSegError(None, f'the confidence level must be in (0, 1), got {ci}')
    if seed < 0:
        raise MedSegError(None, f'the bootstrap seed must be >= 0, got {seed}')
    check_protocol(protocol)
    by_class: Dict[int, list] = {}
    for row in rows:
        by_class.setdefault(int(row['class']), []).append(row)
    summary: Dict[int, dict] = {}
    for cls in sorted(by_class):
        class_rows = by_class[cls]
        values = np.array([[float(r[m]) for m in METRIC_NAMES] for r in class_rows])
        if not np.isfinite(values).all():
            raise MedSegError(None, f'class {cls}: metric values must be finite to be summarised')
        empties = [r.get('empty', '') for r in class_rows]
        unknown = set(empties) - set(EMPTY_CATEGORIES) - {''}
        if unknown:
            raise MedSegError(None, f'class {cls}: unknown empty categories {sorted(unknown)}')
        n = len(class_rows)
        mean = values.mean(axis=0)
        std = values.std(axis=0, ddof=1) if n > 1 else np.zeros(len(METRIC_NAMES))
        if n_bootstrap and protocol == 'hemseg':
            low, high = hemseg_bootstrap_ci(values, n_bootstrap, ci)
        elif n_bootstrap:
            low, high = bootstrap_mean_ci(values, n_bootstrap, np.random.default_rng([seed, cls]), ci)
        else:
            low = high = [None] * len(METRIC_NAMES)
        entry: dict = {'n': n, 'empty': {e: empties.count(e) for e in EMPTY_CATEGORIES}, 'ci': ci,
                       'n_bootstrap': n_bootstrap, 'protocol': protocol}
        for j, name in enumerate(METRIC_NAMES):
            entry[name] = {'mean': float(mean[j]), 'std': float(std[j]),
                           'ci_low': None if low[j] is None else float(low[j]),
                           'ci_high': None if high[j] is None else float(high[j])}
        summary[cls] = entry
    return summary


def format_summary_markdown(summary: Mapping[int, Mapping]) -> str:
    """A markdown table of :func:`summarize`'s result: ``mean ± std [CI]`` per metric, empty counts.

    Without a CI (``n_bootstrap=0``) the cells are ``mean ± std``.
    """
    if not summary:
        return 'No classes to summarise.\n'
    first = next(iter(summary.values()))
    level = f'{100 * first["ci"]:g}%'
    header = (['class', 'n'] + [f'{m} (mm)' if m in DISTANCE_METRICS else m for m in METRIC_NAMES]
              + list(EMPTY_CATEGORIES))
    if first['n_bootstrap'] and first.get('protocol') == 'hemseg':
        caption = (f'Per class: mean ± std [{level} bootstrap CI of the mean, {first["n_bootstrap"]} resamples '
                   'over cases, RandomState(47) as the HemSeg paper; HD95 with MONAI\'s boundary-voxel rule].')
    elif first['n_bootstrap']:
        caption = (f'Per class: mean ± std [{level} percentile-bootstrap CI of the mean, '
                   f'{first["n_bootstrap"]} resamples over cases].')
    else:
        caption = 'Per class: mean ± std over cases (no bootstrap CI).'
    lines = [caption, '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for cls, entry in summary.items():
        cells = [str(cls), str(entry['n'])]
        for name in METRIC_NAMES:
            s = entry[name]
            digits = 2 if name in DISTANCE_METRICS else 4
            cell = f'{s["mean"]:.{digits}f} ± {s["std"]:.{digits}f}'
            if s['ci_low'] is not None:
                cell += f' [{s["ci_low"]:.{digits}f}, {s["ci_high"]:.{digits}f}]'
            cells.append(cell)
        cells += [str(entry['empty'][e]) for e in EMPTY_CATEGORIES]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'

