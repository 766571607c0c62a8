"""The benchmark's charts: one bar per run per metric (``results.png``) and the fold table's chart
(``fold_table.png``), as matplotlib figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from .labels import run_labels
from .presets import FoldPreset, comparison_groups
from .published import PUBLISHED, TEST_SETS
from .tables import COLUMNS


#: Colours of the runs, in order (matplotlib's tab10, then tab20's light shades).
RUN_COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
               '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7')


def axis_title(title: str, unit: str, top: Optional[float] = None) -> str:
    """``vol. Dice (%, 0–100)``, ``vol. HD95 (mm, 0–12.5)``: a chart axis with the metric, unit and range."""
    return f'{title} ({unit}, 0–{100 if unit == "%" else f"{top:.3g}"})'


def results_figure(results: Sequence[dict], labels: Optional[Sequence[str]] = None):
    """The comparison chart as a matplotlib ``Figure``: one panel per metric of :data:`COLUMNS` that any run has,
    one bar per run at its own x position (its label under it, its colour in the legend), the value on the
    bar, the y axis named with the metric, its unit and range (% on 0–100, mm from 0)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    labels = list(labels) if labels is not None else run_labels([r['config'] for r in results])
    shown = [c for c in COLUMNS if any(r['metrics'].get(c[1]) is not None for r in results)]
    cells = len(shown) + 1  # the last cell holds the legend
    ncols = min(3, cells)
    nrows = -(-cells // ncols)
    n = len(results)
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(n)]
    rotate = n > 2 or max(len(label) for label in labels) > 12
    panel_w = max(2.6, 0.9 + 0.55 * n)
    fig = Figure(figsize=(panel_w * ncols, (3.4 if rotate else 2.9) * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    x = list(range(n))
    for ax, (title, key, digits, unit) in zip(axes, shown):
        values = [r['metrics'].get(key) for r in results]
        present = [v for v in values if v is not None]
        top = 100.0 if unit == '%' else (max(present) * 1.2 if max(present) > 0 else 1.0)
        top = max(top, max(present))
        for i, v in enumerate(values):
            if v is None:
                ax.text(i, 0.02 * top, 'n/a', ha='center', va='bottom', fontsize=7, color='#555555')
                continue
            ax.bar(i, v, 0.7, color=colours[i])
            inside = v > 0.85 * top
            ax.text(i, v - 0.02 * top if inside else v + 0.02 * top, f'{v:.{digits}f}', ha='center',
                    va='top' if inside else 'bottom', fontsize=7, color='white' if inside else 'black')
        ax.set_ylim(0, top)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylabel(axis_title(title, unit, top), fontsize=8)
        ax.set_title(title + (' (lower is better)' if unit == 'mm' else ' (higher is better)'), fontsize=9)
        ax.set_xticks(x, labels, fontsize=7, rotation=30 if rotate else 0, ha='right' if rotate else 'center')
        ax.tick_params(axis='y', labelsize=7)
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(shown):]:
        ax.axis('off')
    axes[len(shown)].legend(handles=[Patch(color=c, label=label) for c, label in zip(colours, labels)],
                            title='run', loc='center', fontsize=8, title_fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def fold_figure(preset: FoldPreset, stats: dict, cols: list):
    """The fold table's chart as a matplotlib ``Figure``: one panel per :func:`comparison_groups` group, per
    column (test set, class, metric) one bar for each of its experiments (``all`` row: mean over every (fold,
    case), error bar = sample std) and each published row, side by side at their own x offsets; y axis in %
    on 0–100; a legend naming every bar."""
    from matplotlib.figure import Figure
    import numpy as np

    groups = comparison_groups(preset)
    fig = Figure(figsize=(3.0 + 1.25 * len(cols), 3.2 * len(groups)))
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    x = np.arange(len(cols))
    for ax, group in zip(axes, groups):
        bars = [(f'{e.name} (this run, all)' if len(group) > 1 else 'this run (all)',
                 [stats.get((e.name, 'all', t, c, m)) for t, c, m, _ in cols]) for e in group]
        bars += [(f'{ref} (published)', [(*PUBLISHED[ref][(t, c)][m], 1) if m in PUBLISHED[ref].get((t, c), {}) else None
                                         for t, c, m, _ in cols]) for ref in group[0].references]
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars):
            keep = [j for j, v in enumerate(values) if v and v[2] and not math.isnan(v[0])]
            ax.bar(x[keep] + (i - (len(bars) - 1) / 2) * width, [values[j][0] for j in keep], width,
                   yerr=[0.0 if math.isnan(values[j][1]) else values[j][1] for j in keep], capsize=2,
                   color=RUN_COLOURS[i % len(RUN_COLOURS)], label=label)
        ax.set_xticks(x, [f'{TEST_SETS[t]}\n{c} {title}' for t, c, _, title in cols], fontsize=7)
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(0, 100)
        ax.set_ylabel('DSC / NSD (%, 0–100)', fontsize=8)
        ax.set_title(' vs '.join(e.name for e in group), fontsize=9)
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _plot_fold_table(preset: FoldPreset, stats: dict, cols: list, path: Path) -> None:
    fold_figure(preset, stats, cols).savefig(path, dpi=110)
