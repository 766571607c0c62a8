#!/usr/bin/env python
"""Wall time of a CPU-sized preset run sequentially, with ``--jobs 2`` and as Slurm jobs, side by side.

Builds a synthetic Cranium release (``--patients`` heads), prepares it, then runs ``tools/benchmark.py --preset
cranium-2.5d`` (two configs: one slice and 2.5D) shrunk by ``mmseg_medical.runs.tiny_overrides`` (64² slices,
``--iters`` iterations, no dataloader workers, one torch thread per run) three times, each in a fresh work folder,
as a user starts it:

* ``sequential``: ``--launcher local`` (one run after the other, today's runner);
* ``jobs2``: ``--launcher local --jobs 2`` (both runs at once, each its own process);
* ``slurm``: ``--launcher slurm --partition P`` (each run its own Slurm job; needs a cluster: ``--partition``,
  default ``debug``; left out with ``--no-slurm`` or when ``sbatch`` is missing).

Checks that the three ``results.md`` tables hold the same rows, prints each wall time, the load average before
and after, and as its last line ``ratio_sequential_vs_parallel=X`` (sequential seconds / ``--jobs 2`` seconds).

Usage: python tools/benchmarks/cluster_wall_time.py [--patients 6] [--iters 40] [--partition debug] [--no-slurm]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load() -> str:
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def rows(work: Path) -> list:
    return [ln for ln in (work / 'results.md').read_text().splitlines() if ln.startswith('| **')]


def main() -> int:
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.runs import tiny_overrides, usable_cores
    from mmseg_medical.synthetic import write_cranium_release

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--patients', type=int, default=6, help='synthetic heads (default 6)')
    parser.add_argument('--iters', type=int, default=40, help='training iterations per run (default 40)')
    parser.add_argument('--partition', default='debug', help='Slurm partition (default debug)')
    parser.add_argument('--no-slurm', action='store_true', help='leave out the Slurm launcher')
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='cluster_wall_time_'))
    try:
        write_cranium_release(tmp / 'raw', num_patients=args.patients, num_slices=12, size=64, seed=0,
                              layouts=('nifti',))
        prepare(CONVERTERS['cranium'](), tmp / 'raw', tmp / 'data', workers=2, previews=0)
        options = tiny_overrides(tmp / 'data', scale=64, iters=args.iters, workers=0, threads=1)
        ways = {'sequential': [], 'jobs2': ['--jobs', '2']}
        if not args.no_slurm and shutil.which('sbatch'):
            ways['slurm'] = ['--launcher', 'slurm', '--partition', args.partition, '--cpus-per-run', '1']
        print(f'cranium-2.5d preset: 2 configs, {args.iters} iterations at 64x64, {args.patients} synthetic heads, '
              f'{usable_cores()} cores', flush=True)
        seconds, tables = {}, {}
        for name, extra in ways.items():
            work = tmp / name
            before = load()
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, str(REPO / 'tools/benchmark.py'), '--preset', 'cranium-2.5d',
                                   '--work-dir', str(work), *extra, '--cfg-options', *options],
                                  cwd=REPO, capture_output=True, text=True)
            seconds[name] = time.perf_counter() - start
            if proc.returncode != 0:
                print(f'error: {name}: benchmark.py exit {proc.returncode}:\n{proc.stderr[-2000:]}', file=sys.stderr)
                return 1
            tables[name] = rows(work)
            print(f'  {name:10s} {seconds[name]:6.1f} s  (load average before {before}, after {load()})', flush=True)
        same = all(t == tables['sequential'] for t in tables.values())
        print(f'  results.md rows identical across launchers: {same}')
        if not same:
            return 1
        for name in ways:
            if name != 'sequential':
                print(f'  sequential / {name}: {seconds["sequential"] / seconds[name]:.2f}')
        print(f'ratio_sequential_vs_parallel={seconds["sequential"] / seconds["jobs2"]:.2f}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
