"""``CpuThreadsHook``: the torch thread count of a CPU-sized run, set in the training / test process.

torch starts as many intra-op threads as the machine has cores, in the main process, while every dataloader
worker runs its own (torch sets one thread per worker). On a machine that also runs anything else this
oversubscribes the cores. :func:`mmseg_medical.runs.tiny_overrides` adds this hook to ``default_hooks`` with
``threads`` from :func:`mmseg_medical.runs.choose_threads` (dataloader workers × torch threads ≤ cores); the
runner's log says what was chosen in one line. ``tools/benchmarks/cpu_threads.py`` measures the difference
(README, "A CPU-sized run": 4.2× faster on a loaded 2-core machine).
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class CpuThreadsHook(Hook):
    """``torch.set_num_threads(threads)`` before the run (train, val or test) starts.

    Args:
        threads: torch intra-op threads of the main process (>= 1); a distributed run on one machine divides
            them by its number of processes.
        workers: the dataloader workers the thread count was chosen for (only said in the log line).
    """

    priority = 'VERY_HIGH'

    def __init__(self, threads: int, workers: int = 0) -> None:
        if int(threads) < 1:
            raise ValueError(f'CpuThreadsHook: threads must be >= 1, got {threads}')
        self.threads, self.workers = int(threads), int(workers)

    def before_run(self, runner) -> None:
        import torch
        from mmengine.dist import get_world_size

        from .runs import usable_cores

        processes = get_world_size()  # distributed on one machine: the cores are shared by the processes
        threads = max(1, self.threads // processes)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        runner.logger.info(f'CPU threads: torch {threads} (was {before}) x {max(1, self.workers)} dataloader '
                           f'worker(s)' + (f' x {processes} processes' if processes > 1 else '')
                           + f' on {usable_cores()} cores (CpuThreadsHook)')
