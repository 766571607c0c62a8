"""Two processes on the CPU (gloo) through tools/dist_train.sh → tools/train.py → mmengine Runner."""
import os
import subprocess
import sys
from pathlib import Path

from mmseg_medical.runs import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'


def test_two_process_training_on_cpu(cranium_data, tmp_path):
    work = tmp_path / 'dist'
    env = {**os.environ, 'PYTHON': sys.executable, 'PORT': '29617', 'OMP_NUM_THREADS': '1'}
    cmd = ['bash', str(REPO / 'tools/dist_train.sh'), str(CONFIG), '2', '--work-dir', str(work), '--cfg-options',
           *tiny_overrides(cranium_data, scale=32, iters=2, workers=0, batch_size=2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = list(work.glob('*/*.log'))
    assert logs, 'rank 0 wrote no log'
    text = logs[0].read_text()
    assert 'Distributed training: True' in text and 'GPU number: 2' in text
    assert 'Iter(train) [2/2]' in text
    assert (work / 'iter_2.pth').is_file()
