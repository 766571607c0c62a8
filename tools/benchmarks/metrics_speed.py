"""Speed and values of the per-case metrics, side by side with whole-volume and peer implementations.

Builds a 512x512x120 label pair at spacing 0.41x0.41x1.5 mm with one tumour-sized structure (an
ellipsoid of about 2 cm; the prediction is a shifted, slightly larger, bumpy version) and times, in one
run on that pair:

* ours: ``case_metrics`` (Dice, IoU, NSD, HD95, ASSD; surfaces and distance transforms in the union
  bounding box plus a one-voxel margin);
* straightforward: the same surfel definitions written here with neighbour codes and Euclidean distance
  transforms over the *whole* 512x512x120 volume (no cropping). Its values must equal ours (checked);
  ``ratio_vs_whole_volume`` = its time / ours is the speed-up of cropping alone;
* DeepMind ``surface-distance`` 0.1 (``compute_surface_distances`` + NSD, robust Hausdorff 95, average
  surface distances; it crops to the union bounding box too): same definitions, values must agree;
* MONAI ``compute_surface_dice``, ``compute_hausdorff_distance(percentile=95)`` and
  ``compute_average_surface_distance(symmetric=True)``: MONAI measures between boundary *voxels*
  (unweighted), not area-weighted surfels at voxel corners, so its values differ slightly by definition.

Then the ``crossmoda`` protocol (medpy 0.5.2's Dice and ASSD as the challenge's ``scores.py`` calls them,
computed in the union bounding box) against medpy 0.5.2 itself on the whole volume: values must be equal
(checked), ``ratio_medpy_vs_crossmoda`` = medpy's time / ours.

The peers are optional (``make bench`` / ``pip install -r requirements/bench.txt``); a missing one is
reported and skipped. surface-distance 0.1 needs ``np.Inf`` / ``np.NaN``, which NumPy 2 removed: this
script restores the aliases before importing it. Each line gives a median time and ``time / ours``.

Usage: python tools/benchmarks/metrics_speed.py [--repeats 5] [--naive-repeats 2] [--peer-repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
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


def deepmind_metrics(sd, gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                     tolerance: float) -> Dict[str, float]:
    """Dice, NSD, HD95 and ASSD with DeepMind's surface-distance (ASSD: area-weighted over both sets)."""
    dists = sd.compute_surface_distances(gt, pred, spacing)
    a_gt, a_pred = dists['surfel_areas_gt'], dists['surfel_areas_pred']
    assd = ((dists['distances_gt_to_pred'] * a_gt).sum() + (dists['distances_pred_to_gt'] * a_pred).sum()) \
        / (a_gt.sum() + a_pred.sum())
    return {'dice': float(sd.compute_dice_coefficient(gt, pred)),
            'nsd': float(sd.compute_surface_dice_at_tolerance(dists, tolerance)),
            'hd95': float(sd.compute_robust_hausdorff(dists, 95)), 'assd': float(assd)}


def one_hot(torch, mask: np.ndarray):
    """MONAI's input layout: a (1, 2, *shape) tensor (background, class); built outside the timing."""
    return torch.from_numpy(np.stack([~mask, mask])[None])


def monai_metrics(metrics, y, y_pred, spacing: Sequence[float], tolerance: float) -> Dict[str, float]:
    """MONAI's NSD, HD95 and symmetric ASD on one-hot tensors, background excluded."""
    spacing = list(spacing)
    with warnings.catch_warnings():  # MONAI 1.6 warns about its own deprecated get_mask_edges argument
        warnings.simplefilter('ignore', FutureWarning)
        return _monai_metrics(metrics, y, y_pred, spacing, tolerance)


def _monai_metrics(metrics, y, y_pred, spacing: list, tolerance: float) -> Dict[str, float]:
    return {'nsd': float(metrics.compute_surface_dice(y_pred, y, [tolerance], spacing=spacing)),
            'hd95': float(metrics.compute_hausdorff_distance(y_pred, y, percentile=95, spacing=spacing)),
            'assd': float(metrics.compute_average_surface_distance(y_pred, y, symmetric=True, spacing=spacing))}


def load_peers() -> Dict[str, object]:
    """The installed peers: ``{'surface-distance': module, 'monai': (monai.metrics, torch)}``."""
    peers: Dict[str, object] = {}
    try:
        np.Inf, np.NaN = np.inf, np.nan  # surface-distance 0.1 uses the aliases NumPy 2 removed
        import surface_distance
        peers['surface-distance'] = surface_distance
    except ImportError as exc:
        print(f'surface-distance not installed ({exc}); skipped. Install: pip install -r requirements/bench.txt')
    try:
        import medpy.metric.binary
        peers['medpy'] = medpy.metric.binary
    except ImportError as exc:
        print(f'medpy not installed ({exc}); skipped. Install: pip install -r requirements/bench.txt')
    try:
        import monai.metrics
        import torch
        peers['monai'] = (monai.metrics, torch)
    except ImportError as exc:
        print(f'MONAI not installed ({exc}); skipped. Install: pip install -r requirements/bench.txt')
    return peers


def _values(result: Dict[str, float]) -> str:
    return ', '.join(f'{name}={result[name]:.4f}' for name in ('dice', 'iou', 'nsd', 'hd95', 'assd') if name in result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5, help='timed runs of our implementation')
    parser.add_argument('--naive-repeats', type=int, default=2, help='timed runs of the straightforward one')
    parser.add_argument('--peer-repeats', type=int, default=3, help='timed runs of each peer library')
    args = parser.parse_args()
    peers = load_peers()

    gt, pred = make_pair()
    print(f'volume {SHAPE} at spacing {SPACING} mm; structure: {int(gt.sum())} GT voxels, '
          f'{int(pred.sum())} predicted voxels; NSD tolerance {TOLERANCE_MM} mm')
    ours_t, ours = timed(lambda: case_metrics(gt, pred, SPACING, [1], TOLERANCE_MM)[0], args.repeats)
    naive_t, naive = timed(lambda: naive_case_metrics(gt, pred, SPACING, 1, TOLERANCE_MM), args.naive_repeats)
    for name in ('dice', 'iou', 'nsd', 'hd95', 'assd'):
        np.testing.assert_allclose(ours[name], naive[name], rtol=1e-9, atol=1e-12, err_msg=name)
    lines = [('ours (case_metrics, union bbox crop)', ours_t, args.repeats, ours, 'all 5 metrics'),
             ('straightforward (whole volume, same definitions)', naive_t, args.naive_repeats, naive,
              'equal to ours (checked)')]
    if 'surface-distance' in peers:
        gt_b, pred_b = gt == 1, pred == 1
        dm_t, dm = timed(lambda: deepmind_metrics(peers['surface-distance'], gt_b, pred_b, SPACING, TOLERANCE_MM),
                         args.peer_repeats)
        for name in dm:
            np.testing.assert_allclose(ours[name], dm[name], rtol=1e-9, atol=1e-12, err_msg=f'surface-distance {name}')
        lines.append(('DeepMind surface-distance 0.1', dm_t, args.peer_repeats, dm, 'equal to ours (checked)'))
    if 'monai' in peers:
        metrics, torch = peers['monai']
        y, y_pred = one_hot(torch, gt == 1), one_hot(torch, pred == 1)
        mo_t, mo = timed(lambda: monai_metrics(metrics, y, y_pred, SPACING, TOLERANCE_MM), args.peer_repeats)
        import monai
        lines.append((f'MONAI {monai.__version__} (NSD, HD95, symmetric ASD)', mo_t, args.peer_repeats, mo,
                      'boundary-voxel definitions, not surfels'))
    print(f'{"implementation":52s} {"median":>10s} {"time/ours":>10s}  values')
    for label, t, n, values, note in lines:
        print(f'{label:52s} {t * 1000:8.1f} ms {t / ours_t:9.2f}x  {_values(values)}  [{note}; median of {n}]')
    print(f'ratio_vs_whole_volume={naive_t / ours_t:.2f}')
    for label, t, *_ in lines[2:]:
        print(f'ratio_{label.split()[0].lower()}_vs_ours={t / ours_t:.2f}')
    if 'medpy' in peers:
        crossmoda_protocol(peers['medpy'], gt, pred, args)


def crossmoda_protocol(medpy, gt: np.ndarray, pred: np.ndarray, args: argparse.Namespace) -> None:
    """The crossmoda protocol (bbox crop) against medpy 0.5.2's dc + assd on the whole volume, as scores.py."""
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])       # L,P,S like the real labels
    spacing = [abs(affine[k, k]) for k in range(3)]
    ours_t, ours = timed(lambda: case_metrics(gt, pred, SPACING, [1], protocol='crossmoda', affine=affine)[0],
                         args.repeats)
    ref_t, ref = timed(lambda: {'dice': medpy.dc(pred == 1, gt == 1),
                                'assd': medpy.assd(pred == 1, gt == 1, voxelspacing=spacing)}, args.peer_repeats)
    for name in ('dice', 'assd'):
        assert ours[name] == ref[name], (name, ours[name], ref[name])
    print(f'\ncrossmoda protocol (Dice, ASSD as scores.py):')
    print(f'{"ours (protocol crossmoda, union bbox crop)":52s} {ours_t * 1000:8.1f} ms {1.0:9.2f}x  {_values(ours)}'
          f'  [median of {args.repeats}]')
    print(f'{"medpy 0.5.2 dc + assd (whole volume)":52s} {ref_t * 1000:8.1f} ms {ref_t / ours_t:9.2f}x  '
          f'{_values(ref)}  [equal to ours, bit for bit (checked); median of {args.peer_repeats}]')
    print(f'ratio_medpy_vs_crossmoda={ref_t / ours_t:.2f}')


if __name__ == '__main__':
    main()
