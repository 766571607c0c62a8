"""Driving ``mim train`` / ``mim test`` runs: shortened settings, commands and reading back results.

Shared by the demo, the benchmark runner and the tests so that the same small-run recipe is written once.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

PathLike = Union[str, Path]


def tiny_overrides(data_root: PathLike, scale: int = 64, iters: int = 300, base_channels: int = 16,
                   batch_size: int = 4, workers: int = 2, lr: Optional[float] = None,
                   val_interval: Optional[int] = None) -> List[str]:
    """``--cfg-options`` that shrink a UNet-S5-D16 config of this project to a CPU-sized run.

    Slices are resized to ``scale``², the UNet gets ``base_channels`` (decode head widened to match), the
    20k schedule becomes ``iters`` iterations (poly LR over the same span) with one checkpoint at the end.
    """
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
    ]
    if lr is not None:
        opts.append(f'optim_wrapper.optimizer.lr={lr}')
    return opts


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
