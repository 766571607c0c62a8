"""A checkpoint trained with other --cfg-options is refused everywhere a user can give it, as the README shows
the commands (bash, ``$(python tools/tiny_options.py DATA ...)``): ``mim test``, ``mim train`` with
``load_from`` and with ``--resume``, ``tools/infer_volume.py`` and ``tools/pseudo_label.py`` each stop with one
``error:`` line naming the entry and both shapes and "pass the --cfg-options it was trained with", a non-zero
exit, and no step done (nothing scored, trained, predicted or written).

The tiny model has UNet base channels 16 (the session's ``cranium_model``); the commands build the model with
``--base-channels 8``, so UNet's first conv is 16 x 3 x 3 x 3 in the checkpoint and 8 x 3 x 3 x 3 in the
model (out channels = base channels, 3 BGR input channels, 3 x 3 kernel).
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmseg_medical.checkpoints import ADVICE

FIRST = 'backbone.encoder.0.0.convs.0.conv.weight'


@pytest.fixture(scope='module')
def setup(cranium_model, shell):
    m = cranium_model
    narrow = shell.tiny_options(m.data, '--base-channels', '8')
    hook_line = re.compile(rf'^error: {re.escape(str(m.checkpoint))}: {re.escape(ADVICE)}: {FIRST} is '
                           r"\[16, 3, 3, 3\] in the checkpoint, \[8, 3, 3, 3\] in the model \((\d+) of the "
                           r"model's (\d+) entries differ\)$")
    return m, narrow, hook_line


def _fails(line: str, repo: Path) -> str:
    """Run ``line`` with bash; assert a non-zero exit and exactly one ``error:`` line; return all output."""
    proc = subprocess.run(['bash', '-c', line], cwd=repo, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1, out[-3000:]
    assert 'size mismatch' not in out.replace(errors[0], '')   # no per-parameter warnings before or after
    return out


def _hook_refused(out: str, hook_line) -> None:
    [error] = [ln for ln in out.splitlines() if ln.startswith('error:')]
    match = hook_line.match(error)
    assert match, error
    differ, total = map(int, match.groups())
    assert 1 < differ < total          # the normalisation layers' num_batches_tracked scalars fit


def test_mim_test_refuses(setup, shell, tmp_path):
    m, narrow, hook_line = setup
    pred = tmp_path / 'pred'
    out = _fails(shell.mim('test', 'mmseg', shell.cranium_config, '--checkpoint', m.checkpoint, '--gpus', '0',
                           '--work-dir', tmp_path / 'test', '--out', pred, narrow), shell.repo)
    _hook_refused(out, hook_line)
    assert 'Iter(test)' not in out and not [p for p in pred.rglob('*') if p.is_file()]   # (the folder is made)
    assert 'Testing finished successfully' not in out


def test_mim_train_load_from_refuses(setup, shell, tmp_path):
    m, narrow, hook_line = setup
    work = tmp_path / 'train'
    out = _fails(shell.mim('train', 'mmseg', shell.cranium_config, '--gpus', '0', '--work-dir', work, narrow,
                           f'load_from={m.checkpoint}'), shell.repo)
    _hook_refused(out, hook_line)
    assert 'Iter(train)' not in out and not list(work.glob('*.pth'))


def test_mim_train_resume_refuses(setup, shell, tmp_path):
    """``--resume`` without ``load_from`` takes the checkpoint named by ``work_dir/last_checkpoint``."""
    m, narrow, hook_line = setup
    work = tmp_path / 'train'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(m.checkpoint))
    out = _fails(shell.mim('train', 'mmseg', shell.cranium_config, '--gpus', '0', '--work-dir', work, '--resume',
                           narrow), shell.repo)
    _hook_refused(out, hook_line)
    assert 'Iter(train)' not in out and not list(work.glob('*.pth'))


def _load_model_refused(out: str, checkpoint: Path) -> None:
    """infer_volume / pseudo_label: the same line as mim test's (``check_fits`` inside ``inference.load_model``)."""
    [error] = [ln for ln in out.splitlines() if ln.startswith('error:')]
    assert error.startswith(f'error: {checkpoint}: {ADVICE}: ')
    assert f'{FIRST} is [16, 3, 3, 3] in the checkpoint, [8, 3, 3, 3] in the model' in error


def test_infer_volume_refuses(setup, shell, tmp_path):
    m, narrow, _ = setup
    [scan] = (m.data.parent / 'raw').rglob('ct_scans/051.nii')
    out_dir = tmp_path / 'out'
    words = [sys.executable, 'tools/infer_volume.py', shell.cranium_config, m.checkpoint, '--input', scan,
             '--output', out_dir]
    out = _fails(' '.join(shlex.quote(str(w)) for w in words) + ' ' + narrow, shell.repo)
    _load_model_refused(out, m.checkpoint)
    assert not out_dir.exists()


def test_pseudo_label_refuses(setup, shell, tmp_path):
    m, narrow, _ = setup
    data = tmp_path / 'data'
    shutil.copytree(m.data, data)
    before = sorted(p.relative_to(data) for p in data.rglob('*'))
    words = [sys.executable, 'tools/pseudo_label.py', shell.cranium_config, m.checkpoint, '--data', data,
             '--split', 'val']
    out = _fails(' '.join(shlex.quote(str(w)) for w in words) + ' ' + narrow, shell.repo)
    _load_model_refused(out, m.checkpoint)
    assert sorted(p.relative_to(data) for p in data.rglob('*')) == before
