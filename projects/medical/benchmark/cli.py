"""``tools/benchmark.py``: the command line of the benchmark runner (the package docstring is its ``--help``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from ..errors import MedSegError, UsageError
from .executors import InProcessExecutor, LocalExecutor, SlurmExecutor
from .presets import FOLD_PRESETS, PRESETS
from .runner import (REPO, RUN_ERRORS, config_unit, execute, execute_unit, protocol_option, resolve_configs,
                     run_fold_preset)
from .tables import write_results

DOC = sys.modules[__package__].__doc__


def make_executor(args: argparse.Namespace, tasks: int):
    """The executor the options ask for: in this process (``--jobs 1``), ``--jobs K`` processes, or Slurm jobs."""
    if args.launcher == 'slurm':
        import shlex
        return SlurmExecutor(args.partition, args.gpus, tasks, args.cpus_per_run, args.max_jobs,
                             shlex.split(args.slurm_args), repo=REPO)
    if args.jobs > 1:
        devices = list(range(_cuda_devices())) if args.gpus else []
        if len(devices) < args.gpus:
            raise UsageError('--gpus-per-run', f'{args.gpus} GPUs per run, but this machine has {len(devices)}')
        return LocalExecutor(args.jobs, args.gpus, devices)
    return InProcessExecutor(execute_unit, RUN_ERRORS)


def _cuda_devices() -> int:
    import torch
    return torch.cuda.device_count()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='benchmark.py', description=DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--configs', nargs='+', help='config files or globs')
    group.add_argument('--preset', choices=sorted(PRESETS) + sorted(FOLD_PRESETS),
                       help='a shipped list of configs (' + ', '.join(sorted(PRESETS)) + ') or a fold preset: the '
                            "CT-ICH paper's 5-fold cross-validation or a COVID-19-CT-Seg benchmark task on its "
                            'official folds (' + ', '.join(sorted(FOLD_PRESETS)) + ')')
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value overrides for every run')
    parser.add_argument('--gpus', '--gpus-per-run', dest='gpus', type=int, default=None,
                        help='GPUs per run (default: 1 if CUDA else 0); more than 1: DDP over that many processes')
    parser.add_argument('--tasks-per-run', type=int, default=None,
                        help='processes (DDP ranks) per run (default: the GPUs per run, at least 1); e.g. 2 with '
                             '--gpus-per-run 0 trains with gloo on CPUs')
    parser.add_argument('--launcher', choices=('local', 'slurm'), default='local',
                        help='local: on this machine (--jobs K at once); slurm: each run as its own Slurm job')
    parser.add_argument('--jobs', type=int, default=1, help='--launcher local: up to K runs at once (default 1: '
                        'one after another in this process)')
    parser.add_argument('--partition', help='--launcher slurm: the partition of the jobs')
    parser.add_argument('--cpus-per-run', type=int, default=None, help='--launcher slurm: CPUs per task')
    parser.add_argument('--max-jobs', type=int, default=None,
                        help='--launcher slurm: at most K jobs in the queue at once (default: all runs)')
    parser.add_argument('--slurm-args', default='', help='--launcher slurm: more sbatch options, one string')
    parser.add_argument('--protocol', default=None,
                        help='evaluation protocol of every test (default: a fold preset\'s own, covid19; for '
                             'configs: what each config says)')
    parser.add_argument('--mosmed', type=Path, default=None,
                        help='fold presets: a prepared MosMed (prepare_dataset.py mosmed): also score every model '
                             'with an infection class on its 50 cases (the published MosMed column)')
    parser.add_argument('--folds', type=int, nargs='+', default=None,
                        help='fold presets: run only these folds (default: all; the all row pools those run)')
    args = parser.parse_args(argv)
    if args.protocol is not None:
        from ..evaluation.protocols import get_protocol
        try:
            get_protocol(args.protocol)
        except MedSegError as exc:  # a usage error, exit 2 as argparse's
            parser.error(f'--protocol: {exc}')
    slurm_only = [f'--{k.replace("_", "-")}' for k in ('partition', 'cpus_per_run', 'max_jobs', 'slurm_args')
                  if getattr(args, k)]
    if args.launcher == 'local' and slurm_only:
        parser.error(f'{", ".join(slurm_only)} go with --launcher slurm')
    if args.launcher == 'slurm' and not args.partition:
        parser.error('--launcher slurm needs --partition P')
    if args.launcher == 'slurm' and args.jobs != 1:
        parser.error('--jobs goes with --launcher local (for Slurm: --max-jobs)')
    for flag in ('jobs', 'tasks_per_run', 'cpus_per_run', 'max_jobs'):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f'--{flag.replace("_", "-")} must be >= 1')
    fold_preset = FOLD_PRESETS.get(args.preset)
    if fold_preset is None:
        if args.mosmed is not None or args.folds is not None:
            parser.error('--mosmed and --folds go with a fold preset (' + ', '.join(sorted(FOLD_PRESETS)) + ')')
        try:
            configs = resolve_configs(args.configs or PRESETS[args.preset])
        except FileNotFoundError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
    if args.mosmed is not None and not (args.mosmed / 'manifest.csv').is_file():
        print(f'error: --mosmed {args.mosmed}: no manifest.csv (prepare it with tools/prepare_dataset.py mosmed)',
              file=sys.stderr)
        return 1
    try:  # the runs, tables and charts go under --work-dir: never over or around an input
        from ..outputs import check_apart
        check_apart(args.work_dir, '--work-dir', {'--mosmed': args.mosmed})
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.gpus is None:
        import torch
        args.gpus = 1 if torch.cuda.is_available() else 0
    tasks = args.tasks_per_run or max(1, args.gpus)
    try:
        executor = make_executor(args, tasks)
    except UsageError as exc:
        parser.error(str(exc))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if fold_preset is not None:
        if fold_preset.note:
            print(f'note: {fold_preset.note}')
        try:
            paths = run_fold_preset(fold_preset, args.work_dir, args.cfg_options, args.gpus, args.mosmed, args.folds,
                                    args.protocol, args.preset, executor, tasks)
        except (RuntimeError, KeyError, MedSegError) as exc:
            print(f'error: {args.preset}: {exc}', file=sys.stderr)
            return 1
        for path in paths:
            print(f'wrote {path}')
        print(paths[1].read_text())
        return 0
    units = []
    for config in configs:
        try:
            test_options = [protocol_option(config, args.cfg_options, args.protocol)] if args.protocol else []
            units.append(config_unit(config, args.work_dir, args.cfg_options, args.gpus, test_options, tasks))
        except (RuntimeError, KeyError, MedSegError) as exc:
            print(f'error: {config}: {exc}', file=sys.stderr)
            return 1
    failed = execute(units, executor)
    if failed:
        print(f'error: {len(failed)} run(s) failed: ' + ', '.join(u.label for u in failed), file=sys.stderr)
        return 1
    results = [json.loads((u.run_dir / 'result.json').read_text()) for u in units]
    for path in write_results(results, args.work_dir, args.protocol):
        print(f'wrote {path}')
    print((args.work_dir / 'results.md').read_text())
    return 0
