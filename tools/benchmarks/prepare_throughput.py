#!/usr/bin/env python
"""Conversion throughput: the library vs a naive loop vs the read + encode bound, measured in one run.

Builds a synthetic Cranium NIfTI release (default 6 gzipped volumes of 512×512×60 HU + masks), then times

* naive:   one process; nibabel ``get_fdata`` → float windowing → ``PIL.Image.save`` (PIL defaults);
* library: ``prepare()`` with ``--workers`` = CPU count (everything: find, read, window, validate, write,
  split, manifest, statistics, previews off);
* bound:   what cannot be avoided, on all cores: reading every volume (same reader) + PNG-encoding the
  exact same slices (encoding only, already windowed, no writes);
* bound + file writes: the same, each PNG also written to its own file (what any converter must do).

Each contender runs ``--repeats`` times, interleaved, and its median time counts (a 2-core machine's
timings drift with whatever else runs). Module imports are outside every timing (as numpy's are): the
library's one-off scikit-learn import (~1 s, for the split rules) is done before the first run.

Prints slices/s for each, peak memory per process, and as the last line
``ratio_vs_naive=X.XX ratio_vs_encode_bound=Y.YY ratio_vs_write_bound=Z.ZZ`` (naive time / library time;
library time / bound time; library time / bound-with-writes time).
"""
from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import statistics
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.engine import PNG_PARAMS, default_workers
from mmseg_medical.intensity import WINDOWS
from mmseg_medical.io.nifti import read_nifti
from mmseg_medical.synthetic import head_ct_phantom
from mmseg_medical.volume import Volume, save_nifti

RELEASE = 'computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0'
_WRITE_DIR: List[Path] = []
_SLICES: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}  # filled before forking the encode pool


def build_release(root: Path, cases: int, size: int, slices: int) -> List[Tuple[Path, Path]]:
    release = root / RELEASE
    pairs = []
    for i in range(cases):
        hu, label = head_ct_phantom(num_slices=slices, size=size, rng=i, num_bleeds=1 + i % 2)
        case = f'{49 + i:03d}'
        spacing = (0.45, 0.45, 5.0)
        image = save_nifti(Volume(hu, spacing=spacing), release / 'ct_scans' / f'{case}.nii.gz', np.int16)
        mask = save_nifti(Volume(label, spacing=spacing), release / 'masks' / f'{case}.nii.gz', np.uint8)
        pairs.append((image, mask))
    return pairs


def naive(pairs: List[Tuple[Path, Path]], out: Path) -> int:
    """The loop people write first: float data, float windowing, PIL with default settings, one process."""
    import nibabel as nib
    from PIL import Image

    out.mkdir(parents=True)
    n = 0
    for image, mask in pairs:
        hu = nib.load(str(image)).get_fdata()
        lab = nib.load(str(mask)).get_fdata()
        windowed = np.clip((hu - 0.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)
        for k in range(hu.shape[2]):
            Image.fromarray(windowed[:, :, k].T).save(out / f'{image.name}_{k}.png')
            Image.fromarray(lab[:, :, k].T.astype(np.uint8)).save(out / f'{image.name}_{k}_mask.png')
            n += 1
    return n


def _read(pair: Tuple[Path, Path]) -> int:
    return read_nifti(pair[0]).array.nbytes + read_nifti(pair[1]).array.nbytes


def _encode(key: str) -> int:
    image, mask = _SLICES[key]
    total = 0
    for k in range(image.shape[0]):
        total += len(cv2.imencode('.png', image[k], PNG_PARAMS)[1]) + len(cv2.imencode('.png', mask[k], PNG_PARAMS)[1])
    return total


def _encode_write(key: str) -> int:
    """Encode as :func:`_encode` and write each PNG to its own file (``_WRITE_DIR``), as a converter must."""
    image, mask = _SLICES[key]
    for k in range(image.shape[0]):
        for kind, plane in (('i', image[k]), ('m', mask[k])):
            with open(_WRITE_DIR[0] / f'{key}_{kind}{k}.png', 'wb') as f:
                f.write(cv2.imencode('.png', plane, PNG_PARAMS)[1].tobytes())
    return 0


def bound(pairs: List[Tuple[Path, Path]], workers: int, write_dir: Path) -> Tuple[float, float, float]:
    """(read seconds, encode seconds, encode + write seconds), each phase on ``workers`` processes."""
    ctx = mp.get_context('fork')
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        pool.map(_read, pairs, chunksize=1)
    t_read = time.perf_counter() - t0
    for image, mask in pairs:  # the same uint8 slices the library writes, prepared outside the timing
        _SLICES[image.name] = (WINDOWS['brain'](read_nifti(image).array), read_nifti(mask).array.astype(np.uint8))
    with ctx.Pool(workers) as pool:  # forked after _SLICES is filled: no copies sent
        pool.map(lambda_free_noop, range(workers))  # start-up outside the timing
        t0 = time.perf_counter()
        pool.map(_encode, list(_SLICES), chunksize=1)
        t_encode = time.perf_counter() - t0
    write_dir.mkdir(parents=True, exist_ok=True)
    _WRITE_DIR[:] = [write_dir]
    with ctx.Pool(workers) as pool:
        pool.map(lambda_free_noop, range(workers))
        t0 = time.perf_counter()
        pool.map(_encode_write, list(_SLICES), chunksize=1)
        t_write = time.perf_counter() - t0
    shutil.rmtree(write_dir)
    _SLICES.clear()
    return t_read, t_encode, t_write


def lambda_free_noop(_: int) -> None:
    return None


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def plot(results: Dict[str, float], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(results)
    bars = ax.barh(names, [results[n] for n in names], color=['#999999', '#1f77b4', '#2ca02c'])
    ax.bar_label(bars, fmt='%.0f')
    ax.set_xlabel('slices / s (higher is better)')
    ax.set_title('prepare_dataset throughput')
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', type=int, default=6)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--slices', type=int, default=60)
    parser.add_argument('--workers', type=int, default=default_workers())
    parser.add_argument('--repeats', type=int, default=3, help='runs of each contender (median counts)')
    parser.add_argument('--plot', type=Path, default=Path('work_dirs/benchmarks/prepare_throughput.png'))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='prepare_bench_'))
    try:
        print(f'building {args.cases} volumes of {args.size}x{args.size}x{args.slices} (gzipped NIfTI HU + mask) ...')
        pairs = build_release(tmp / 'raw', args.cases, args.size, args.slices)
        n_slices = args.cases * args.slices
        volume_mb = args.size * args.size * args.slices * 2 / 2**20

        converter = CONVERTERS['cranium'](layout='nifti', window='brain')
        importlib.import_module('sklearn.model_selection')  # the split rules' import, outside the timing
        libs, naives, bounds = [], [], []
        worker_peak = 0.0
        for k in range(args.repeats):
            t0 = time.perf_counter()
            prepare(converter, tmp / 'raw', tmp / f'library{k}', workers=args.workers, previews=0)
            libs.append(time.perf_counter() - t0)
            if k == 0:  # before any bound pool: its children hold the pre-windowed slices
                worker_peak = peak_rss_mb(resource.RUSAGE_CHILDREN)
            shutil.rmtree(tmp / f'library{k}')

            t0 = time.perf_counter()
            naive(pairs, tmp / 'naive')
            naives.append(time.perf_counter() - t0)
            shutil.rmtree(tmp / 'naive')

            bounds.append(bound(pairs, args.workers, tmp / 'bound_writes'))
        t_lib, t_naive = statistics.median(libs), statistics.median(naives)
        t_read, t_encode, t_write = sorted(bounds, key=lambda b: b[0] + b[1])[len(bounds) // 2]
        t_bound = t_read + t_encode
        t_write_bound = t_read + t_write

        rates = {'naive (1 process, PIL)': n_slices / t_naive, f'library ({args.workers} workers)': n_slices / t_lib,
                 'bound: read + encode': n_slices / t_bound}
        print(f'{n_slices} slices (+ masks), {args.workers} workers, median of {args.repeats} interleaved runs')
        print(f'  naive   {t_naive:7.2f} s  {rates["naive (1 process, PIL)"]:7.1f} slices/s')
        print(f'  library {t_lib:7.2f} s  {n_slices / t_lib:7.1f} slices/s')
        print(f'  bound   {t_bound:7.2f} s  {n_slices / t_bound:7.1f} slices/s  (read {t_read:.2f} s + encode {t_encode:.2f} s)')
        print(f'  bound + file writes {t_write_bound:5.2f} s  {n_slices / t_write_bound:7.1f} slices/s  (read + encode and write '
              f'each PNG to its own file: {t_write:.2f} s)')
        print(f'  peak RSS of one conversion worker {worker_peak:.0f} MB (one int16 volume = {volume_mb:.0f} MB, '
              f'dataset = {volume_mb * args.cases:.0f} MB); parent {peak_rss_mb(resource.RUSAGE_SELF):.0f} MB')
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(rates, args.plot)
        print(f'  plot: {args.plot}')
        print(f'ratio_vs_naive={t_naive / t_lib:.2f} ratio_vs_encode_bound={t_lib / t_bound:.2f} '
              f'ratio_vs_write_bound={t_lib / t_write_bound:.2f}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
