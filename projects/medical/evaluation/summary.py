"""Per-class summary of per-case metric rows: mean, std, percentile-bootstrap CI and empty counts.

Every row counts: cases whose class was empty in the ground truth and/or the prediction enter every
mean with the policy values of :mod:`.surface` (nothing is dropped), and the summary reports how many
cases fell in each empty category.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np

from ..errors import MedSegError
from .protocols.base import METRIC_UNITS, Structure, structure_key, structure_order
from .surface import EMPTY_CATEGORIES

if TYPE_CHECKING:
    from .protocols import Protocol

#: Metrics reported in millimetres (the others are fractions in [0, 1], or voxels: ``hd95_vox``).
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


def _quantiles(column: np.ndarray) -> Tuple[float, float, float]:
    """Median and the quartiles (linear interpolation, as numpy / pandas) of a non-empty column."""
    q1, median, q3 = np.percentile(column, [25, 50, 75])
    return float(median), float(q1), float(q3)


def summarize(rows: Iterable[Mapping], n_bootstrap: int = 5000, seed: int = 0,
              ci: float = 0.95, protocol: Union[str, 'Protocol'] = 'default') -> Dict[Structure, dict]:
    """Summarise per-case rows (as returned by ``case_metrics``) per class, as ``protocol`` aggregates.

    Returns ``{class: {'n': cases, 'empty': {category: count}, 'ci': ci, 'n_bootstrap': n_bootstrap,
    'protocol': name, metric: {'mean', 'std', 'ci_low', 'ci_high', 'median', 'q1', 'q3', 'n'} for each of
    the protocol's metrics}}``, classes in ascending order, then the unions of classes a protocol scores (keyed by
    name, e.g. ``'vs'``). ``std`` is the sample standard deviation (ddof=1;
    0 for a single case). The CI comes from the protocol (``default``: percentile bootstrap with
    ``numpy.random.default_rng([seed, c])`` for class ``c``, the same resamples for every metric;
    ``hemseg``: :func:`hemseg_bootstrap_ci`). ``n_bootstrap=0`` computes no CI (``None``). NaN values (cases
    the official code leaves undefined) are left out of a metric's statistics where the protocol says so
    (``omit_nan``; the metric's ``n`` counts the rest), and are an error otherwise.
    """
    from .protocols import get_protocol

    if n_bootstrap < 0:
        raise MedSegError(None, f'the number of bootstrap resamples must be >= 0 (0: no CI), got {n_bootstrap}')
    if not 0.0 < ci < 1.0:
        raise MedSegError(None, f'the confidence level must be in (0, 1), got {ci}')
    if seed < 0:
        raise MedSegError(None, f'the bootstrap seed must be >= 0, got {seed}')
    spec = get_protocol(protocol)
    metrics = spec.metrics
    by_class: Dict[Structure, list] = {}
    for row in rows:
        by_class.setdefault(structure_key(row['class']), []).append(row)
    summary: Dict[Structure, dict] = {}
    for cls in sorted(by_class, key=structure_order):
        class_rows = by_class[cls]
        try:
            values = np.array([[float(r[m]) for m in metrics] for r in class_rows])
        except KeyError as exc:
            raise MedSegError(None, f'class {cls}: rows lack metric {exc} of protocol {spec.name}') from None
        finite = np.isfinite(values)
        if not finite.all() and not (spec.omit_nan and not np.isinf(values).any()):
            raise MedSegError(None, f'class {cls}: metric values must be finite to be summarised')
        empties = [r.get('empty', '') for r in class_rows]
        unknown = set(empties) - set(EMPTY_CATEGORIES) - {''}
        if unknown:
            raise MedSegError(None, f'class {cls}: unknown empty categories {sorted(unknown)}')
        entry: dict = {'n': len(class_rows), 'empty': {e: empties.count(e) for e in EMPTY_CATEGORIES}, 'ci': ci,
                       'n_bootstrap': n_bootstrap, 'protocol': spec.name}
        if finite.all():   # one resampling for all metrics
            columns = [values]
            low, high = (spec.bootstrap_ci(values, n_bootstrap, seed, cls, ci) if n_bootstrap and len(values)
                         else ([None] * len(metrics),) * 2)
            bounds = [(low[j], high[j]) for j in range(len(metrics))]
        else:              # NaN left out metric by metric
            columns, bounds = [], []
            for j in range(len(metrics)):
                kept = values[finite[:, j], j][:, None]
                columns.append(kept)
                if n_bootstrap and len(kept):
                    lo, hi = spec.bootstrap_ci(kept, n_bootstrap, seed, cls, ci)
                    bounds.append((lo[0], hi[0]))
                else:
                    bounds.append((None, None))
        for j, name in enumerate(metrics):
            column = columns[0][:, j] if len(columns) == 1 else columns[j][:, 0]
            n = len(column)
            if n == 0:
                entry[name] = {'mean': float('nan'), 'std': float('nan'), 'ci_low': None, 'ci_high': None,
                               'median': float('nan'), 'q1': float('nan'), 'q3': float('nan'), 'n': 0}
                continue
            median, q1, q3 = _quantiles(column)
            low, high = bounds[j]
            entry[name] = {'mean': float(column.mean()), 'std': float(column.std(ddof=1)) if n > 1 else 0.0,
                           'ci_low': None if low is None else float(low),
                           'ci_high': None if high is None else float(high),
                           'median': median, 'q1': q1, 'q3': q3, 'n': n}
        summary[cls] = entry
    return summary


def summarize_by_site(rows: Iterable[Mapping], protocol: Union[str, 'Protocol'], n_bootstrap: int = 0,
                      seed: int = 0) -> Dict[str, Dict[Structure, dict]]:
    """:func:`summarize` of the rows of each acquisition site (``protocol.site(case)``); ``{}`` when no
    case carries a site. Cases without a site are grouped under ``'other'``."""
    from .protocols import get_protocol

    spec = get_protocol(protocol)
    rows = list(rows)
    sites = {r['case']: spec.site(str(r['case'])) for r in rows}
    if not any(sites.values()):
        return {}
    groups: Dict[str, list] = {}
    for r in rows:
        groups.setdefault(sites[r['case']] or 'other', []).append(r)
    return {site: summarize(group, n_bootstrap=n_bootstrap, seed=seed, protocol=spec)
            for site, group in sorted(groups.items())}


def _cell(s: Mapping, digits: int, median_iqr: bool) -> str:
    if s['n'] == 0:
        return '–'
    cell = f'{s["mean"]:.{digits}f} ± {s["std"]:.{digits}f}'
    if s['ci_low'] is not None:
        cell += f' [{s["ci_low"]:.{digits}f}, {s["ci_high"]:.{digits}f}]'
    if median_iqr:
        cell = f'{s["median"]:.{digits}f} [{s["q1"]:.{digits}f}, {s["q3"]:.{digits}f}]; ' + cell
    return cell


def format_summary_markdown(summary: Mapping[Structure, Mapping], names: Optional[Mapping[Structure, str]] = None
                            ) -> str:
    """A markdown table of :func:`summarize`'s result, one row per class.

    Cells are ``mean ± std [CI]`` (``median [Q1, Q3]; mean ± std [CI]`` for protocols reporting median and
    IQR); distance columns name their unit (mm or voxels); a column ``n`` per metric appears when NaN cases
    were left out. ``names`` relabels the class column.
    """
    from .protocols import get_protocol, metric_header

    if not summary:
        return 'No classes to summarise.\n'
    first = next(iter(summary.values()))
    spec = get_protocol(first.get('protocol', 'default'))
    metrics = spec.metrics
    level = f'{100 * first["ci"]:g}%'
    omitted = any(entry[m]['n'] != entry['n'] for entry in summary.values() for m in metrics)
    header = ['class', 'n'] + [metric_header(m) for m in metrics]
    if omitted:
        header += [f'n ({m})' for m in metrics]
    header += list(EMPTY_CATEGORIES)
    stats = 'median [Q1, Q3]; mean ± std' if spec.median_iqr else 'mean ± std'
    if first['n_bootstrap']:
        cells = f'{stats} [{level} CI of the mean] over cases, the CI from {first["n_bootstrap"]} bootstrap resamples'
    else:
        cells = f'{stats} over cases (no bootstrap CI)'
    caption = f'Protocol {spec.name}. Each cell: {cells}. Aggregation rule: {spec.aggregation_rule}.'
    if omitted:
        caption += ' Cases the official code scores NaN are left out of a metric (its n column).'
    lines = [caption, '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for cls, entry in summary.items():
        label = (names or {}).get(cls, str(cls))
        cells = [label, str(entry['n'])]
        for name in metrics:
            cells.append(_cell(entry[name], 4 if METRIC_UNITS[name] == 'fraction' else 2, spec.median_iqr))
        if omitted:
            cells += [str(entry[m]['n']) for m in metrics]
        cells += [str(entry['empty'][e]) for e in EMPTY_CATEGORIES]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def format_site_markdown(by_site: Mapping[str, Mapping[Structure, Mapping]],
                         names: Optional[Mapping[Structure, str]] = None) -> str:
    """Per-site tables (:func:`summarize_by_site`), one heading per site; '' when there is no site."""
    parts = [f'Site {site} ({next(iter(s.values()))["n"] if s else 0} cases):\n\n' + format_summary_markdown(s, names)
             for site, s in by_site.items()]
    return '\n'.join(parts)
