"""Speed of the per-case metrics against a straightforward whole-volume implementation.

Builds a 512x512x120 label pair at spacing 0.41x0.41x1.5 mm with one tumour-sized structure (an
ellipsoid of about 2 cm; the prediction is a shifted, slightly larger, bumpy version), times
``case_metrics`` (surfaces and distance transforms in the union bounding box) against a straightforward
implementation written here (same surfel definitions, but neighbour codes and distance transforms over
the whole volume), checks that both give the same values, and prints the times. The last line is
``ratio=X.XX`` = straightforward time / our time.

Usage: python tools/benchmarks/metrics_speed.py [--repeats 5] [--naive-repeats 2]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
from scipy import ndimage

from mmseg_medical.evaluation import case_metrics, contour_length_table, surface_area_table

SHAPE = (512, 512, 120)
SPACING = (0.41, 0.41, 1.5)
TOLERANCE_MM = 2.0
KERNEL_3D = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
KERNEL_2D = np.array([[8, 4], [2, 1]])


def make_pair(seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Ground truth: ellipsoid with semi-axes 10x9x8 mm; prediction: shifted, larger, bumpy surface."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    centre = np.array([300.0, 220.0, 64.0])
    window = tuple(slice(int(c - 40), int(c + 40)) for c in centre)
    grid = np.stack(np.meshgrid(*[np.arange(w.start, w.stop) for w in window], indexing='ij'))
    mm = (grid - centre[:, None, None, None]) * np.array(SPACING)[:, None, None, None]
    semi = np.array([10.0, 9.0, 8.0])[:, None, None, None]
    gt[window] = ((mm / semi) ** 2).sum(axis=0) <= 1.0
    shift = np.array([1.2, -0.8, 1.5])[:, None, None, None]  # mm
    bumps = ndimage.gaussian_filter(rng.standard_normal(grid.shape[1:]), 4.0)
    bumps *= 0.15 / bumps.std()
    pred[window] = (((mm - shift) / (semi * 1.08)) ** 2).sum(axis=0) + bumps <= 1.0
    return gt, pred


def naive_case_metrics(gt_labels: np.ndarray, pred_labels: np.ndarray, spacing: Sequence[float], cls: int,
                       tolerance: float) -> Dict[str, float]:
    """Straightforward reference: DeepMind's definitions evaluated on the whole volume, no cropping."""
    gt, pred = gt_labels == cls, pred_labels == cls
    n_gt, n_pred, n_both = gt.sum(), pred.sum(), (gt & pred).sum()
    if gt.ndim == 3:
        kernel, table, full = KERNEL_3D, surface_area_table(spacing), 255
    else:
        kernel, table, full = KERNEL_2D, contour_length_table(spacing), 15
    codes, borders = [], []
    for mask in (gt, pred):
        padded = np.pad(mask.astype(np.uint8), [(0, 1)] * mask.ndim)
        code = ndimage.correlate(padded, kernel, mode='constant', cval=0)
        codes.append(code)
        borders.append((code != 0) & (code != full))
    dist_to_gt = ndimage.distance_transform_edt(~borders[0], sampling=spacing)
    dist_to_pred = ndimage.distance_transform_edt(~borders[1], sampling=spacing)
    d_gt, a_gt = dist_to_pred[borders[0]], table[codes[0][borders[0]]]
    d_pred, a_pred = dist_to_gt[borders[1]], table[codes[1][borders[1]]]

    def percentile95(d: np.ndarray, a: np.ndarray) -> float:
        order = np.lexsort((a, d))
        d, a = d[order], a[order]
        idx = np.searchsorted(np.cumsum(a) / a.sum(), 0.95)
        return float(d[min(idx, len(d) - 1)])

    return {'dice': 2 * n_both / (n_gt + n_pred), 'iou': n_both / (n_gt + n_pred - n_both),
            'nsd': float((a_gt[d_gt <= tolerance].sum() + a_pred[d_pred <= tolerance].sum())
                         / (a_gt.sum() + a_pred.sum())),
            'hd95': max(percentile95(d_gt, a_gt), percentile95(d_pred, a_pred)),
            'assd': float(((d_gt * a_gt).sum() + (d_pred * a_pred).sum()) / (a_gt.sum() + a_pred.sum()))}


def timed(fn: Callable[[], object], repeats: int) -> Tuple[float, object]:
    """Median wall time of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5, help='timed runs of our implementation')
    parser.add_argument('--naive-repeats', type=int, default=2, help='timed runs of the straightforward one')
    args = parser.parse_args()

    gt, pred = make_pair()
    print(f'volume {SHAPE} at spacing {SPACING} mm; structure: {int(gt.sum())} GT voxels, '
          f'{int(pred.sum())} predicted voxels; NSD tolerance {TOLERANCE_MM} mm')
    ours_t, ours = timed(lambda: case_metrics(gt, pred, SPACING, [1], TOLERANCE_MM)[0], args.repeats)
    naive_t, naive = timed(lambda: naive_case_metrics(gt, pred, SPACING, 1, TOLERANCE_MM), args.naive_repeats)
    for name in ('dice', 'iou', 'nsd', 'hd95', 'assd'):
        np.testing.assert_allclose(ours[name], naive[name], rtol=1e-9, atol=1e-12, err_msg=name)
    print('values (ours == straightforward): '
          + ', '.join(f'{name}={ours[name]:.4f}' for name in ('dice', 'iou', 'nsd', 'hd95', 'assd')))
    print(f'ours (union bbox crop):          {ours_t * 1000:9.1f} ms  (median of {args.repeats})')
    print(f'straightforward (whole volume):  {naive_t * 1000:9.1f} ms  (median of {args.naive_repeats})')
    print(f'ratio={naive_t / ours_t:.2f}')


if __name__ == '__main__':
    main()
