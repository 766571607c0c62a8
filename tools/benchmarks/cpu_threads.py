#!/usr/bin/env python
"""A tiny Cranium training with torch's default threads against the threads ``tiny_overrides`` chooses, side by side.

Builds a synthetic Cranium release (``--patients`` heads, NIfTI layout), prepares it, then trains the demo's
config shrunk by ``mmseg_medical.runs.tiny_overrides`` (64² slices, base channels 16, ``--workers`` dataloader
workers, ``--iters`` iterations and one validation) ``--repeats`` times each way, interleaved, each run a
``mim train`` process as a user starts it:

* ``default``: the tiny options without ``CpuThreadsHook``: torch takes as many threads as there are cores, next
  to the dataloader workers;
* ``chosen``: the tiny options as they are: ``CpuThreadsHook`` sets ``cores // workers`` threads (workers ×
  threads ≤ cores).

Prints each run's wall time, the load average before and after (what else the machine was running), the
median of each, and as its last line ``ratio_default_vs_chosen_threads=X`` (default seconds / chosen seconds:
above 1, the chosen threads are faster). On an idle machine both are about equal; the ratio grows with what
else runs.

Usage: python tools/benchmarks/cpu_threads.py [--patients 8] [--iters 60] [--workers 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16-ce-1.0-dice-3.0_unet_1xb16-0.01-20k_cranium-512x512.py'
HOOK_OPTIONS = 'default_hooks.threads.'


def load() -> str:
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def main() -> int:
    import torch

    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.runs import choose_threads, mim_train, run, thread_note, tiny_overrides, usable_cores
    from mmseg_medical.synthetic import write_cranium_release

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--patients', type=int, default=8, help='synthetic heads (default 8)')
    parser.add_argument('--iters', type=int, default=60, help='training iterations per run (default 60)')
    parser.add_argument('--workers', type=int, default=2, help='dataloader workers (default 2, tiny_options\')')
    parser.add_argument('--repeats', type=int, default=2, help='runs of each, interleaved (median; default 2)')
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='cpu_threads_'))
    try:
        write_cranium_release(tmp / 'raw', num_patients=args.patients, num_slices=24, size=128, seed=0,
                              layouts=('nifti',))
        data = tmp / 'data'
        prepare(CONVERTERS['cranium'](), tmp / 'raw', data, workers=2, previews=0)
        chosen = tiny_overrides(data, iters=args.iters, workers=args.workers)
        runs = {'default': [o for o in chosen if not o.startswith(HOOK_OPTIONS)], 'chosen': chosen}
        threads = choose_threads(args.workers)
        print(f'{args.patients} synthetic heads, {args.iters} iterations at 64x64, {args.workers} dataloader workers, '
              f'{usable_cores()} cores; default: torch {torch.get_num_threads()} threads, chosen: '
              f'{thread_note(threads, args.workers)}', flush=True)
        times: Dict[str, List[float]] = {name: [] for name in runs}
        for k in range(args.repeats):
            for name in ('default', 'chosen') if k % 2 == 0 else ('chosen', 'default'):
                before = load()
                start = time.perf_counter()
                run(mim_train(CONFIG, tmp / f'{name}{k}', runs[name], ['--gpus', '0']), log=tmp / f'{name}{k}.log',
                    cwd=REPO)
                seconds = time.perf_counter() - start
                times[name].append(seconds)
                print(f'  run {k + 1}/{args.repeats} {name:8s} {seconds:6.1f} s  (load average before '
                      f'{before}, after {load()})', flush=True)
        median = {name: statistics.median(t) for name, t in times.items()}
        for name, seconds in median.items():
            print(f'  {name:8s} median {seconds:6.1f} s')
        print(f'ratio_default_vs_chosen_threads={median["default"] / median["chosen"]:.2f}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
