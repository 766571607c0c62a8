"""Where the benchmark's runs execute: in this process one after another, as up to K processes at once on this
machine (``--jobs K``), or each as its own Slurm job (``--launcher slurm``).

A run (:class:`Unit`: train + test of one config, or one model of one fold of a fold preset) is described by a
JSON spec that ``python -m mmseg_medical.benchmark_executors SPEC`` executes (:func:`job_main`); the executors
only start that command and watch it, the runner reads the finished run folders afterwards.

Slurm jobs are submitted with plain ``sbatch`` rather than submitit: submitit reads job states from ``sacct``, which
needs Slurm's accounting database, and many clusters (and the test cluster) run without one; ``squeue`` (queued or
running), ``scontrol show job`` (the final state while Slurm remembers it) and the run folder's own
``result.json`` (written only by a run that finished) tell the runner all it needs.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

WORKER_MODULE = __name__
#: Seconds between two looks at the running jobs (``MMSEG_MEDICAL_POLL_S`` overrides it).
POLL_S = float(os.environ.get('MMSEG_MEDICAL_POLL_S', '2'))
#: Slurm states of a job that is still queued or running (squeue's long names).
ACTIVE = {'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'RESIZING', 'SIGNALING',
          'STAGE_OUT', 'REQUEUE_HOLD', 'REQUEUE_FED'}


def now_iso() -> str:
    """The current UTC time in ISO 8601 with milliseconds (``2026-12-07T23:40:01.123+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec='milliseconds')


@dataclass
class Unit:
    """One run of the benchmark: ``label`` names it in messages, ``run_dir`` holds its files, ``spec`` is what
    :func:`job_main` executes, ``done`` says whether its results are complete."""

    label: str
    run_dir: Path
    spec: dict
    done: Callable[[], bool]
    job_id: Optional[str] = field(default=None, compare=False)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log (or a note that there is none)."""
    if not path.is_file():
        return f'({path} does not exist)'
    return ''.join(path.read_text(errors='replace').splitlines(keepends=True)[-lines:]).rstrip('\n')


def write_spec(unit: Unit, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'spec.json'
    path.write_text(json.dumps(unit.spec, indent=1) + '\n')
    return path


def worker_command(spec_path: Path, launcher: str) -> List[str]:
    return [sys.executable, '-m', WORKER_MODULE, '--launcher', launcher, str(spec_path)]


class Progress:
    """Prints ``<what>: Q queued, R running, D done, F failed`` whenever the counts change."""

    def __init__(self, what: str) -> None:
        self.what, self.last = what, None

    def show(self, queued: int, running: int, done: int, failed: int) -> None:
        counts = (queued, running, done, failed)
        if counts != self.last:
            self.last = counts
            print(f'{self.what}: {queued} queued, {running} running, {done} done, {failed} failed', flush=True)


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
            time.sleep(min(POLL_S, 0.5))
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
                time.sleep(POLL_S)
        return failed


def job_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mmseg_medical.benchmark_executors [--launcher local|slurm] SPEC``: execute one run."""
    parser = argparse.ArgumentParser(prog=f'python -m {WORKER_MODULE}', description=job_main.__doc__)
    parser.add_argument('--launcher', choices=('local', 'slurm'), default='local')
    parser.add_argument('spec', type=Path)
    args = parser.parse_args(argv)
    from . import benchmark
    job_id = os.environ.get('SLURM_JOB_ID') if args.launcher == 'slurm' else None
    try:
        benchmark.execute_unit(json.loads(args.spec.read_text()), launcher=args.launcher, job_id=job_id)
    except benchmark.RUN_ERRORS as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(job_main())
