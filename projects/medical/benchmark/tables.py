"""The benchmark's tables: ``results.{md,csv}`` of config runs and ``fold_cases.csv`` / ``fold_table.{md,csv}``
of fold presets (per fold and pooled mean ± std beside the published rows); their charts: :mod:`.figures`."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .labels import run_labels
from .presets import FoldPreset, comparison_groups
from .published import PUBLISHED, TEST_SETS


#: (column title, key in the test metrics, digits, unit): mmseg's IoUMetric and VolumeMetric give IoU, Dice and
#: NSD in % (0-100) and distances in mm.
COLUMNS = [('mIoU', 'mIoU', 2, '%'), ('mDice', 'mDice', 2, '%'), ('vol. Dice', 'volume/mDice', 2, '%'),
           ('vol. NSD', 'volume/mNSD', 2, '%'), ('vol. HD95', 'volume/mHD95', 2, 'mm')]


def column_title(title: str, unit: str) -> str:
    """``mIoU (%)``, ``vol. HD95 (mm)``: a table column or chart tick with its unit."""
    return f'{title} ({unit})'


def _cell(metrics: dict, key: str, digits: int) -> str:
    value = metrics.get(key)
    return '–' if value is None else f'{value:.{digits}f}'


def write_results(results: Sequence[dict], work_dir: Path, protocol: Optional[str] = None) -> List[Path]:
    """``results.md``, ``results.csv`` and the chart ``results.png`` (:func:`results_figure`); each run named by
    its label (:func:`run_labels`) in all three; returns the written paths."""
    labels = run_labels([r['config'] for r in results])
    head = ['run', 'Method', 'Backbone', 'Crop Size', 'lr', 'input'] + [column_title(c[0], c[3]) for c in COLUMNS]
    lines = ['| ' + ' | '.join(head + ['config']) + ' |', '|' + '---|' * 6 + '---:|' * len(COLUMNS) + '---|']
    for label, r in zip(labels, results):
        cells = [f'**{label}**', r['method'], r['backbone'], r['crop_size'], f"{r['lr']:g}", r.get('input', '')]
        cells += [_cell(r['metrics'], key, d) for _, key, d, _ in COLUMNS] + [f"`{r['config']}`"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    note = ('\nrun: the part of the config names that differs. mIoU/mDice: mmseg IoUMetric, pixels pooled over all '
            'test slices, in % (0-100). vol.: per-case 3D metrics (VolumeMetric) averaged over cases and foreground '
            'classes, Dice and NSD in % (0-100), HD95 in mm; '
            + (f'protocol `{protocol}` for every test.\n' if protocol else 'protocol as each config says.\n'))
    md = work_dir / 'results.md'
    md.write_text('\n'.join(lines) + '\n' + note)
    out = work_dir / 'results.csv'
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['run', 'config', 'method', 'backbone', 'crop_size', 'lr', 'input']
                        + [k for _, k, _, _ in COLUMNS] + ['seconds'])
        for label, r in zip(labels, results):
            writer.writerow([label, r['config'], r['method'], r['backbone'], r['crop_size'], r['lr'],
                             r.get('input', '')]
                            + [r['metrics'].get(k, '') for _, k, _, _ in COLUMNS] + [r.get('seconds', '')])
    from .figures import results_figure

    chart = work_dir / 'results.png'
    fig = results_figure(results, labels)
    fig.savefig(chart, dpi=110)
    return [md, out, chart]


FOLD_METRICS = (('dice', 'DSC'), ('nsd', 'NSD'))


#: fold_cases.csv columns (dice and nsd as fractions, as the protocol's per-case CSV).
CASE_COLUMNS = ('fold', 'case', 'class', 'dice', 'nsd', 'test_set', 'source', 'empty')


def truth_empty(row: Mapping) -> bool:
    """Whether a per-case row's ground truth of its class is empty (``empty``: both empty or truth empty)."""
    from ..evaluation.surface import BOTH_EMPTY, GT_EMPTY
    return row.get('empty') in (BOTH_EMPTY, GT_EMPTY)


def mean_std(values: Sequence[float]) -> Tuple[float, float, int]:
    """(mean, sample std (ddof 1; 0 for one value), n) of the values that are not NaN (NaN: the protocol's
    undefined case, e.g. a class absent from truth and prediction, left out as the benchmark's pandas mean)."""
    kept = [v for v in values if not math.isnan(v)]
    n = len(kept)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(kept) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def fold_summaries(rows: Sequence[dict], folds: Sequence[object]) -> Dict[Tuple[str, object, str, str, str],
                                                                        Tuple[float, float, int]]:
    """{(source, fold or 'all', test set, class, metric): (mean %, std %, n)} of the per-case rows."""
    groups: Dict[Tuple[str, object, str, str, str], List[float]] = {}
    for r in rows:
        for metric, _ in FOLD_METRICS:
            for fold in (r['fold'], 'all'):
                groups.setdefault((r['source'], fold, r['test_set'], r['class'], metric), []).append(100.0 * r[metric])
    return {key: mean_std(values) for key, values in groups.items()}


def _fmt(value: Optional[Tuple[float, float, int]], bold: bool = False) -> str:
    if value is None or value[2] == 0 or math.isnan(value[0]):
        return '–'
    mean = f'**{value[0]:.1f}**' if bold else f'{value[0]:.1f}'
    return mean if math.isnan(value[1]) else f'{mean} ± {value[1]:.1f}'


def write_fold_tables(name: str, preset: FoldPreset, rows: Sequence[dict], work_dir: Path, protocol: str,
                      folds: Sequence[int], mosmed_run: bool) -> List[Path]:
    """``fold_cases.csv`` (the rows) and ``fold_table.md`` / ``.csv`` / ``.png``: per source, per fold mean ± std
    over its test cases, ``all`` = over every (fold, case) pooled, and the published rows."""
    from ..evaluation.protocols import get_protocol

    work_dir.mkdir(parents=True, exist_ok=True)
    paths = [work_dir / 'fold_cases.csv', work_dir / 'fold_table.md', work_dir / 'fold_table.csv',
             work_dir / 'fold_table.png']
    with open(paths[0], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CASE_COLUMNS)
        for r in rows:
            writer.writerow([r['fold'], r['case'], r['class'], repr(r['dice']), repr(r['nsd']), r['test_set'],
                             r['source'], r.get('empty', '')])
    stats = fold_summaries(rows, folds)
    cols = [(t, c, m, title) for t, c in preset.columns for m, title in FOLD_METRICS]
    head = ['fold'] + [f'{TEST_SETS[t]} {c} {title}' for t, c, _, title in cols]
    md = [f'## {preset.title}' + (f' (`{name}`)' if name else ''), '']
    if preset.note:
        md += [f'Note: {preset.note}', '']
    table_rows = [['source', 'test_set', 'fold', 'class', 'metric', 'mean', 'std', 'n']]
    for experiment in preset.experiments:
        md += [f'### {experiment.name}', '', '| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * len(cols)]
        shown = list(folds) if preset.folds > 1 else []
        for fold in [*shown, 'all']:
            cells = [_fmt(stats.get((experiment.name, fold, t, c, m)), bold=fold == 'all') for t, c, m, _ in cols]
            md.append(f'| {"**all**" if fold == "all" else fold} | ' + ' | '.join(cells) + ' |')
            for t, c, m, title in cols:
                value = stats.get((experiment.name, fold, t, c, m))
                if value is not None:
                    table_rows.append([experiment.name, t, fold, c, title, round(value[0], 4), round(value[1], 4),
                                       value[2]])
        for ref in experiment.references:
            values = PUBLISHED[ref]
            cells = [_fmt((*values[(t, c)][m], 1)) if m in values.get((t, c), {}) else '–' for t, c, m, _ in cols]
            md.append(f'| {ref} (published) | ' + ' | '.join(cells) + ' |')
            for t, c, m, title in cols:
                if m in values.get((t, c), {}):
                    table_rows.append([experiment.name, t, ref, c, title, *values[(t, c)][m], ''])
        counts = sorted({(TEST_SETS[t], stats[(experiment.name, 'all', t, c, 'dice')][2])
                         for t, c in preset.columns if (experiment.name, 'all', t, c, 'dice') in stats})
        md += ['', 'Cases pooled in `all`: ' + (', '.join(f'{t} {n}' for t, n in counts) or 'none') + '.', '']
    for group in comparison_groups(preset):
        if len(group) < 2:
            continue
        md += [f'### Side by side (all folds pooled): {" vs ".join(e.name for e in group)}', '',
               '| model | ' + ' | '.join(head[1:]) + ' |', '|---|' + '---:|' * len(cols)]
        for experiment in group:
            cells = [_fmt(stats.get((experiment.name, 'all', t, c, m))) for t, c, m, _ in cols]
            md.append(f'| {experiment.name} | ' + ' | '.join(cells) + ' |')
        for ref in group[0].references:
            values = PUBLISHED[ref]
            cells = [_fmt((*values[(t, c)][m], 1)) if m in values.get((t, c), {}) else '–' for t, c, m, _ in cols]
            md.append(f'| {ref} (published) | ' + ' | '.join(cells) + ' |')
        md.append('')
    rule = get_protocol(protocol)
    avg = ", as the benchmark's Avg rows" if preset.test_set == 'covid19' else ''
    md += [f'Scores: protocol `{protocol}` ({rule.title}; source: {rule.source}); per case in 3D on the source grid, '
           f'DSC and NSD in %. Per fold: mean ± sample std over its test cases; **all**: mean ± sample std over every '
           f'(fold, case) pooled{avg} ({rule.aggregation_rule}). Folds run: '
           f'{", ".join(map(str, folds)) if preset.folds > 1 else "the one official split"}. Published: '
           f'{preset.published_note}.'
           + (' Cases whose ground truth of the class is empty (patients without hemorrhage) are left out.'
              if preset.exclude_empty_truth else '')
           + ('' if mosmed_run or not any(t == 'mosmed' for t, _ in preset.columns)
              else ' MosMed: not run (pass --mosmed DIR, a prepared MosMed).'), '']
    paths[1].write_text('\n'.join(md))
    with open(paths[2], 'w', newline='') as f:
        csv.writer(f).writerows(table_rows)
    from .figures import _plot_fold_table

    _plot_fold_table(preset, stats, cols, paths[3])
    return paths
