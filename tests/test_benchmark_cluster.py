"""The benchmark's executors with real processes and a real Slurm: ``--jobs 2`` on this machine and
``--launcher slurm`` on a one-node cluster on localhost (tests/slurm_local.py: Debian's slurm-wlm and munge, run
as root). Checked against: the clock times the runs record (overlap), ``squeue`` seen from outside the runner
(two jobs running at once), ``scancel``, the rows of a sequential run's ``results.md``, and mmengine's own log of a
2-task DDP run. Without Slurm (or root) the Slurm tests skip; with ``REQUIRE_SLURM=1`` (``.ci/run``) they fail."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import importlib.util

import pytest

from mmseg_medical.benchmark import PRESETS, main
from mmseg_medical.runs import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('slurm_local', Path(__file__).with_name('slurm_local.py'))
slurm_local = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slurm_local)
CONFIGS = [str(REPO / c) for c in PRESETS['cranium-2.5d']]


def slurm_required() -> bool:
    return os.environ.get('REQUIRE_SLURM', '').strip().lower() not in ('', '0', 'false', 'no')


@pytest.fixture(scope='module')
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster (partition ``debug``); ``SLURM_CONF`` points the clients at it."""
    why = slurm_local.missing()
    if why:
        if slurm_required():
            pytest.fail(f'Slurm is required (REQUIRE_SLURM) but {why}', pytrace=False)
        pytest.skip(why)
    folder = tmp_path_factory.mktemp('slurm')
    try:
        env = slurm_local.start(folder)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        if slurm_required():
            pytest.fail(f'the local Slurm cluster did not start: {exc}', pytrace=False)
        pytest.skip(f'the local Slurm cluster did not start: {exc}')
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield folder
        subprocess.run(['scancel', '--user', 'root'], capture_output=True)
        slurm_local.stop(folder)


@pytest.fixture(scope='module')
def options(cranium_data):
    return tiny_overrides(cranium_data, scale=32, iters=2, workers=0, threads=1)


@pytest.fixture(scope='module')
def sequential(options, tmp_path_factory):
    """The rows of results.md of the two configs run one after another in this process (today's runner)."""
    work = tmp_path_factory.mktemp('sequential')
    assert main(['--configs', *CONFIGS, '--work-dir', str(work), '--cfg-options', *options]) == 0
    return table_rows(work)


def table_rows(work: Path):
    return [ln for ln in (work / 'results.md').read_text().splitlines() if ln.startswith('| **')]


def results(work: Path):
    return [json.loads(p.read_text()) for p in sorted(work.glob('*/result.json'))]


def overlap(a: dict, b: dict) -> bool:
    start = max(datetime.fromisoformat(a['started']), datetime.fromisoformat(b['started']))
    return start < min(datetime.fromisoformat(a['finished']), datetime.fromisoformat(b['finished']))


def benchmark(*args: str) -> subprocess.Popen:
    env = {**os.environ, 'MMSEG_MEDICAL_POLL_S': '0.5'}
    return subprocess.Popen([sys.executable, str(REPO / 'tools/benchmark.py'), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def submissions(out: str) -> list:
    """The runner's ``submitted <run>: Slurm job <id>`` lines."""
    return [line for line in out.splitlines() if line.startswith('submitted ')]


def squeue() -> dict:
    out = subprocess.run(['squeue', '-h', '-o', '%i %T'], capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


def test_jobs_2_runs_two_at_once_with_the_sequential_rows(options, sequential, tmp_path, capsys):
    assert main(['--configs', *CONFIGS, '--work-dir', str(tmp_path), '--jobs', '2', '--cfg-options', *options]) == 0
    done = results(tmp_path)
    assert [r['launcher'] for r in done] == ['local', 'local'] and all(r['job_id'] is None for r in done)
    assert overlap(*done), done
    assert table_rows(tmp_path) == sequential
    capsys.readouterr()
    assert main(['--configs', *CONFIGS, '--work-dir', str(tmp_path), '--jobs', '2', '--cfg-options', *options]) == 0
    out = capsys.readouterr().out
    assert out.count('skip ') == 2 and 'start ' not in out


def test_slurm_runs_two_jobs_at_once_and_a_rerun_submits_nothing(slurm_cluster, options, sequential, tmp_path):
    argv = ['--configs', *CONFIGS, '--work-dir', str(tmp_path), '--launcher', 'slurm', '--partition', 'debug',
            '--cpus-per-run', '1', '--cfg-options', *options]
    proc = benchmark(*argv)
    most_running = 0
    while proc.poll() is None:
        most_running = max(most_running, list(squeue().values()).count('RUNNING'))
        time.sleep(0.3)
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert most_running == 2, out
    done = results(tmp_path)
    assert [r['launcher'] for r in done] == ['slurm', 'slurm']
    assert all(r['job_id'].isdigit() for r in done) and done[0]['job_id'] != done[1]['job_id']
    assert overlap(*done), done
    assert table_rows(tmp_path) == sequential
    for r in done:  # each job's log in its run folder
        assert (tmp_path.glob(f'*/slurm/job-{r["job_id"]}.log'))
    rerun = benchmark(*argv)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, out + err
    assert submissions(out) == [] and out.count('skip ') == 2


def test_a_cancelled_job_fails_alone_and_only_it_is_resubmitted(slurm_cluster, options, tmp_path):
    argv = ['--configs', *CONFIGS, '--work-dir', str(tmp_path), '--launcher', 'slurm', '--partition', 'debug',
            '--cpus-per-run', '1', '--cfg-options', *options]
    proc = benchmark(*argv)
    victim, name = None, Path(CONFIGS[1]).name
    while proc.poll() is None and victim is None:
        jobs = {json.loads(p.read_text())['label']: json.loads(p.read_text())['job_id']
                for p in tmp_path.glob('*/slurm/job.json')}
        states = squeue()
        if len(jobs) == 2 and all(states.get(j) == 'RUNNING' for j in jobs.values()):
            victim = jobs[name]
            subprocess.run(['scancel', victim], check=True)
        time.sleep(0.3)
    out, err = proc.communicate()
    assert victim is not None, out + err
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == f'error: 1 run(s) failed: {name}'
    assert f'error: {name}: Slurm job {victim} ended CANCELLED' in err
    (kept,) = results(tmp_path)
    assert kept['config'] == Path(CONFIGS[0]).name and kept['launcher'] == 'slurm'
    rerun = benchmark(*argv)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, out + err
    assert len(submissions(out)) == 1 and submissions(out)[0].startswith(f'submitted {name}: Slurm job ')
    assert f'resubmit {name}: Slurm job {victim} ended CANCELLED' in out
    assert out.count('skip ') == 1
    assert sorted(r['config'] for r in results(tmp_path)) == sorted(Path(c).name for c in CONFIGS)



def test_a_rerun_reattaches_to_queued_or_running_jobs(slurm_cluster, options, tmp_path):
    """The runner stopped while its jobs run: a re-run waits for those jobs (no second submission)."""
    argv = ['--configs', *CONFIGS, '--work-dir', str(tmp_path), '--launcher', 'slurm', '--partition', 'debug',
            '--cpus-per-run', '1', '--cfg-options', *options]
    first = benchmark(*argv)
    jobs = {}
    while first.poll() is None and len(jobs) < 2:
        jobs = {json.loads(p.read_text())['label']: json.loads(p.read_text())['job_id']
                for p in tmp_path.glob('*/slurm/job.json')}
        time.sleep(0.2)
    first.kill()
    first.communicate()
    states = squeue()
    assert len(jobs) == 2 and all(states.get(j) in ('PENDING', 'RUNNING') for j in jobs.values()), (jobs, states)
    rerun = benchmark(*argv)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, out + err
    assert submissions(out) == []
    for name, job_id in jobs.items():
        assert f'attach {name}: Slurm job {job_id} is ' in out
    assert sorted(r['job_id'] for r in results(tmp_path)) == sorted(jobs.values())

def test_a_two_task_ddp_run_trains_under_slurm_with_gloo(slurm_cluster, cranium_data, tmp_path):
    options = tiny_overrides(cranium_data, scale=32, iters=2, workers=0, batch_size=2, threads=1)
    assert main(['--configs', CONFIGS[0], '--work-dir', str(tmp_path), '--launcher', 'slurm', '--partition', 'debug',
                 '--gpus-per-run', '0', '--tasks-per-run', '2', '--cfg-options', *options]) == 0
    (done,) = results(tmp_path)
    assert done['launcher'] == 'slurm' and done['job_id'].isdigit()
    script = next(tmp_path.glob('*/slurm/job.sh')).read_text()
    assert '#SBATCH --ntasks=2' in script and '#SBATCH --partition=debug' in script
    log = next(tmp_path.glob('*/train/*/*.log')).read_text()  # mmengine's log of rank 0
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'Iter(train) [2/2]' in log


def test_launcher_options_are_checked(tmp_path, capsys):
    for argv, message in ((['--partition', 'debug'], '--partition go with --launcher slurm'),
                          (['--launcher', 'slurm'], '--launcher slurm needs --partition P'),
                          (['--launcher', 'slurm', '--partition', 'p', '--jobs', '2'], '--jobs goes with'),
                          (['--jobs', '0'], '--jobs must be >= 1')):
        with pytest.raises(SystemExit) as exit_:
            main(['--configs', CONFIGS[0], '--work-dir', str(tmp_path), *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err, argv
