"""Prepare never deletes what it did not write: ``--out`` over, around or inside ``--src`` and folders that are not
a prepared dataset are refused with one line and exit 2, with or without ``--overwrite``; every file of the release
or the foreign folder is still there byte for byte (SHA-256 before and after); a prepared dataset is still replaced."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mmseg_medical.conversion.cli import main
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic import write_cranium_release


def tree_hashes(root: Path) -> dict:
    """Relative path → SHA-256 of every file below ``root`` (folders as ``None``, so an emptied folder shows)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob('*'))}


@pytest.fixture
def release(tmp_path) -> Path:
    src = tmp_path / 'raw'
    write_cranium_release(src, num_patients=3, num_slices=4, size=32, seed=0, layouts=('nifti',))
    return src


def _prepare(src: Path, out: Path, *extra: str) -> list:
    return ['cranium', '--src', str(src), '--out', str(out), '--workers', '1', '--previews', '0', *extra]


def _refused(capsys, argv: list, *paths: Path) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith('error: ') and all(str(p) in lines[0] for p in paths), lines[0]
    assert 'pass --overwrite' not in lines[0] and captured.out == ''
    return lines[0]


@pytest.mark.parametrize('overwrite', [(), ('--overwrite',)])
def test_out_equal_to_containing_or_inside_src_is_refused(release, tmp_path, capsys, overwrite):
    before = tree_hashes(tmp_path)
    assert any(h for h in before.values())
    for out in (release, tmp_path, release / 'prepared', release / 'Cranium'):
        _refused(capsys, _prepare(release, out, *overwrite), release, out)
        assert tree_hashes(tmp_path) == before, out
    link = tmp_path.parent / f'{tmp_path.name}-link'
    link.symlink_to(release, target_is_directory=True)       # the release under another name is the release
    try:
        _refused(capsys, _prepare(release, link, *overwrite), release, link)
    finally:
        link.unlink()
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize('overwrite', [(), ('--overwrite',)])
def test_a_foreign_folder_is_never_replaced(release, tmp_path, capsys, overwrite):
    foreign = tmp_path / 'mine'
    (foreign / 'sub').mkdir(parents=True)
    (foreign / 'notes.txt').write_text('my notes\n')
    (foreign / 'sub' / 'scan.nii.gz').write_bytes(os.urandom(256))
    # a raw release's own dataset.json (nnU-Net / Medical Segmentation Decathlon) does not make it a prepared dataset
    nnunet = tmp_path / 'Dataset001_X'
    nnunet.mkdir()
    (nnunet / 'dataset.json').write_text(json.dumps({'name': 'X', 'labels': {'background': 0, 'x': 1},
                                                     'numTraining': 3, 'file_ending': '.nii.gz'}))
    before = tree_hashes(tmp_path)
    for out in (foreign, nnunet):
        line = _refused(capsys, _prepare(release, out, *overwrite), out)
        assert 'not a dataset prepared by tools/prepare_dataset.py' in line and 'never replaces it' in line
    file_out = tmp_path / 'a_file'
    file_out.write_text('x')
    _refused(capsys, _prepare(release, file_out, *overwrite), file_out)
    assert tree_hashes(tmp_path) == {**before, 'a_file': hashlib.sha256(b'x').hexdigest()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]     # no staging folder left either


def test_a_prepared_dataset_is_still_replaced_and_an_empty_folder_used(release, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()                                             # empty: used without --overwrite
    assert main(_prepare(release, out)) == 0
    assert {r.case_id for r in read_manifest(out)} == {'049', '050', '051'}
    other = tmp_path / 'raw2'
    write_cranium_release(other, num_patients=2, num_slices=4, size=32, seed=1, layouts=('nifti',))
    capsys.readouterr()
    assert main(_prepare(other, out)) == 1                  # another release: needs --overwrite (exit 1, as before)
    assert 'pass --overwrite' in capsys.readouterr().err
    card = json.loads((out / 'dataset.json').read_text())
    assert card['prepared_by'] == 'mmseg_medical tools/prepare_dataset.py'
    del card['prepared_by']                                 # a card written before the mark: still recognised
    (out / 'dataset.json').write_text(json.dumps(card))
    assert main(_prepare(other, out, '--overwrite')) == 0
    assert {r.case_id for r in read_manifest(out)} == {'049', '050'}
    assert json.loads((out / 'dataset.json').read_text())['source'] == str(other.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out', 'raw', 'raw2']
