"""``tools/generate_synthetic.py``: every dataset is a subcommand; the crossmoda and covid19 wiring writes
the folder layouts of ../shared/NOTES.md (names typed out here), and bad choices are argparse errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmseg_medical.synthetic.cli import build_parser, main

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'generate_synthetic.py'


def _files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def test_help_lists_every_dataset():
    result = subprocess.run([sys.executable, str(TOOL), '--help'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ('cranium', 'hemseg', 'crossmoda', 'covid19'):
        assert name in result.stdout
        assert build_parser().parse_args([name, '--out', 'x']).dataset == name


def test_crossmoda_2021_layout(tmp_path, capsys):
    assert main(['crossmoda', '--out', str(tmp_path), '--source', '2', '--target', '1', '--val', '1',
                 '--size', '32', '--slices', '3']) == 0
    assert f'crossmoda: wrote {tmp_path}' in capsys.readouterr().out
    # NOTES.md: source 1.., target after them, validation last; labels only for the source cases
    assert _files(tmp_path) == sorted([
        'crossmoda_training/source_training/crossmoda_1_ceT1.nii.gz',
        'crossmoda_training/source_training/crossmoda_1_Label.nii.gz',
        'crossmoda_training/source_training/crossmoda_2_ceT1.nii.gz',
        'crossmoda_training/source_training/crossmoda_2_Label.nii.gz',
        'crossmoda_training/target_training/crossmoda_3_hrT2.nii.gz',
        'crossmoda_validation/target_validation/crossmoda_4_hrT2.nii.gz'])
    with pytest.raises(SystemExit):
        main(['crossmoda', '--out', str(tmp_path), '--naming', '2024'])


@pytest.mark.parametrize('values', [None, ('4', '5', '6')])
def test_crossmoda_2023_layout(tmp_path, values):
    """NOTES.md's 2023 layout: TrainingSource ceT1 + labels, TrainingTarget T2, crossmoda23_validation T2; sites
    etz / ldn / ukm; labels intra-meatal VS, extra-meatal VS, cochlea (1, 2, 3 or --label-values)."""
    extra = [] if values is None else ['--label-values', *values]
    assert main(['crossmoda', '--out', str(tmp_path), '--naming', '2023', '--source', '3', '--target', '1', '--val',
                 '1', '--size', '32', '--slices', '3', *extra]) == 0
    assert _files(tmp_path) == sorted([
        'crossmoda23_training/TrainingSource/crossmoda2023_ldn_1_ceT1.nii.gz',
        'crossmoda23_training/TrainingSource/crossmoda2023_ldn_1_Label.nii.gz',
        'crossmoda23_training/TrainingSource/crossmoda2023_ukm_2_ceT1.nii.gz',
        'crossmoda23_training/TrainingSource/crossmoda2023_ukm_2_Label.nii.gz',
        'crossmoda23_training/TrainingSource/crossmoda2023_etz_3_ceT1.nii.gz',
        'crossmoda23_training/TrainingSource/crossmoda2023_etz_3_Label.nii.gz',
        'crossmoda23_training/TrainingTarget/crossmoda2023_ldn_4_T2.nii.gz',
        'crossmoda23_validation/crossmoda2023_ukm_5_T2.nii.gz'])
    import nibabel as nib
    import numpy as np

    label = nib.load(str(tmp_path / 'crossmoda23_training/TrainingSource/crossmoda2023_ukm_2_Label.nii.gz'))
    wanted = {0.0, 1.0, 2.0, 3.0} if values is None else {0.0, 4.0, 5.0, 6.0}
    assert set(np.unique(np.asanyarray(label.dataobj))) == wanted


@pytest.mark.parametrize('layout, image, mask', [
    ('zenodo', 'COVID-19-CT-Seg_20cases/coronacases_001.nii.gz', 'Lung_and_Infection_Mask/coronacases_001.nii.gz'),
    ('kaggle', 'ct_scans/coronacases_org_001.nii', 'lung_and_infection_mask/coronacases_001.nii')])
def test_covid19_layouts(tmp_path, layout, image, mask):
    assert main(['covid19', '--out', str(tmp_path), '--layout', layout, '--nest', 'dl', '--slices', '2',
                 '--size', '16']) == 0
    release = tmp_path / 'dl'
    assert (release / image).is_file() and (release / mask).is_file()
    masks = 'Lung_Mask' if layout == 'zenodo' else 'lung_mask'
    assert len(list((release / masks).iterdir())) == 20          # NOTES.md: 20 cases
    assert (release / 'metadata.csv').is_file() == (layout == 'kaggle')
    with pytest.raises(SystemExit):
        main(['covid19', '--out', str(tmp_path), '--layout', 'mosmed'])


@pytest.mark.parametrize('orientation', ['RAS', 'LPI'])
def test_covid19_orientation_option(tmp_path, orientation):
    """--orientation stores scans and masks in that voxel order (nibabel's axis codes of the written files)."""
    import nibabel as nib

    assert main(['covid19', '--out', str(tmp_path), '--orientation', orientation]) == 0
    files = sorted(tmp_path.rglob('*.nii.gz'))
    assert len(files) == 80        # 20 scans + 3 mask folders
    assert {''.join(nib.aff2axcodes(nib.load(str(f)).affine)) for f in files} == {orientation}
