"""Reference values from DeepMind's ``surface-distance`` for a few fixed label-map pairs (run once, stored).

Builds five deterministic pairs (seeded; see :func:`make_pairs`): anisotropic spacing with two
structures, empty-vs-non-empty classes, a 2-voxel object, structures that touch the array border and lie
far apart (the union bounding box and its zero margin matter), and a 2D pair. For every pair and class it
computes with ``surface_distance`` 0.1: ``compute_dice_coefficient``, ``compute_surface_distances`` (surfel
counts, total areas, area-weighted distance sums), ``compute_surface_dice_at_tolerance`` at several
tolerances, ``compute_robust_hausdorff`` at 95 and 100, ``compute_average_surface_distance`` and the
README's ASSD ``(sum_gt d*a + sum_pred d*a) / (sum_gt a + sum_pred a)`` from the same arrays.

The label maps themselves are stored (zlib + base64 of uint8 bytes, with a sha256), so
``tests/evaluation/test_surface_reference.py`` scores exactly these arrays with this project's functions
without ``surface-distance`` installed. Non-finite values are stored as the strings ``"inf"`` / ``"nan"``.

surface-distance 0.1 uses ``np.Inf`` and ``np.NaN``, removed in NumPy 2: this script restores both aliases before
importing it (here only; the project never imports surface-distance).

Usage: python tools/benchmarks/surface_distance_reference.py [--out PATH]
(default: tests/evaluation/data/surface_distance_reference.json)
"""
from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import importlib.metadata
import json
import platform
import sys
import zlib
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / 'tests' / 'evaluation' / 'data' / 'surface_distance_reference.json'
TOLERANCES_MM = (0.5, 1.0, 2.0, 3.0, 5.0)  # 1 mm and 3 mm: the COVID-19-CT-Seg benchmark (lungs, lesion)


def _ellipsoid(shape, centre, semi_mm, spacing) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum((((grid[i] - centre[i]) * spacing[i]) / semi_mm[i]) ** 2 for i in range(len(shape))) <= 1.0


def make_pairs() -> List[dict]:
    """The fixed pairs: ``name``, ``spacing`` (per array axis, mm), ``classes``, ``gt``, ``pred`` (uint8)."""
    pairs = []

    # 1. Anisotropic spacing, two structures; noisy prediction (holes give interior surfaces).
    rng = np.random.default_rng(11)
    shape, spacing = (26, 30, 16), (0.7, 0.45, 2.5)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[_ellipsoid(shape, (9, 10, 7), (4.0, 3.5, 9.0), spacing)] = 1
    gt[14:22, 16:27, 3:11] = 2
    near = _ellipsoid(shape, (9.6, 9.2, 7.4), (4.3, 3.2, 8.5), spacing)
    pred[near & (rng.random(shape) > 0.05)] = 1
    box = np.zeros(shape, bool)
    box[15:23, 17:26, 4:12] = True
    pred[box & (rng.random(shape) > 0.1)] = 2
    pairs.append(dict(name='anisotropic_two_structures', spacing=spacing, classes=[1, 2], gt=gt, pred=pred))

    # 2. Empty vs non-empty: class 1 only in the ground truth, class 2 only in the prediction, 3 in neither.
    shape, spacing = (20, 18, 10), (0.9, 0.9, 3.0)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[4:9, 5:11, 2:6] = 1
    pred[12:15, 3:7, 4:8] = 2
    pairs.append(dict(name='empty_vs_nonempty', spacing=spacing, classes=[1, 2, 3], gt=gt, pred=pred))

    # 3. A 2-voxel object against a 2-voxel object one voxel off; class 2 identical 2-voxel objects.
    shape, spacing = (12, 12, 8), (0.5, 0.8, 2.0)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[5, 5, 3:5] = 1
    pred[5, 6, 3] = pred[6, 6, 3] = 1
    gt[2, 2:4, 2] = pred[2, 2:4, 2] = 2
    pairs.append(dict(name='two_voxel_object', spacing=spacing, classes=[1, 2], gt=gt, pred=pred))

    # 4. Cropping matters: structures touching the low and high array borders, a far false-positive blob, and
    #    ground-truth and prediction boxes that differ (a crop to either mask alone would be wrong).
    rng = np.random.default_rng(23)
    shape, spacing = (40, 36, 20), (0.6, 0.6, 1.8)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[0:10, 0:12, 0:6] = 1
    pred[2:12, 1:12, 0:7] = 1
    pred[35:40, 30:36, 15:20] = 1
    gt[20:30, 24:36, 8:20] = 2
    pred[(rng.random(shape) > 0.3) & (np.indices(shape)[0] >= 21) & (np.indices(shape)[1] >= 23)
         & (np.indices(shape)[2] >= 9) & (np.indices(shape)[0] < 31)] = 2
    pairs.append(dict(name='border_and_far_blob', spacing=spacing, classes=[1, 2], gt=gt, pred=pred))

    # 5. 2D: a disc against a shifted, noisy disc, anisotropic pixels.
    rng = np.random.default_rng(5)
    shape, spacing = (30, 26), (0.8, 1.3)
    gt = _ellipsoid(shape, (14, 12), (8.0, 9.0), spacing).astype(np.uint8)
    pred = (_ellipsoid(shape, (15.5, 12.5), (8.5, 8.0), spacing) & (rng.random(shape) > 0.08)).astype(np.uint8)
    pairs.append(dict(name='disc_2d', spacing=spacing, classes=[1], gt=gt, pred=pred))
    return pairs


def encode(labels: np.ndarray) -> dict:
    """A uint8 label map as JSON: shape, sha256 of its C-order bytes, zlib + base64 data."""
    data = np.ascontiguousarray(labels, dtype=np.uint8).tobytes()
    return {'shape': list(labels.shape), 'sha256': hashlib.sha256(data).hexdigest(),
            'zlib_base64': base64.b64encode(zlib.compress(data, 9)).decode('ascii')}


def _num(value) -> object:
    """A float for JSON; non-finite values as the strings 'inf' / '-inf' / 'nan'."""
    value = float(value)
    return value if np.isfinite(value) else str(value)


def reference(gt: np.ndarray, pred: np.ndarray, spacing, sd) -> Dict[str, object]:
    """surface-distance's values for one class (boolean masks)."""
    dists = sd.compute_surface_distances(gt, pred, spacing)
    d_gt, d_pred = dists['distances_gt_to_pred'], dists['distances_pred_to_gt']
    a_gt, a_pred = dists['surfel_areas_gt'], dists['surfel_areas_pred']
    with np.errstate(invalid='ignore', divide='ignore'):
        dice = sd.compute_dice_coefficient(gt, pred)
        asd_gt, asd_pred = sd.compute_average_surface_distance(dists)
        assd = (np.sum(d_gt * a_gt) + np.sum(d_pred * a_pred)) / (np.sum(a_gt) + np.sum(a_pred))
        nsd = {f'{t:g}': _num(sd.compute_surface_dice_at_tolerance(dists, t)) for t in TOLERANCES_MM}
    return {'n_gt_voxels': int(gt.sum()), 'n_pred_voxels': int(pred.sum()), 'n_both_voxels': int((gt & pred).sum()),
            'dice': _num(dice), 'iou': _num(dice / (2.0 - dice)) if np.isfinite(dice) else 'nan',
            'n_surfels_gt': int(a_gt.size), 'n_surfels_pred': int(a_pred.size),
            'area_gt': _num(np.sum(a_gt)), 'area_pred': _num(np.sum(a_pred)),
            'n_inf_gt_to_pred': int(np.isinf(d_gt).sum()), 'n_inf_pred_to_gt': int(np.isinf(d_pred).sum()),
            'nsd': nsd, 'hd95': _num(sd.compute_robust_hausdorff(dists, 95)),
            'hd100': _num(sd.compute_robust_hausdorff(dists, 100)),
            'asd_gt_to_pred': _num(asd_gt), 'asd_pred_to_gt': _num(asd_pred), 'assd': _num(assd)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    np.Inf, np.NaN = np.inf, np.nan  # surface-distance 0.1 uses the aliases NumPy 2 removed
    import scipy
    import surface_distance as sd

    cases = []
    for pair in make_pairs():
        gt, pred = pair['gt'], pair['pred']
        classes = {str(c): reference(gt == c, pred == c, pair['spacing'], sd) for c in pair['classes']}
        cases.append({'name': pair['name'], 'spacing': list(pair['spacing']), 'classes': classes,
                      'gt': encode(gt), 'pred': encode(pred)})
    out = {
        'provenance': {
            'generator': 'tools/benchmarks/surface_distance_reference.py',
            'command': 'python tools/benchmarks/surface_distance_reference.py',
            'surface_distance_version': importlib.metadata.version('surface-distance'),
            'numpy_version': np.__version__, 'scipy_version': scipy.__version__,
            'python_version': platform.python_version(),
            'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d'),
            'note': 'surface-distance 0.1 uses np.Inf and np.NaN (removed in NumPy 2); the script sets '
                    'np.Inf, np.NaN = np.inf, np.nan before importing it. dice: compute_dice_coefficient (nan '
                    'when both empty); iou = '
                    'dice / (2 - dice); nsd: compute_surface_dice_at_tolerance; hd95/hd100: '
                    'compute_robust_hausdorff(95/100); asd_*: compute_average_surface_distance; assd = '
                    '(sum d_gt*a_gt + sum d_pred*a_pred) / (sum a_gt + sum a_pred) over the arrays of '
                    'compute_surface_distances. Spacing is per array axis. Label maps: uint8, C order.',
        },
        'tolerances_mm': list(TOLERANCES_MM),
        'cases': cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + '\n')
    print(f'wrote {args.out} ({len(cases)} pairs) with surface-distance '
          f'{out["provenance"]["surface_distance_version"]}, numpy {np.__version__}', file=sys.stderr)


if __name__ == '__main__':
    main()
