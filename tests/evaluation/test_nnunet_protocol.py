"""``evaluate_volumes --protocol nnunet``: the summary.json equals the one nnunetv2 2.8.1's own
``compute_metrics_on_folder`` writes on the same files (run in a subprocess: it uses a spawn pool)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmseg_medical.evaluation.cli import main as evaluate

sitk = pytest.importorskip('SimpleITK')

NNUNET = """
import sys
from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
if __name__ == '__main__':
    compute_metrics_on_folder(sys.argv[1], sys.argv[2], sys.argv[3], SimpleITKIO(), '.nii.gz', [1, 2], num_processes=1)
"""


def write(array, path):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((0.8, 0.8, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def assert_same(ours, theirs):
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs)
        for k in theirs:
            assert_same(ours[k], theirs[k])
    elif isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12) and type(ours) is type(theirs), (ours, theirs)


def test_summary_json_equals_nnunet(tmp_path, reference):
    reference('nnunetv2')
    rng = np.random.default_rng(3)
    for i in range(4):
        ref = np.zeros((4, 10, 12), np.uint8)
        ref[1:3, 2:6, 2:7] = 1
        if i != 2:  # case 2: label 2 in neither file -> NaN
            ref[2:4, 5:9, 6:11] = 2
        pred = ref.copy()
        noise = rng.random(ref.shape) < 0.15
        pred[noise] = rng.integers(0, 3, int(noise.sum()))
        if i == 2:
            pred[pred == 2] = 0
        write(ref, tmp_path / 'ref' / f'case_{i}.nii.gz')
        write(pred, tmp_path / 'pred' / f'case_{i}.nii.gz')
    script = tmp_path / 'nnunet_eval.py'
    script.write_text(NNUNET)
    env = {'nnUNet_raw': str(tmp_path), 'nnUNet_preprocessed': str(tmp_path), 'nnUNet_results': str(tmp_path),
           'PATH': '/usr/bin:/bin'}
    subprocess.run([sys.executable, str(script), str(tmp_path / 'ref'), str(tmp_path / 'pred'),
                    str(tmp_path / 'nnunet_summary.json')], check=True, env=env, capture_output=True)
    assert evaluate(['--gt', str(tmp_path / 'ref'), '--pred', str(tmp_path / 'pred'), '--out',
                     str(tmp_path / 'ours' / 'metrics.csv'), '--protocol', 'nnunet', '--classes', '1,2',
                     '--bootstrap', '0']) == 0
    theirs = json.loads((tmp_path / 'nnunet_summary.json').read_text())
    ours = json.loads((tmp_path / 'ours' / 'summary.json').read_text())
    assert math.isnan(theirs['metric_per_case'][2]['metrics']['2']['Dice'])
    assert_same(ours['mean'], theirs['mean'])
    assert_same(ours['foreground_mean'], theirs['foreground_mean'])
    by_file = {Path(c['prediction_file']).name: c for c in theirs['metric_per_case']}
    assert len(ours['metric_per_case']) == len(by_file) == 4
    for case in ours['metric_per_case']:
        ref = by_file[Path(case['prediction_file']).name]
        assert Path(case['reference_file']).name == Path(ref['reference_file']).name
        assert_same(case['metrics'], ref['metrics'])
