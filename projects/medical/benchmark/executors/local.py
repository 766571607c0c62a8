"""Runs on this machine: one after another in this process, or up to K processes at once (``--jobs K``)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence

from . import base
from .base import Progress, Unit, tail, worker_command, write_spec


class InProcessExecutor:
    """The runs one after another in this process (``--launcher local``, ``--jobs 1``: today's runner)."""

    def __init__(self, execute: Callable[[dict], None], errors: tuple) -> None:
        self.execute, self.errors = execute, errors

    def run(self, units: Sequence[Unit]) -> List[Unit]:
        failed = []
        for unit in units:
            try:
                self.execute(unit.spec)
            except self.errors as exc:
                print(f'error: {unit.label}: {exc}', file=sys.stderr)
                failed.append(unit)
        return failed


class LocalExecutor:
    """Up to ``jobs`` runs at once on this machine, each its own process (``--launcher local --jobs K``); with
    ``gpus_per_run`` each gets its own GPUs through ``CUDA_VISIBLE_DEVICES``. Its output goes to
    ``<run dir>/local/job.log``."""

    def __init__(self, jobs: int, gpus_per_run: int = 0, devices: Optional[Sequence[int]] = None) -> None:
        self.jobs, self.gpus_per_run = jobs, gpus_per_run
        self.free = list(devices or [])
        if gpus_per_run:
            self.jobs = max(1, min(jobs, len(self.free) // gpus_per_run))

    def run(self, units: Sequence[Unit]) -> List[Unit]:
        queue, running, failed, done = list(units), {}, [], 0
        progress = Progress(f'local runs (up to {self.jobs} at once)')
        while queue or running:
            while queue and len(running) < self.jobs:
                unit = queue.pop(0)
                folder = unit.run_dir / 'local'
                spec = write_spec(unit, folder)
                env = dict(os.environ)
                gpus = [self.free.pop(0) for _ in range(self.gpus_per_run)]
                if self.gpus_per_run:
                    env['CUDA_VISIBLE_DEVICES'] = ','.join(map(str, gpus))
                log = folder / 'job.log'
                print(f'start {unit.label} (log: {log})', flush=True)
                with open(log, 'w') as f:
                    proc = subprocess.Popen(worker_command(spec, 'local'), stdout=f, stderr=subprocess.STDOUT,
                                            env=env)
                running[proc] = (unit, gpus, log)
            progress.show(len(queue), len(running), done, len(failed))
            time.sleep(min(base.POLL_S, 0.5))
            for proc in [p for p in running if p.poll() is not None]:
                unit, gpus, log = running.pop(proc)
                self.free.extend(gpus)
                if proc.returncode == 0 and unit.done():
                    done += 1
                else:
                    failed.append(unit)
                    print(f'error: {unit.label}: exit {proc.returncode}; the end of {log}:\n{tail(log)}',
                          file=sys.stderr, flush=True)
        progress.show(0, 0, done, len(failed))
        return failed
