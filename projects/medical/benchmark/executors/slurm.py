"""Runs as Slurm jobs (``--launcher slurm``), submitted with plain ``sbatch``.

Not submitit: submitit reads job states from ``sacct``, which needs Slurm's accounting database, and many clusters
(and the test cluster) run without one; ``squeue`` (queued or running), ``scontrol show job`` (the final state while
Slurm remembers it) and the run folder's own ``result.json`` (written only by a run that finished) tell the runner
all it needs.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import base
from .base import Progress, Unit, now_iso, tail, worker_command, write_spec


#: Slurm states of a job that is still queued or running (squeue's long names).
ACTIVE = {'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'RESIZING', 'SIGNALING',
          'STAGE_OUT', 'REQUEUE_HOLD', 'REQUEUE_FED'}


def slurm(args: Sequence[str]) -> subprocess.CompletedProcess:
    """A Slurm client command (its output as text)."""
    return subprocess.run(list(args), capture_output=True, text=True)


def queue_states() -> Dict[str, str]:
    """{job id: state} of the jobs Slurm has queued or running (``squeue``)."""
    proc = slurm(['squeue', '-h', '-o', '%i %T'])
    if proc.returncode != 0:
        raise RuntimeError(f'squeue failed (exit {proc.returncode}): {proc.stderr.strip()}')
    return dict(line.split()[:2] for line in proc.stdout.splitlines() if line.strip())


def final_state(job_id: str) -> str:
    """A job's state as ``scontrol show job`` remembers it after it left the queue (``CANCELLED``, ``FAILED``…),
    ``ENDED`` once Slurm forgot it."""
    proc = slurm(['scontrol', 'show', 'job', '-o', job_id])
    for word in proc.stdout.split():
        if word.startswith('JobState='):
            return word.split('=', 1)[1]
    return 'ENDED'


class SlurmExecutor:
    """Each run as its own Slurm job (``--launcher slurm``): ``sbatch`` of a script that runs :func:`job_main`,
    its log ``<run dir>/slurm/job-<id>.log``, its id in ``<run dir>/slurm/job.json``. At most ``max_jobs`` jobs
    are in the queue at once. A run whose recorded job is still queued or running is re-attached (not submitted
    again); one whose job ended without a result is resubmitted, with the end of that job's log printed."""

    def __init__(self, partition: str, gpus_per_run: int = 0, tasks_per_run: int = 1,
                 cpus_per_run: Optional[int] = None, max_jobs: Optional[int] = None,
                 slurm_args: Sequence[str] = (), repo: Optional[Path] = None) -> None:
        self.partition, self.gpus_per_run, self.tasks_per_run = partition, gpus_per_run, tasks_per_run
        self.cpus_per_run, self.max_jobs, self.slurm_args = cpus_per_run, max_jobs, list(slurm_args)
        self.repo = repo or Path.cwd()

    def script(self, unit: Unit, spec: Path) -> str:
        """The batch script of one run: what it requests and the command it runs."""
        folder = spec.parent
        lines = ['#!/bin/bash', f'#SBATCH --job-name=bench-{unit.run_dir.name}',
                 f'#SBATCH --output={folder}/job-%j.log', f'#SBATCH --partition={self.partition}',
                 '#SBATCH --nodes=1', f'#SBATCH --ntasks={self.tasks_per_run}']
        if self.cpus_per_run:
            lines.append(f'#SBATCH --cpus-per-task={self.cpus_per_run}')
        if self.gpus_per_run:
            lines.append(f'#SBATCH --gres=gpu:{self.gpus_per_run}')
        lines += ['# a DDP run (several tasks) meets on a port of its own: jobs sharing a node do not collide',
                  'export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))',
                  f'cd {shlex.quote(str(self.repo))}',
                  'exec ' + ' '.join(shlex.quote(w) for w in worker_command(spec, 'slurm')), '']
        return '\n'.join(lines)

    def submit(self, unit: Unit) -> str:
        folder = unit.run_dir / 'slurm'
        spec = write_spec(unit, folder)
        script = folder / 'job.sh'
        script.write_text(self.script(unit, spec))
        proc = slurm(['sbatch', '--parsable', *self.slurm_args, str(script)])
        if proc.returncode != 0:
            raise RuntimeError(f'sbatch {script} failed (exit {proc.returncode}): {proc.stderr.strip()}')
        job_id = proc.stdout.strip().split(';')[0]
        (folder / 'job.json').write_text(json.dumps({'job_id': job_id, 'submitted': now_iso(),
                                                     'label': unit.label}, indent=1) + '\n')
        print(f'submitted {unit.label}: Slurm job {job_id} (log: {self.log(unit, job_id)})', flush=True)
        return job_id

    @staticmethod
    def log(unit: Unit, job_id: str) -> Path:
        return unit.run_dir / 'slurm' / f'job-{job_id}.log'

    @staticmethod
    def recorded_job(unit: Unit) -> Optional[str]:
        path = unit.run_dir / 'slurm' / 'job.json'
        return json.loads(path.read_text())['job_id'] if path.is_file() else None

    def run(self, units: Sequence[Unit]) -> List[Unit]:
        states = queue_states()
        queue: List[Unit] = []
        watched: List[Unit] = []
        for unit in units:
            job_id = self.recorded_job(unit)
            if job_id is not None and states.get(job_id) in ACTIVE:
                print(f'attach {unit.label}: Slurm job {job_id} is {states[job_id].lower()} (not submitted again)',
                      flush=True)
                unit.job_id = job_id
                watched.append(unit)
                continue
            if job_id is not None:
                print(f'resubmit {unit.label}: Slurm job {job_id} ended {final_state(job_id)} without a result; '
                      f'the end of {self.log(unit, job_id)}:\n{tail(self.log(unit, job_id))}', flush=True)
            queue.append(unit)
        limit = self.max_jobs or len(units) or 1
        failed: List[Unit] = []
        done = 0
        progress = Progress('Slurm jobs')
        while queue or watched:
            while queue and len(watched) < limit:
                unit = queue.pop(0)
                try:
                    unit.job_id = self.submit(unit)
                except RuntimeError as exc:
                    print(f'error: {unit.label}: {exc}', file=sys.stderr, flush=True)
                    failed.append(unit)
                    continue
                watched.append(unit)
            states = queue_states()
            for unit in [u for u in watched if states.get(u.job_id) not in ACTIVE]:
                watched.remove(unit)
                if unit.done():
                    done += 1
                    continue
                failed.append(unit)
                log = self.log(unit, unit.job_id)
                print(f'error: {unit.label}: Slurm job {unit.job_id} ended {final_state(unit.job_id)} without a '
                      f'result; the end of {log}:\n{tail(log)}', file=sys.stderr, flush=True)
            pending = sum(states.get(u.job_id) == 'PENDING' for u in watched)
            progress.show(len(queue) + pending, len(watched) - pending, done, len(failed))
            if queue or watched:
                time.sleep(base.POLL_S)
        return failed
