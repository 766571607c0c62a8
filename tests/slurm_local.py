"""A one-node Slurm cluster on localhost for the benchmark's Slurm tests: Debian's ``slurm-wlm`` and ``munge``
packages, run as root. :func:`start` writes ``slurm.conf`` (this machine, its CPUs, partition ``debug``,
accounting off) and starts ``munged``, ``slurmctld`` and ``slurmd``; :func:`stop` ends the daemons it started by
their pid files."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

DAEMONS = ('munged', 'slurmctld', 'slurmd')


def missing() -> Optional[str]:
    """Why a local cluster cannot start here (None: it can try)."""
    if os.name != 'posix' or os.geteuid() != 0:
        return 'the local Slurm cluster runs its daemons as root'
    absent = [p for p in ('munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'srun')
              if shutil.which(p) is None and not Path('/usr/sbin', p).exists()]
    if absent:
        return f'{", ".join(absent)} not installed (apt-get install slurm-wlm munge)'
    if not Path('/etc/munge/munge.key').is_file():
        return '/etc/munge/munge.key is missing (the munge package creates it)'
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path('/usr/sbin', name))


def write_conf(folder: Path, cpus: int) -> Path:
    host = socket.gethostname().split('.')[0]
    conf = folder / 'slurm.conf'
    conf.write_text('\n'.join([
        'ClusterName=mmsegmedical', f'SlurmctldHost={host}', 'SlurmUser=root', 'SlurmdUser=root',
        f'StateSaveLocation={folder / "state"}', f'SlurmdSpoolDir={folder / "spool"}',
        f'SlurmctldPidFile={folder / "slurmctld.pid"}', f'SlurmdPidFile={folder / "slurmd.pid"}',
        f'SlurmctldLogFile={folder / "slurmctld.log"}', f'SlurmdLogFile={folder / "slurmd.log"}',
        'AuthType=auth/munge', 'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
        'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core', 'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none', 'MpiDefault=none', 'ReturnToService=2',
        'SchedulerType=sched/builtin', 'MinJobAge=600', 'KillWait=5', 'SlurmctldTimeout=30', 'SlurmdTimeout=30',
        f'NodeName={host} CPUs={cpus} State=UNKNOWN',
        f'PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP', '']))
    return conf


def _alive(pid_file: Path) -> Optional[int]:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(folder: Path, cpus: Optional[int] = None, timeout: float = 60.0) -> Dict[str, str]:
    """Start the cluster with its state under ``folder``; returns the environment (``SLURM_CONF``) its clients
    need. Raises RuntimeError naming the daemon's log when the node does not come up idle."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ('state', 'spool'):
        (folder / sub).mkdir(exist_ok=True)
    cpus = cpus or os.cpu_count() or 1
    conf = write_conf(folder, cpus)
    # munged as user munge, its socket where the clients (slurm's auth plugin) look for it: /run/munge
    run_dir = Path('/run/munge')
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, 'munge', 'munge')
    started: List[str] = []
    if _alive(run_dir / 'munged.pid') is None:
        subprocess.run(['runuser', '-u', 'munge', '--', _exe('munged'), '--force'], check=True,
                       capture_output=True)
        started.append('munged')
    env = {'SLURM_CONF': str(conf)}
    full_env = {**os.environ, **env}
    subprocess.run([_exe('slurmctld'), '-f', str(conf)], check=True, env=full_env, capture_output=True)
    subprocess.run([_exe('slurmd'), '-f', str(conf)], check=True, env=full_env, capture_output=True)
    (folder / 'started').write_text('\n'.join(started))
    deadline = time.monotonic() + timeout
    state = ''
    while time.monotonic() < deadline:
        proc = subprocess.run(['sinfo', '-h', '-o', '%T'], env=full_env, capture_output=True, text=True)
        state = proc.stdout.strip()
        if state.rstrip('*') == 'idle':
            return env
        time.sleep(0.5)
    stop(folder)
    raise RuntimeError(f'the local Slurm node did not come up (state {state!r}); see {folder}/slurmctld.log and '
                       f'{folder}/slurmd.log')


def stop(folder: Path) -> None:
    """SIGTERM the daemons this cluster started (their pid files), slurmd first, and wait for them to exit."""
    pid_files = [folder / 'slurmd.pid', folder / 'slurmctld.pid']
    if 'munged' in (folder / 'started').read_text().split() if (folder / 'started').is_file() else []:
        pid_files.append(Path('/run/munge/munged.pid'))
    for pid_file in pid_files:
        pid = _alive(pid_file)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _alive(pid_file) is None:
                break
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
