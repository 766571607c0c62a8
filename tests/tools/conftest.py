"""A tiny Cranium model trained once for the tools tests, the way the README tells a user to: through bash,
``mim train mmseg CONFIG $(python tools/tiny_options.py DATA ...)``."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmseg_medical.runs import last_checkpoint, mim_executable, run

REPO = Path(__file__).resolve().parents[2]
CRANIUM_CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
#: The tiny run of these tests: 32 x 32 slices, UNet base channels 16 (tiny_options' default), 4 iterations.
TINY = ('--scale', '32', '--iters', '4', '--workers', '0')


def tiny_options(data: Path, *extra: str) -> str:
    """The README's command substitution ``$(python tools/tiny_options.py DATA ...)``, for a bash line."""
    words = [sys.executable, 'tools/tiny_options.py', str(data), *TINY, *extra]
    return '$(' + ' '.join(shlex.quote(w) for w in words) + ')'


def mim(*words) -> str:
    """``mim WORDS...`` as a bash line (each word quoted; a ``$(...)`` word is left to the shell)."""
    return ' '.join(w if str(w).startswith('$(') else shlex.quote(str(w)) for w in (mim_executable(), *words))


def bash(line: str, log: Path) -> None:
    """Run ``line`` with bash in the repository root; its output goes to ``log`` (quoted on failure)."""
    run(['bash', '-c', line], log=log, cwd=REPO)


@pytest.fixture(scope='session')
def shell():
    """The helpers above, for the test modules (``--import-mode=importlib`` does not import a conftest)."""
    return SimpleNamespace(repo=REPO, cranium_config=CRANIUM_CONFIG, tiny_options=tiny_options, mim=mim, bash=bash)


@pytest.fixture(scope='session')
def cranium_model(cranium_data, tmp_path_factory):
    """``work`` (folder), ``options`` (the ``$(...)`` word and one more option) and ``checkpoint`` of a 4-iteration
    Cranium run. A background class weight of 0.002 makes the model predict hemorrhage somewhere after 4
    iterations, so that its scores are not only the empty-prediction constants."""
    work = tmp_path_factory.mktemp('mim')
    options = tiny_options(cranium_data) + " 'model.decode_head.loss_decode.class_weight=[0.002,1.0]'"
    bash(mim('train', 'mmseg', CRANIUM_CONFIG, '--gpus', '0', '--work-dir', work / 'train', options),
         work / 'train.log')
    return SimpleNamespace(work=work, options=options, checkpoint=last_checkpoint(work / 'train'), data=cranium_data)
