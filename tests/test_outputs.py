"""Outputs apart from inputs (:mod:`mmseg_medical.outputs`): the one rule, and each tool that writes or replaces a
folder refusing an output equal to, containing or (where read) inside an input with one line naming both paths and
exit 2, every input file byte-identical afterwards (SHA-256 before and after). ``prepare_dataset.py``'s own cases:
``tests/conversion/test_prepare_never_deletes.py``; ``infer_volume`` into a folder with other files:
``tests/test_inference.py``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mmseg_medical.errors import UsageError
from mmseg_medical.outputs import check_apart, listed_files, unlisted_entries, write_listing

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'


def tree_hashes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob('*'))}


def _one_line_exit_2(code: int, err: str, *paths) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith('error: ') and all(str(p) in lines[0] for p in paths), lines[0]
    return lines[0]


def test_check_apart_equal_containing_inside_and_apart(tmp_path):
    src = tmp_path / 'raw'
    (src / 'sub').mkdir(parents=True)
    cases = {src: 'is --src', tmp_path: 'contains --src', src / 'sub' / 'new': 'lies inside --src',
             src / 'sub' / '..': 'is --src'}                              # spelled differently, the same folder
    for out, why in cases.items():
        with pytest.raises(UsageError) as err:
            check_apart(out, '--out', {'--src': src})
        assert str(err.value) == (f'--out {out} {why}' + (f' {src}' if why != 'lies inside --src' else
                                                          f' {src}, where it would be read as input')
                                  + '; choose an output apart from the input (nothing was written)')
    link = tmp_path / 'link'
    link.symlink_to(src, target_is_directory=True)
    with pytest.raises(UsageError, match='is --src'):
        check_apart(link, '--out', {'--src': src})
    check_apart(tmp_path / 'elsewhere', '--out', {'--src': src, '--data': None})    # apart: no error
    check_apart(tmp_path / 'raw2', '--out', {'--src': src})                          # a name sharing a prefix
    check_apart(src / 'skipped', '--out', {'--src': src}, read_inside=lambda i, o: o.name != 'skipped')


def _scans(tmp_path: Path) -> Path:
    scans = tmp_path / 'scans'
    (scans / 'more').mkdir(parents=True)
    (scans / 'a.nii.gz').write_bytes(b'\x1f\x8b not really a scan')
    (scans / 'more' / 'b.nii.gz').write_bytes(b'\x1f\x8b another')
    return scans


def test_infer_volume_output_over_around_or_inside_the_input(tmp_path, capsys):
    from mmseg_medical.inference_cli import main

    scans = _scans(tmp_path)
    data = tmp_path / 'data'
    (data / 'labels').mkdir(parents=True)
    (data / 'dataset.json').write_text(json.dumps({'name': 'cranium', 'source': str(scans)}))
    (data / 'labels' / 'a.nii.gz').write_bytes(b'label')
    before = tree_hashes(tmp_path)
    model = [str(CONFIG), str(tmp_path / 'never_read.pth')]            # refused before any model is loaded
    refused = [(['--input', str(scans)], scans, scans),
               (['--input', str(scans / 'a.nii.gz')], scans, scans / 'a.nii.gz'),
               (['--input', str(scans)], scans / 'pred', scans), (['--input', str(scans)], tmp_path, scans),
               (['--data', str(data), '--split', 'test'], data, data),
               (['--data', str(data), '--split', 'test'], data / 'labels', data),
               (['--data', str(data), '--split', 'test'], data / 'predictions', data),
               (['--data', str(data), '--split', 'test'], scans, scans)]      # the release dataset.json names
    for source, out, given in refused:
        code = main([*model, *source, '--output', str(out)])
        _one_line_exit_2(code, capsys.readouterr().err, out, given)
        assert tree_hashes(tmp_path) == before, (source, out)
    # a label-like or hidden folder below --input is not searched by infer_volume: allowed (the model is read next)
    code = main([*model, '--input', str(scans), '--output', str(scans / 'seg')])
    err = capsys.readouterr().err
    assert code == 1 and 'never_read.pth' in err and 'choose an output apart' not in err


def test_pseudo_label_out_split_never_leaves_pseudo_masks_nor_replaces_foreign_folders(tmp_path, capsys):
    from mmseg_medical.pseudo_label import main

    root = tmp_path / 'data'
    (root / 'images').mkdir(parents=True)
    (root / 'images' / 'x_0000.png').write_bytes(b'png')
    (root / 'pseudo_masks' / 'mine').mkdir(parents=True)
    (root / 'pseudo_masks' / 'mine' / 'notes.txt').write_text('not written by pseudo_label')
    before = tree_hashes(tmp_path)
    for out_split, named in (('..', root), ('.', root), ('mine', root / 'pseudo_masks' / 'mine')):
        code = main([str(CONFIG), str(tmp_path / 'never_read.pth'), '--data', str(root), '--out-split', out_split])
        line = _one_line_exit_2(code, capsys.readouterr().err, named)
        assert tree_hashes(tmp_path) == before, out_split
        if out_split == 'mine':
            assert 'not written by pseudo_label.py' in line


def test_benchmark_work_dir_apart_from_mosmed(tmp_path, capsys):
    from mmseg_medical.benchmark import main

    mosmed = tmp_path / 'mosmed'
    mosmed.mkdir()
    (mosmed / 'manifest.csv').write_text('split,case_id\n')
    before = tree_hashes(tmp_path)
    for work_dir in (mosmed, tmp_path):
        code = main(['--preset', 'covid19-task2-infection', '--work-dir', str(work_dir), '--mosmed', str(mosmed),
                     '--gpus', '0'])
        _one_line_exit_2(code, capsys.readouterr().err, work_dir, mosmed)
        assert tree_hashes(tmp_path) == before


def test_listing_names_the_files_of_one_run(tmp_path):
    assert listed_files(tmp_path) is None
    for name in ('a.nii.gz', 'b.nii.gz', 'notes.txt', '.hidden'):
        (tmp_path / name).write_text(name)
    write_listing(tmp_path, ['a.nii.gz'])
    assert listed_files(tmp_path) == {'a.nii.gz'}
    assert unlisted_entries(tmp_path) == ['b.nii.gz', 'notes.txt']
    (tmp_path / 'infer_volume.json').write_text('{"files": 3}')
    with pytest.raises(Exception, match='infer_volume.json: cannot read the listing'):
        listed_files(tmp_path)
