"""Every dataset card says how to write its synthetic release, and the sizes it states are what the generator
writes: each ``python tools/generate_synthetic.py … # writes N <things> × Z slices of H×W`` line of a card is run
(``--out`` moved under tmp) and the files written are counted and measured with nibabel / pydicom."""
from __future__ import annotations

import collections
import re
import shlex
from pathlib import Path

import nibabel as nib
import pytest

from mmseg_medical.synthetic.cli import main

REPO = Path(__file__).resolve().parents[2]
CARDS = ['cranium', 'hemseg', 'crossmoda', 'covid19']
LINE = re.compile(r'^(python tools/generate_synthetic\.py .+?)\s+# writes (\d+) \w+ × (\d+) slices of (\d+)×(\d+)$')


def card_commands(dataset: str) -> list:
    text = (REPO / 'configs' / dataset / 'README.md').read_text()
    return [(shlex.split(m.group(1))[2:], tuple(int(g) for g in m.groups()[1:]))
            for m in map(LINE.match, text.splitlines()) if m]


def nifti_sizes(files) -> tuple:
    """(count, slices, rows, columns) of NIfTI scans stored (i, j, k) with k the slice axis."""
    shapes = {nib.load(str(f)).shape for f in files}
    assert len(shapes) == 1, shapes
    (i, j, k), = shapes
    return len(files), k, j, i


def dicom_sizes(folder: Path) -> tuple:
    """(series, slices per series, rows, columns) of a flat folder of DICOM files."""
    import pydicom

    series, sizes = collections.Counter(), set()
    for path in folder.iterdir():
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        series[ds.SeriesInstanceUID] += 1
        sizes.add((ds.Rows, ds.Columns))
    assert len(set(series.values())) == 1 and len(sizes) == 1, (series, sizes)
    return len(series), next(iter(series.values())), *next(iter(sizes))


MEASURE = {
    'cranium': lambda out: nifti_sizes(sorted(out.rglob('ct_scans/*.nii'))),
    'crossmoda': lambda out: nifti_sizes(sorted(out.rglob('*_ceT1.nii.gz')) + sorted(out.rglob('*_hrT2.nii.gz'))),
    'covid19': lambda out: nifti_sizes(sorted(out.rglob('COVID-19-CT-Seg_20cases/*.nii.gz'))),
    'hemseg': lambda out: dicom_sizes(out / 'stage_2_train'),
}


@pytest.mark.parametrize('dataset', CARDS)
def test_the_card_command_writes_the_sizes_it_states(dataset, tmp_path, capsys):
    commands = card_commands(dataset)
    assert commands, f'configs/{dataset}/README.md: no "python tools/generate_synthetic.py {dataset} … # writes" line'
    for k, (argv, stated) in enumerate(commands):
        assert argv[0] == dataset
        out = tmp_path / f'release{k}'
        argv[argv.index('--out') + 1] = str(out)
        assert main(argv) == 0
        assert MEASURE[dataset](out) == stated, (argv, stated)
