"""The pictures of the test report (:mod:`mmseg_medical.report`): metric distributions and slice overlays.

Both return PNG bytes (matplotlib, Agg backend), so the report embeds them as ``data:`` URIs. Overlays show
each slice three times, plain, with the ground truth and with the prediction, every class tinted and outlined
in the dataset's colour and named in a legend: a model that calls both lungs ``left_lung`` shows one colour where
the truth shows two.
"""
from __future__ import annotations

import io
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

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
    """A prepared slice as one 8-bit grey plane (3-channel slices, e.g. several windows: the first channel;
    16-bit slices: the stored grey levels scaled to 8 bits, not stretched per slice)."""
    grey = image if image.ndim == 2 else image[..., 0]
    if grey.dtype == np.uint8:
        return grey
    top = float(np.iinfo(grey.dtype).max) if grey.dtype.kind in 'ui' else max(float(grey.max()), 1.0)
    return np.clip(np.rint(grey.astype(np.float64) * 255.0 / top), 0, 255).astype(np.uint8)


def overlay_figures(panels: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray, str]], classes: Sequence[int],
                    names: Sequence[str], palette: Optional[Sequence[Sequence[int]]], min_width: int = 160) -> list:
    """One matplotlib figure per ``(image, truth, prediction, title)``: the slice, the ground truth and the
    prediction side by side, each scored class (``classes``) tinted and outlined in its dataset colour
    (``palette[c]``, RGB, as the mmseg dataset's ``METAINFO``) and named in a legend under the last row
    (:func:`mmseg_medical.visualization.preview_figure`). Unscored labels are not drawn."""
    from .visualization import preview_figure

    figures = []
    for i, (image, truth, pred, title) in enumerate(panels):
        masks = [('ground truth', np.where(np.isin(truth, classes), truth, 0)),
                 ('prediction', np.where(np.isin(pred, classes), pred, 0))]
        figures.append(preview_figure(_grey(image), masks, list(names), palette, min_width=min_width,
                                      image_title=title, legend=i == len(panels) - 1))
    return figures


def overlay_panels(panels: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray, str]], classes: Sequence[int],
                   names: Sequence[str], palette: Optional[Sequence[Sequence[int]]] = None) -> bytes:
    """:func:`overlay_figures` stacked into one PNG, one row per slice (narrower rows padded white)."""
    import cv2

    from .visualization import render

    rows = [render(fig) for fig in overlay_figures(panels, classes, names, palette)]
    width = max(r.shape[1] for r in rows)
    gap = np.full((4, width, 3), 255, np.uint8)
    stacked = []
    for row in rows:
        pad = np.full((row.shape[0], width - row.shape[1], 3), 255, np.uint8)
        stacked += [np.concatenate([row, pad], axis=1), gap]
    ok, data = cv2.imencode('.png', cv2.cvtColor(np.concatenate(stacked[:-1]), cv2.COLOR_RGB2BGR))
    return data.tobytes()


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


