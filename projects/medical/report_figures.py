"""The pictures of the test report (:mod:`mmseg_medical.report`): metric distributions and slice overlays.

Every function returns PNG bytes (matplotlib, Agg backend), so the report embeds them as ``data:`` URIs.
Overlays show the slice in grey, the ground truth filled and outlined in :data:`TRUTH_COLOUR` and the
prediction outlined in :data:`PREDICTION_COLOUR`, with a legend naming both.
"""
from __future__ import annotations

import io
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: (name, matplotlib colour) of the two overlays; the names are also printed in the page's captions.
TRUTH_COLOUR = ('green', '#00c853')
PREDICTION_COLOUR = ('magenta', '#ff00ff')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def axis_label(metric: str, unit: str) -> str:
    """``Dice (fraction, 0-1)``, ``HD95 (mm)``: the y-axis title of a metric with its unit."""
    from .evaluation.protocols import METRIC_KEYS

    name = METRIC_KEYS.get(metric, metric)
    return f'{name} (fraction, 0–1)' if unit == 'fraction' else f'{name} ({unit})'


def distribution_plot(values: Mapping[str, Mapping[str, Sequence[float]]], units: Mapping[str, str],
                      seed: int = 0) -> bytes:
    """One panel per metric, one box (quartiles, whiskers at 1.5 IQR) per class with every case drawn as a
    jittered point over it. ``values[metric][class name]`` are the case values; NaN and infinite values are
    left out (the x label counts them); fractions are drawn on a fixed 0-1 axis."""
    plt = _pyplot()
    metrics = list(values)
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.2 + 2.2 * len(metrics), 3.4), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, metric in zip(axes[0], metrics):
        classes = list(values[metric])
        kept, labels = [], []
        for name in classes:
            column = np.asarray(values[metric][name], dtype=float)
            finite = column[np.isfinite(column)]
            kept.append(finite)
            missing = len(column) - len(finite)
            labels.append(f'{name}\nn={len(finite)}' + (f'\n+{missing} NaN/inf' if missing else ''))
        positions = np.arange(1, len(classes) + 1)
        drawn = [k if len(k) else np.array([np.nan]) for k in kept]
        ax.boxplot(drawn, positions=positions, widths=0.5, showfliers=False,
                   medianprops=dict(color='#d62728'), boxprops=dict(color='#444444'))
        for pos, column in zip(positions, kept):
            ax.scatter(pos + rng.uniform(-0.15, 0.15, len(column)), column, s=14, alpha=0.75, color='#1f77b4',
                       zorder=3)
        ax.set_xticks(positions, labels, fontsize=8)
        ax.set_ylabel(axis_label(metric, units[metric]))
        if units[metric] == 'fraction':
            ax.set_ylim(-0.03, 1.03)
        else:
            top = max((float(k.max()) for k in kept if len(k)), default=1.0)
            ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
        ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _grey(image: np.ndarray) -> np.ndarray:
    """A prepared slice as one grey plane (3-channel slices, e.g. several windows: the first channel)."""
    return image if image.ndim == 2 else image[..., 0]


def _draw(ax, image: np.ndarray, truth: np.ndarray, pred: np.ndarray, classes: Sequence[int], title: str) -> None:
    grey = _grey(image)
    # the stored grey levels as they are (8/16-bit PNG), not stretched per slice
    limits = dict(vmin=0, vmax=int(np.iinfo(grey.dtype).max)) if grey.dtype.kind == 'u' else {}
    ax.imshow(grey, cmap='gray', interpolation='nearest', **limits)
    rgba = np.zeros(truth.shape + (4,), np.float32)
    fill = np.isin(truth, classes)
    rgba[fill] = (0.0, 0.78, 0.33, 0.35)
    ax.imshow(rgba, interpolation='nearest')
    for c in classes:
        for mask, colour, width in ((truth == c, TRUTH_COLOUR[1], 1.2), (pred == c, PREDICTION_COLOUR[1], 1.6)):
            if mask.any() and not mask.all():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=width)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(fig) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=TRUTH_COLOUR[1], edgecolor=TRUTH_COLOUR[1], alpha=0.6,
                     label=f'ground truth ({TRUTH_COLOUR[0]})'),
               Line2D([0], [0], color=PREDICTION_COLOUR[1], lw=2, label=f'prediction ({PREDICTION_COLOUR[0]})')]
    fig.legend(handles=handles, loc='lower center', ncol=2, fontsize=8, frameon=False)


def overlay_panels(panels: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray, str]], classes: Sequence[int],
                   title: Optional[str] = None, columns: int = 3) -> bytes:
    """Slices side by side (``columns`` per row): each ``(image, truth, prediction, title)``."""
    plt = _pyplot()
    rows = max(1, -(-len(panels) // columns))
    cols = min(columns, max(1, len(panels)))
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6, 2.7 * cols), 2.7 * rows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, (image, truth, pred, text) in zip(axes.flat, panels):
        ax.axis('on')
        _draw(ax, image, truth, pred, classes, text)
    if title:
        fig.suptitle(title, fontsize=9)
    _legend(fig)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _png(fig)


def slices_through(truth: np.ndarray, pred: np.ndarray, classes: Sequence[int], count: int = 3) -> List[int]:
    """Up to ``count`` slice indices spread through the structure (slices where truth or prediction has a
    scored class: at their quartiles), else through the whole volume."""
    present = np.flatnonzero((np.isin(truth, classes) | np.isin(pred, classes)).reshape(len(truth), -1).any(axis=1))
    pool = present if len(present) else np.arange(len(truth))
    if len(pool) <= count:
        return [int(i) for i in pool]
    picks = np.linspace(0, len(pool) - 1, count + 2)[1:-1]
    return sorted({int(pool[int(round(p))]) for p in picks})


def disagreement(truth: np.ndarray, pred: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Pixels per slice where prediction and truth differ on a scored class (``(Z,)`` ints)."""
    scored_t, scored_p = np.isin(truth, classes), np.isin(pred, classes)
    differ = (truth != pred) & (scored_t | scored_p)
    return differ.reshape(len(truth), -1).sum(axis=1)


