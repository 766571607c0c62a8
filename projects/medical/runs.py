"""Driving ``mim train`` / ``mim test`` runs: shortened settings, commands and reading back results.

Shared by the demo, the benchmark runner and the tests so that the same small-run recipe is written once;
``tools/tiny_options.py DATA`` prints the same recipe as one ``--cfg-options ...`` line for a shell.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NoReturn, Optional, Sequence, Union

from .errors import MedSegError
from .manifest import MANIFEST_NAME

PathLike = Union[str, Path]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_threads(workers: int, cores: Optional[int] = None) -> int:
    """torch threads for a run with ``workers`` dataloader workers: the most with workers × threads ≤ cores
    (at least 1; no workers count as one)."""
    return max(1, (cores or usable_cores()) // max(1, workers))


def thread_note(threads: int, workers: int) -> str:
    """The one line a CPU-sized run says about its threads."""
    return (f'CPU threads: torch {threads} x {max(1, workers)} dataloader worker(s) on {usable_cores()} cores '
            '(workers x threads <= cores; torch alone would take every core)')


def tiny_overrides(data_root: PathLike, scale: int = 64, iters: int = 300, base_channels: int = 16,
                   batch_size: int = 4, workers: int = 2, lr: Optional[float] = None,
                   val_interval: Optional[int] = None, threads: Optional[int] = None) -> List[str]:
    """``--cfg-options`` that shrink a UNet-S5-D16 config of this project to a CPU-sized run.

    Slices are resized to ``scale``², the UNet gets ``base_channels`` (decode head widened to match), the
    20k schedule becomes ``iters`` iterations (poly LR over the same span) with one checkpoint at the end.
    ``CpuThreadsHook`` sets the run's torch threads to ``threads`` (default :func:`choose_threads`: dataloader
    workers × torch threads ≤ cores, so that the run does not oversubscribe a shared machine).
    """
    threads = choose_threads(workers) if threads is None else threads
    root = str(data_root).rstrip('/') + '/'
    size = f'({scale},{scale})'
    opts = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.pipeline.2.scale={size}',
        f'val_dataloader.dataset.pipeline.1.scale={size}',
        f'test_dataloader.dataset.pipeline.1.scale={size}',
        f'model.data_preprocessor.size={size}',
        f'model.backbone.base_channels={base_channels}',
        f'model.decode_head.in_channels={base_channels}',
        f'model.decode_head.channels={base_channels}',
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.num_workers={workers}',
        f'val_dataloader.num_workers={workers}',
        f'test_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={workers > 0}',
        f'val_dataloader.persistent_workers={workers > 0}',
        f'test_dataloader.persistent_workers={workers > 0}',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={val_interval or iters}',
        f'param_scheduler.0.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={max(1, min(50, iters // 4))}',
        'randomness.seed=0',
        'default_hooks.threads.type=CpuThreadsHook',
        f'default_hooks.threads.threads={threads}',
        f'default_hooks.threads.workers={workers}',
    ]
    if lr is not None:
        opts.append(f'optim_wrapper.optimizer.lr={lr}')
    return opts


def options_line(cfg_options: Sequence[str]) -> str:
    """``--cfg-options k=v ...`` for a shell: each value shell-quoted where it needs it (``'(64,64)'``).

    The line works pasted after ``mim train mmseg CONFIG`` and as ``$(python tools/tiny_options.py DATA)``:
    in the second form the quotes reach mmengine's ``DictAction`` literally, and it strips them from values.
    """
    words = []
    for option in cfg_options:
        key, sep, value = option.partition('=')
        if not sep:
            raise ValueError(f'expected KEY=VALUE, got {option!r}')
        words.append(f'{key}={shlex.quote(value)}')
    return ' '.join(['--cfg-options', *words])


def _is_prepared(folder: Path) -> bool:
    """A prepared dataset (``manifest.csv``), or a folder of them (the COVID-19 multi-source configs' root)."""
    return (folder / MANIFEST_NAME).is_file() or any((sub / MANIFEST_NAME).is_file() for sub in folder.iterdir()
                                                     if sub.is_dir())


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'error: {self.prog}: {message} (see --help)\n')


#: What ``tiny_options.py`` prints on stdout when it fails, besides its ``error:`` line on stderr and its non-zero
#: exit: ``$(python tools/tiny_options.py …)`` discards the exit status, and an empty substitution would let ``mim
#: train`` run the full-size recipe on the config's default data. This word is an option no consumer has (nor a
#: prefix of one), so ``mim train`` / ``mim test`` (mmseg's ``train.py`` / ``test.py``), ``tools/train.py``,
#: ``infer_volume.py`` and ``pseudo_label.py`` stop at once: ``unrecognized arguments: --tiny-options-failed…``.
FAILED_TOKEN = '--tiny-options-failed--see-its-error-line-above'


class _TinyParser(_Parser):
    """:class:`_Parser` that also prints :data:`FAILED_TOKEN` on stdout before a usage error's exit."""

    def error(self, message: str) -> NoReturn:
        print(FAILED_TOKEN)
        super().error(message)


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value
    return parse


def tiny_options_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/tiny_options.py DATA [--scale N] [--iters N] ...``: print :func:`tiny_overrides` as one line; on bad
    input one ``error:`` line on stderr, a non-zero exit and :data:`FAILED_TOKEN` on stdout."""
    parser = _TinyParser(
        prog='tiny_options.py',
        description='Print the --cfg-options that shrink a UNet-S5-D16 config of this project to a CPU-sized run '
                    '(slices resized to SCALE x SCALE, BASE_CHANNELS UNet, ITERS iterations, one checkpoint and '
                    'one validation at the end, torch threads so that WORKERS x THREADS <= cores) for the '
                    'prepared dataset DATA.',
        epilog='Use: mim train mmseg CONFIG $(python tools/tiny_options.py data/cranium); give mim test and '
               'tools/infer_volume.py the same line: a checkpoint only fits the model built with its options.')
    parser.add_argument('data', type=Path, help='the prepared dataset (tools/prepare_dataset.py --out), e.g. '
                                                'data/cranium; for the COVID-19 multi-source configs the folder '
                                                'holding the prepared datasets')
    parser.add_argument('--scale', type=_at_least(16), default=64, help='slice size in pixels (default 64)')
    parser.add_argument('--iters', type=_at_least(1), default=300, help='training iterations (default 300)')
    parser.add_argument('--base-channels', type=_at_least(1), default=16,
                        help='UNet base channels (default 16; the configs: 64)')
    parser.add_argument('--batch-size', type=_at_least(1), default=4, help='training batch size (default 4)')
    parser.add_argument('--workers', type=_at_least(0), default=2, help='dataloader workers (default 2)')
    parser.add_argument('--threads', type=_at_least(1), default=None,
                        help='torch threads of the run (default: cores // workers, so that workers x threads <= '
                             'cores)')
    args = parser.parse_args(argv)
    if not args.data.is_dir() or not _is_prepared(args.data):
        what = 'not found' if not args.data.exists() else (
            f'not a prepared dataset (no {MANIFEST_NAME} in it or in a subfolder); run tools/prepare_dataset.py')
        print(f'error: {MedSegError(args.data, what)}', file=sys.stderr)
        print(FAILED_TOKEN)  # makes the command that consumes $(tiny_options.py ...) fail too
        return 1
    threads = choose_threads(args.workers) if args.threads is None else args.threads
    print(options_line(tiny_overrides(args.data, scale=args.scale, iters=args.iters, base_channels=args.base_channels,
                                      batch_size=args.batch_size, workers=args.workers, threads=threads)))
    print(thread_note(threads, args.workers), file=sys.stderr)
    return 0


def mim_executable() -> str:
    """The ``mim`` next to this interpreter (the project's venv), else the one on PATH."""
    local = Path(sys.executable).parent / 'mim'
    return str(local) if local.exists() else (shutil.which('mim') or 'mim')


def mim_train(config: PathLike, work_dir: PathLike, cfg_options: Sequence[str] = (),
              extra: Sequence[str] = ()) -> List[str]:
    cmd = [mim_executable(), 'train', 'mmseg', str(config), '--work-dir', str(work_dir), *extra]
    return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])


def mim_test(config: PathLike, checkpoint: PathLike, work_dir: PathLike, cfg_options: Sequence[str] = (),
             extra: Sequence[str] = ()) -> List[str]:
    cmd = [mim_executable(), 'test', 'mmseg', str(config), '--checkpoint', str(checkpoint), '--work-dir',
           str(work_dir), *extra]
    return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])


def run(cmd: Sequence[str], log: Optional[PathLike] = None, cwd: Optional[PathLike] = None) -> None:
    """Run a command; with ``log``, its output goes to that file and is quoted on failure."""
    if log is None:
        subprocess.run(list(cmd), check=True, cwd=cwd)
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as f:
        proc = subprocess.run(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=cwd)
    if proc.returncode != 0:
        tail = ''.join(Path(log).read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f'{" ".join(map(str, cmd[:4]))} failed (exit {proc.returncode}); see {log}:\n{tail}')


def last_checkpoint(work_dir: PathLike) -> Path:
    """The checkpoint mmengine's CheckpointHook recorded last (``work_dir/last_checkpoint``)."""
    marker = Path(work_dir) / 'last_checkpoint'
    if not marker.is_file():
        raise FileNotFoundError(f'{marker}: no checkpoint was saved')
    return Path(marker.read_text().strip())


def read_test_metrics(work_dir: PathLike) -> Dict[str, float]:
    """Metrics of the newest ``mim test`` in ``work_dir`` (the ``<timestamp>/<timestamp>.json`` LoggerHook dump)."""
    dumps = sorted(p for p in Path(work_dir).glob('*/*.json') if p.stem == p.parent.name)
    if not dumps:
        raise FileNotFoundError(f'{work_dir}: no test metrics found')
    lines = [ln for ln in dumps[-1].read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1])
