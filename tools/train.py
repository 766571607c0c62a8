#!/usr/bin/env python
"""Train a config with mmengine's Runner (same as ``mim train mmseg``), multi-process on GPUs *or* CPUs.

Single process: ``python tools/train.py CONFIG``. Several processes on one or more machines:
``bash tools/dist_train.sh CONFIG NPROC [options]`` (torchrun, ``--launcher pytorch``), or Slurm's tasks:
``srun --ntasks N python tools/train.py CONFIG --launcher slurm`` (ranks from ``SLURM_PROCID`` / ``SLURM_NTASKS``,
the master the first host of ``SLURM_NODELIST``, as mmengine's slurm launcher). On GPUs everything is
left to mmengine (NCCL). On a CPU-only torch, mmengine 0.10.7's ``init_dist`` calls
``torch.cuda.set_device`` and DDP is given ``device_ids``; so this driver opens the gloo process group
itself first, wraps the model without ``device_ids`` and turns SyncBN (CUDA only) into BN.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in work-dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _sync_bn_to_bn(node):
    """Replace every ``type='SyncBN'`` in a config subtree by ``'BN'`` (SyncBN needs CUDA)."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def slurm_environment() -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT of a Slurm task, as mmengine's ``_init_dist_slurm``
    sets them (which then calls ``torch.cuda.set_device``: not possible on a CPU-only torch)."""
    import subprocess

    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']], capture_output=True,
                               text=True, check=True).stdout.split()
        os.environ['MASTER_ADDR'] = hosts[0]


def prepare_cpu_distributed(cfg: Config) -> None:
    """Open a gloo process group and adapt the model wrapper for CPU-only multi-process training."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)
    _sync_bn_to_bn(cfg.model)


def main() -> None:
    import torch

    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    if args.launcher in ('pytorch', 'slurm') and not torch.cuda.is_available():
        if args.launcher == 'slurm':
            slurm_environment()
        prepare_cpu_distributed(cfg)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
