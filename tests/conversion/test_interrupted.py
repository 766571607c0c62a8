"""A killed conversion (SIGKILL) leaves nothing that the next run does not clean; a failing --overwrite
keeps the previous output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.conversion.engine import clean_stale
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import LABELS_DIR, read_manifest
from mmseg_medical.synthetic import write_cranium_release

REPO = Path(__file__).resolve().parents[2]
PATIENTS, SLICES = 16, 12


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('raw')
    write_cranium_release(root, num_patients=PATIENTS, num_slices=SLICES, size=96, seed=2, layouts=('nifti',))
    return root


def _cli(src: Path, out: Path, *extra: str) -> list:
    return [sys.executable, str(REPO / 'tools/prepare_dataset.py'), 'cranium', '--src', str(src), '--out', str(out),
            '--workers', '1', *extra]


def test_sigkill_mid_run_then_rerun_gives_complete_output(release, tmp_path):
    out = tmp_path / 'cranium'
    proc = subprocess.Popen(_cli(release, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    staging = []
    while time.monotonic() < deadline and proc.poll() is None:  # wait until slices are being written
        staging = [p for p in tmp_path.glob('.cranium.tmp-*') if len(list((p / 'images').glob('*.png'))) > 5]
        if staging:
            break
        time.sleep(0.05)
    assert staging and proc.poll() is None, 'conversion finished before it could be killed; make it bigger'
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and staging[0].exists()                     # a half-written staging folder
    assert list((staging[0] / LABELS_DIR).glob('*.nii.gz'))             # with source labels (written first)
    done = subprocess.run(_cli(release, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ['cranium']           # the stale folder is gone
    rows = read_manifest(out)
    assert len(rows) == PATIENTS * SLICES and all((out / r.image).is_file() and (out / r.mask).is_file() for r in rows)
    assert sorted(p.name for p in (out / 'images').iterdir()) == sorted(f'{r.stem}.png' for r in rows)
    assert sorted(p.name for p in (out / LABELS_DIR).iterdir()) == sorted({f'{r.case_id}.nii.gz' for r in rows})


def test_a_case_failing_with_skip_bad_leaves_no_source_label(release, tmp_path):
    """The failure comes after the case's label was written (in the intensity rule): it is removed with the
    case's slices; a failure without --skip-bad leaves no output at all."""
    converter = CONVERTERS['cranium'](skip_bad=True)
    to_uint8 = converter.to_uint8

    def failing(case, image):
        if case.case_id == '052':
            raise MedSegError(case.image, 'intensity rule failed')
        return to_uint8(case, image)

    converter.to_uint8 = failing
    out = tmp_path / 'cranium'
    stats = prepare(converter, release, out, workers=1, previews=0)
    assert list(stats['skipped']) == ['052']
    labels = sorted(p.name for p in (out / LABELS_DIR).iterdir())
    assert len(labels) == PATIENTS - 1 and '052.nii.gz' not in labels
    assert not list((out / 'images').glob('052_*')) and not list((out / 'masks').glob('052_*'))
    converter = CONVERTERS['cranium']()
    converter.to_uint8 = failing
    with pytest.raises(MedSegError, match='intensity rule failed'):
        prepare(converter, release, tmp_path / 'other', workers=1, previews=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cranium']


def test_a_running_conversions_staging_is_left_alone(tmp_path):
    out = tmp_path / 'cranium'
    mine = tmp_path / f'.cranium.tmp-{os.getpid()}-abcd1234'      # this (live) process
    dead = tmp_path / '.cranium.tmp-999999999-abcd1234'            # no such process
    for folder in (mine, dead):
        folder.mkdir()
    clean_stale(out)
    assert mine.exists() and not dead.exists()


def test_killed_between_the_two_renames_restores_the_old_output(tmp_path):
    out = tmp_path / 'cranium'
    old = tmp_path / '.cranium.old-999999999-abcd1234'
    old.mkdir()
    (old / 'manifest.csv').write_text('x')
    clean_stale(out)
    assert (out / 'manifest.csv').read_text() == 'x' and not old.exists()


def test_failing_overwrite_keeps_the_previous_output(release, tmp_path):
    src = tmp_path / 'raw'
    write_cranium_release(src, num_patients=3, num_slices=4, size=32, seed=0, layouts=('nifti',))
    out = tmp_path / 'cranium'
    prepare(CONVERTERS['cranium'](), src, out, workers=1, previews=0)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
    scan = src / 'Cranium' / RELEASE / 'ct_scans' / '050.nii'
    scan.write_bytes(scan.read_bytes()[:1000])                            # corrupt one input
    with pytest.raises(MedSegError, match='cannot read NIfTI'):
        prepare(CONVERTERS['cranium'](), src, out, workers=1, previews=0, overwrite=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


@pytest.mark.parametrize('argv, message', [
    (['--val-fraction', '1.5'], 'val_fraction must be in (0, 1), got 1.5'),
    (['--val-fraction', 'x'], "argument --val-fraction: could not convert string to float: 'x'"),
    (['--folds', '1'], 'need at least 2 folds, got 1'),
])
def test_bad_split_options_are_usage_errors_before_conversion(tmp_path, argv, message):
    proc = subprocess.run(_cli(tmp_path / 'nowhere', tmp_path / 'out', *argv), capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr
    assert not (tmp_path / 'out').exists()
