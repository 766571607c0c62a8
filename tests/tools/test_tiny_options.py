"""tools/tiny_options.py: the printed line reaches mmengine's --cfg-options parser the same pasted or as
``$(...)``, and bad input is one line with a non-zero exit. (That the line makes the run it says: the session's
``cranium_model`` trains with it, ``test_mim_round_trip.py`` checks the run and tests with the same line.)"""
from __future__ import annotations

import argparse
import ast
import shlex
import subprocess
import sys

import pytest
from mmengine.config import DictAction

from mmseg_medical.runs import usable_cores

ARGV = "import sys; print(repr(sys.argv[1:]))"


def _tool(repo, *args):
    return subprocess.run([sys.executable, 'tools/tiny_options.py', *map(str, args)], cwd=repo, capture_output=True,
                          text=True)


def _cfg_options(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv).cfg_options


def test_pasted_and_substituted_lines_give_the_same_options(cranium_data, shell):
    proc = _tool(shell.repo, cranium_data, '--scale', '48', '--iters', '7', '--base-channels', '4', '--workers', '0')
    assert proc.returncode == 0
    cores = usable_cores()    # --workers 0: the run may take every core (workers x threads <= cores)
    assert proc.stderr.splitlines() == [f'CPU threads: torch {cores} x 1 dataloader worker(s) on {cores} cores '
                                        '(workers x threads <= cores; torch alone would take every core)']
    [line] = proc.stdout.splitlines()
    assert line.startswith('--cfg-options ')
    show = f'{shlex.quote(sys.executable)} -c {shlex.quote(ARGV)}'
    pasted = subprocess.run(['bash', '-c', f'{show} {line}'], capture_output=True, text=True, check=True).stdout
    tool = ' '.join(shlex.quote(str(w)) for w in [sys.executable, 'tools/tiny_options.py', cranium_data, '--scale',
                                                   '48', '--iters', '7', '--base-channels', '4', '--workers', '0'])
    substituted = subprocess.run(['bash', '-c', f'{show} $({tool})'], capture_output=True, text=True, check=True,
                                 cwd=shell.repo).stdout
    options = _cfg_options(ast.literal_eval(pasted))
    assert _cfg_options(ast.literal_eval(substituted)) == options
    root = str(cranium_data).rstrip('/') + '/'
    assert options['model.data_preprocessor.size'] == (48, 48)          # tuples, as the configs write them
    assert options['train_dataloader.dataset.pipeline.2.scale'] == (48, 48)
    assert options['test_dataloader.dataset.pipeline.1.scale'] == (48, 48)
    assert options['test_dataloader.dataset.data_root'] == root
    assert options['model.backbone.base_channels'] == 4 and options['train_cfg.max_iters'] == 7
    assert options['test_dataloader.persistent_workers'] is False
    assert options['default_hooks.threads.type'] == 'CpuThreadsHook'
    assert options['default_hooks.threads.threads'] == cores


def test_threads_keep_workers_times_threads_within_the_cores(cranium_data, shell):
    """Two workers: the line sets cores // 2 torch threads (at least 1), --threads overrides it."""
    cores = usable_cores()
    for extra, threads in (((), max(1, cores // 2)), (('--threads', '3'), 3)):
        proc = _tool(shell.repo, cranium_data, '--workers', '2', *extra)
        assert proc.returncode == 0, proc.stderr
        options = _cfg_options(shlex.split(proc.stdout))
        assert options['default_hooks.threads.threads'] == threads and options['default_hooks.threads.workers'] == 2
        assert proc.stderr.startswith(f'CPU threads: torch {threads} x 2 dataloader worker(s) on {cores} cores')


@pytest.mark.parametrize('args, code, message', [
    (['{missing}'], 1, 'error: {missing}: not found'),
    (['{raw}'], 1, 'error: {raw}: not a prepared dataset (no manifest.csv in it or in a subfolder); run '
                   'tools/prepare_dataset.py'),
    (['{data}', '--iters', '0'], 2, 'error: tiny_options.py: argument --iters: must be >= 1, got 0 (see --help)'),
    (['{data}', '--scale', 'big'], 2, "error: tiny_options.py: argument --scale: expected an integer, got 'big' "
                                      '(see --help)'),
    ([], 2, 'error: tiny_options.py: the following arguments are required: data (see --help)'),
])
def test_bad_input_is_one_line(cranium_data, shell, tmp_path, args, code, message):
    names = {'missing': tmp_path / 'nope', 'raw': tmp_path, 'data': cranium_data}
    proc = _tool(shell.repo, *[a.format(**names) for a in args])
    assert proc.returncode == code and proc.stdout == f'{FAILED}\n'     # the word that fails the consuming command
    assert proc.stderr.splitlines() == [message.format(**names)]


FAILED = '--tiny-options-failed--see-its-error-line-above'
CONFIG = 'configs/cranium/fcn-unet-s5-d16-ce-1.0-dice-3.0_unet_1xb16-0.01-20k_cranium-512x512.py'


@pytest.mark.parametrize('consumer', ['tools/train.py', 'mim train', 'tools/infer_volume.py'])
def test_a_failing_line_fails_the_command_that_consumes_it(cranium_data, shell, tmp_path, consumer):
    """A typo in DATA inside $(...): the consuming command, as the README writes it, stops with argparse's
    "unrecognized arguments" naming the failure word, after tiny_options' own error line; nothing is trained."""
    typo = str(cranium_data)[:-1]                                      # data/cranum
    tool = ' '.join(shlex.quote(w) for w in [sys.executable, 'tools/tiny_options.py', typo])
    work = tmp_path / 'work'
    python = shlex.quote(sys.executable)
    head = {'tools/train.py': f'{python} tools/train.py {CONFIG}',
            'mim train': shell.mim('train', 'mmseg', CONFIG, '--gpus', '0'),
            'tools/infer_volume.py': f'{python} tools/infer_volume.py {CONFIG} x.pth --input x --output {work}'}
    line = head[consumer] + (f' --work-dir {shlex.quote(str(work))}' if consumer != 'tools/infer_volume.py' else '')
    proc = subprocess.run(['bash', '-c', f'{line} $({tool})'], cwd=shell.repo, capture_output=True, text=True)
    assert proc.returncode != 0
    assert f'error: {typo}: not found' in proc.stderr
    assert f'unrecognized arguments: {FAILED}' in proc.stderr
    assert not work.exists() or not [p for p in work.rglob('*') if p.is_file()]


def test_a_python_without_the_package_still_fails_the_consumer(shell, tmp_path):
    """``python -S`` (no site-packages): the import fails, and the failure word is printed all the same."""
    proc = subprocess.run([sys.executable, '-S', 'tools/tiny_options.py', str(tmp_path)], cwd=shell.repo,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == f'{FAILED}\n'
    assert proc.stderr.splitlines()[-1].startswith('error: tiny_options.py: cannot import mmseg_medical')
