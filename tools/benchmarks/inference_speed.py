#!/usr/bin/env python
"""Whole-scan inference speed and memory: ``tools/infer_volume.py`` vs ``mim test``, end to end, in one run.

Builds a synthetic Cranium NIfTI release (``--patients`` heads of ``--size``² x ``--slices``), prepares it
(half the patients in ``val``), and makes one tiny model: the Cranium UNet config shrunk by
``mmseg_medical.runs.tiny_overrides`` (base_channels 16, slices resized to 64²), randomly initialised and
saved as a checkpoint (the time per slice does not depend on the weights). Then, ``--repeats`` times
interleaved, each as a user runs it (a subprocess; interpreter start, imports and model build included):

* ``mim test``: ``mim test mmseg CONFIG --checkpoint CKPT --gpus 0 --out DIR --cfg-options <tiny options>``
  on the val split: reads the prepared PNGs, predicts slice by slice, scores (IoUMetric + VolumeMetric)
  and writes the slice PNGs and restacked ``DIR/volumes/<case>.nii.gz`` (how ``mim test`` gives volumes);
* ``infer_volume``: ``tools/infer_volume.py CONFIG CKPT --data PREPARED --split val --output OUT
  --cfg-options <tiny options>``: reads the same val cases from the raw release as ``prepare`` did, predicts
  ``--batch-size`` slices per forward pass under ``torch.inference_mode`` and writes ``OUT/<case>.nii.gz``.

Each tool runs twice per repeat: on one val case (split ``one``, added to the prepared dataset) and on all
of them, so that its time splits into a fixed start-up (interpreter, imports, config, model build, the first
case's set-up) and a steady state: steady slices/s = (all slices - one case's slices) / (time all - time one),
start-up = time one - one case's slices / steady slices/s (medians over the repeats). The end-to-end rate of a
whole run mixes the two and moves with the number of slices and with the machine's load; these do not.

Both label the same slices with the same model; the script counts the voxels where their volumes differ
(near-ties only: float rounding depends on the batch size). Prints the start-up seconds and steady-state
slices/s of each, the end-to-end times, the peak resident memory of each process tree (``wait4``; the
set-up runs in its own process, so the timing parent holds no torch that a child's peak would count), the
peak of ``infer_volume`` on one case next to all cases (it holds one case at a time), the load average
before and after (what else the machine ran), and as its last line ``ratio_vs_mim_test=X`` (infer_volume's
steady-state slices/s / mim test's). Both run with the torch threads the tiny options choose (``CpuThreadsHook``
in ``mim test``, ``OMP_NUM_THREADS`` for ``infer_volume``): with torch's default threads ``infer_volume``
oversubscribes a busy machine and the ratio measures that instead.

Usage: python tools/benchmarks/inference_speed.py [--patients 12] [--slices 32] [--size 256] [--repeats 3]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'


def timed(cmd: Sequence[str], log: Path, env: Optional[Dict[str, str]] = None) -> Tuple[float, float]:
    """(wall seconds, peak RSS in MB of the process and its waited-for children) of one command."""
    with open(log, 'w') as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=None if env is None else {**os.environ, **env})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = ''.join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f'{" ".join(map(str, cmd[:3]))} … failed (exit {proc.returncode}); {log}:\n{tail}')
    return seconds, usage.ru_maxrss / 1024.0


def build(tmp: Path, patients: int, slices: int, size: int) -> None:
    """Write the release, the prepared dataset, the checkpoint and ``plan.json`` (run in its own process, so
    that the timing parent never imports torch: a child's peak RSS counts its parent's memory at fork)."""
    import torch

    from mmseg_medical.conversion import CONVERTERS, prepare  # first: it makes mmseg importable on mmcv-lite
    from mmseg_medical.inference import load_config
    from mmseg_medical.inference_cli import build_parser
    from mmseg_medical.restacking import split_cases
    from mmseg_medical.runs import mim_test, tiny_overrides
    from mmseg_medical.synthetic import write_cranium_release

    write_cranium_release(tmp / 'raw', num_patients=patients, num_slices=slices, size=size, seed=0, layouts=('nifti',))
    data = tmp / 'data'
    prepare(CONVERTERS['cranium'](val_fraction=0.5), tmp / 'raw', data, workers=2, previews=0)
    options = tiny_overrides(data, scale=64, base_channels=16)
    parsed = build_parser().parse_args(['--input', 'x', '--output', 'y', '--cfg-options', *options]).cfg_options
    cfg = load_config(CONFIG, parsed)
    from mmseg.apis import init_model

    torch.manual_seed(0)
    model = init_model(copy.deepcopy(cfg), None, 'cpu')
    checkpoint = tmp / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ('background', 'hemorrhage')}}}, str(checkpoint))
    cases = split_cases(data, 'val')
    # split 'one': the first val case alone (splits.json for infer_volume --split, splits/one.txt for mim test)
    lists = json.loads((data / 'splits.json').read_text())
    lists['one'] = cases[:1]
    (data / 'splits.json').write_text(json.dumps(lists, indent=1))
    from mmseg_medical.manifest import read_manifest

    one = [r.stem for r in read_manifest(data) if r.case_id == cases[0]]
    (data / 'splits' / 'one.txt').write_text(''.join(f'{stem}\n' for stem in one))
    plan = {'options': options, 'checkpoint': str(checkpoint), 'data': str(data), 'cases': cases,
            'slices': len((data / 'splits' / 'val.txt').read_text().split()), 'one_slices': len(one),
            'one_scan': str(next((tmp / 'raw').rglob(f'ct_scans/{cases[0]}.nii'))),
            'mim_test': [str(c) for c in mim_test(CONFIG, checkpoint, tmp / 'mim{k}', options,
                                                  ['--gpus', '0', '--out', str(tmp / 'mim{k}' / 'out')])]}
    (tmp / 'plan.json').write_text(json.dumps(plan, indent=1))


def compare_volumes(mim_dir: Path, infer_dir: Path, cases: Sequence[str]) -> Tuple[int, int]:
    """(voxels that differ, voxels) between mim test's restacked volumes and infer_volume's (cases by id)."""
    import nibabel as nib

    differ = total = 0
    for case in cases:
        mine = np.asanyarray(nib.load(str(infer_dir / f'{case}.nii.gz')).dataobj)
        found = [p for p in (mim_dir / f'{case}.nii.gz', mim_dir / f'{case}_Label.nii.gz') if p.is_file()]
        if not found:
            raise RuntimeError(f'{mim_dir}: mim test --out wrote no volume for case {case}')
        differ += int(np.sum(np.asanyarray(nib.load(str(found[0])).dataobj) != mine))
        total += mine.size
    return differ, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--patients', type=int, default=12, help='synthetic heads (half of them in val; default 12)')
    parser.add_argument('--slices', type=int, default=32, help='slices per head (default 32)')
    parser.add_argument('--size', type=int, default=256, help='in-plane size of the scans (default 256)')
    parser.add_argument('--batch-size', type=int, default=8, help='infer_volume --batch-size (default 8)')
    parser.add_argument('--repeats', type=int, default=3, help='runs of each, interleaved (median counts; default 3)')
    parser.add_argument('--build', type=Path, default=None, help=argparse.SUPPRESS)  # the setup process
    args = parser.parse_args()
    if args.build is not None:
        build(args.build, args.patients, args.slices, args.size)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix='inference_speed_'))
    try:
        print(f'building {args.patients} synthetic heads of {args.size}x{args.size}x{args.slices}, preparing, '
              'saving a tiny model ...', flush=True)
        setup = subprocess.run([sys.executable, __file__, '--build', str(tmp), '--patients', str(args.patients),
                                '--slices', str(args.slices), '--size', str(args.size)], capture_output=True, text=True)
        if setup.returncode != 0:
            raise RuntimeError(f'setup failed (exit {setup.returncode}):\n{setup.stderr[-3000:]}')
        plan = json.loads((tmp / 'plan.json').read_text())
        options, cases, n_slices, n_one = plan['options'], plan['cases'], plan['slices'], plan['one_slices']
        infer = [sys.executable, REPO / 'tools/infer_volume.py', CONFIG, plan['checkpoint'], '--batch-size',
                 str(args.batch_size), '--device', 'cpu']
        # the torch threads mim test gets from the tiny options (CpuThreadsHook), given to infer_volume too, so
        # that the ratio compares the tools and not their thread counts (on a busy machine the default loses)
        threads = next(o.split('=', 1)[1] for o in options if o.startswith('default_hooks.threads.threads='))
        same_threads = {'OMP_NUM_THREADS': threads}
        runs = [(name, split) for name in ('mim test', 'infer_volume') for split in ('one', 'val')]
        times: Dict[Tuple[str, str], List[float]] = {run: [] for run in runs}
        peaks: Dict[Tuple[str, str], List[float]] = {run: [] for run in runs}
        load_before = os.getloadavg()
        for k in range(args.repeats):
            for name, split in runs if k % 2 == 0 else runs[::-1]:
                tag = f'{split}{k}'
                if name == 'mim test':
                    cmd = [c.replace('{k}', tag) for c in plan['mim_test']]
                    if split == 'one':
                        cmd += ['test_dataloader.dataset.ann_file=splits/one.txt']
                else:
                    cmd = infer + ['--data', plan['data'], '--split', split, '--output', tmp / f'infer{tag}',
                                   '--cfg-options', *options]
                seconds, peak = timed(cmd, tmp / f'{name.replace(" ", "_")}{tag}.log',
                                      same_threads if name == 'infer_volume' else None)
                times[(name, split)].append(seconds)
                peaks[(name, split)].append(peak)
                print(f'  run {k + 1}/{args.repeats} {name:12s} {split:3s} {seconds:6.1f} s  peak RSS {peak:5.0f} MB',
                      flush=True)
        load_after = os.getloadavg()
        _, one_peak = timed(infer + ['--input', plan['one_scan'], '--output', tmp / 'one', '--cfg-options', *options],
                            tmp / 'infer_one.log', same_threads)
        differ, voxels = compare_volumes(tmp / 'mimval0/out/volumes', tmp / 'inferval0', cases)
        median = {run: statistics.median(t) for run, t in times.items()}
        steady, startup = {}, {}
        for name in ('mim test', 'infer_volume'):
            extra = median[(name, 'val')] - median[(name, 'one')]
            if extra <= 0:
                raise RuntimeError(f'{name}: all {len(cases)} cases took no longer than one ({median[(name, "val")]:.1f} '
                                   f'against {median[(name, "one")]:.1f} s): the load of the machine varies more than '
                                   'the work; use more --slices / --patients or --repeats')
            steady[name] = (n_slices - n_one) / extra
            startup[name] = median[(name, 'one')] - n_one / steady[name]
        volume_mb = args.size * args.size * args.slices * 2 / 2 ** 20
        print(f'{len(cases)} val cases, {n_slices} slices of {args.size}x{args.size} (one case: {n_one}; model input '
              f'64x64, UNet base_channels 16), median of {args.repeats} interleaved runs, {os.cpu_count()} CPUs, '
              f'{threads} torch thread(s) in both, '
              f'load average {" ".join(f"{v:.2f}" for v in load_before)} before, '
              f'{" ".join(f"{v:.2f}" for v in load_after)} after')
        for name in ('mim test', 'infer_volume'):
            print(f'  {name:12s} start-up {startup[name]:5.1f} s  steady {steady[name]:6.1f} slices/s  '
                  f'(whole run: 1 case {median[(name, "one")]:5.1f} s, {len(cases)} cases {median[(name, "val")]:5.1f} s)'
                  f'  peak RSS {max(peaks[(name, "val")]):5.0f} MB')
        print(f'  infer_volume on 1 case: peak RSS {one_peak:.0f} MB (all {len(cases)} cases: '
              f'{max(peaks[("infer_volume", "val")]):.0f} MB; one int16 scan = {volume_mb:.0f} MB)')
        print(f'  labels: {differ} of {voxels} voxels differ between mim test --out volumes and infer_volume '
              f'(near-ties: a batch of {args.batch_size} slices and mim test\'s batch of 1 round differently)')
        print(f'startup_s_mim_test={startup["mim test"]:.1f} startup_s_infer_volume={startup["infer_volume"]:.1f}')
        print(f'ratio_vs_mim_test={steady["infer_volume"] / steady["mim test"]:.2f}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
