"""The synthetic nnU-Net releases pass nnunetv2 2.8.1's own ``verify_dataset_integrity`` (dataset.json, file names,
geometry of every channel and label, label values), in every file ending the converter reads."""
import subprocess
import sys

import pytest

from mmseg_medical.synthetic.nnunet import CT_LABELS, write_nnunet_release

pytest.importorskip('SimpleITK')

VERIFY = """
import sys
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
if __name__ == '__main__':
    for folder in sys.argv[1:]:
        verify_dataset_integrity(folder, num_processes=1)
"""


def test_releases_pass_nnunet_verify_dataset_integrity(tmp_path, reference):
    reference('nnunetv2')
    releases = [
        write_nnunet_release(tmp_path / 'raw', name=f'Dataset90{i}_{ending.strip(".").replace(".", "")}',
                             file_ending=ending, num_training=3, num_test=1, channels=('CT',) if ct else ('T2', 'ADC'),
                             labels=CT_LABELS if ct else ('background', 'a', 'b'), shape=(3, 10, 12))
        for i, (ending, ct) in enumerate([('.nii.gz', False), ('.nrrd', True), ('.mha', False), ('.nii', True)])]
    (tmp_path / 'verify.py').write_text(VERIFY)
    env = {'nnUNet_raw': str(tmp_path / 'raw'), 'nnUNet_preprocessed': str(tmp_path), 'nnUNet_results': str(tmp_path),
           'PATH': '/usr/bin:/bin'}
    proc = subprocess.run([sys.executable, str(tmp_path / 'verify.py'), *map(str, releases)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count('verify_dataset_integrity Done') == 4
