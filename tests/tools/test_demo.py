"""``make demo`` (= ``python tools/demo.py``), the README's first command, run shrunk: 4 patients, 2 training
iterations at 32², ``--goal 0``. The printed per-case and pooled hemorrhage Dice are recomputed here by hand from
the files the run wrote (the val masks prepare wrote and the prediction PNGs of ``mim test --out``, grouped by
case with the manifest read by ``csv``), and the overlays decode as image | ground truth | prediction panels."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_demo_code_path_shrunk(tmp_path):
    work = tmp_path / 'demo'
    proc = subprocess.run([sys.executable, str(REPO / 'tools/demo.py'), '--work-dir', str(work), '--patients', '4',
                           '--iters', '2', '--scale', '32', '--goal', '0'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for step in range(1, 6):
        assert f'[{step}/5]' in out
    data, pred = work / 'cranium', work / 'test' / 'pred'
    with open(data / 'manifest.csv', newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['split'] == 'val']
    assert rows
    truth, guess = {}, {}
    for r in rows:
        mask = cv2.imread(str(data / r['mask']), cv2.IMREAD_UNCHANGED) == 1
        stem = Path(r['image']).stem
        labels = cv2.imread(str(pred / f'{stem}.png'), cv2.IMREAD_UNCHANGED) == 1
        truth.setdefault(r['case_id'], []).append(mask)
        guess.setdefault(r['case_id'], []).append(labels)

    def dice(g, p):
        total = g.sum() + p.sum()
        return 1.0 if total == 0 else 2.0 * (g & p).sum() / total

    printed = dict(re.findall(r'^  case (\S+): hemorrhage Dice ([0-9.]+)$', out, re.M))
    expected = {c: dice(np.stack(truth[c]), np.stack(guess[c])) for c in truth if np.stack(truth[c]).any()}
    assert printed and set(printed) == set(expected)
    for case, value in printed.items():
        assert float(value) == pytest.approx(expected[case], abs=5e-4), case
    pooled = dice(np.concatenate([np.stack(v).ravel() for v in truth.values()]),
                  np.concatenate([np.stack(v).ravel() for v in guess.values()]))
    line = re.search(r'^hemorrhage Dice: ([0-9.]+) \(all val voxels', out, re.M)
    assert line and float(line.group(1)) == pytest.approx(pooled, abs=5e-4)
    assert 'goal ≥ 0: met' in out
    overlays = sorted((work / 'overlays').glob('*.png'))
    assert 1 <= len(overlays) <= 4
    for path in overlays:
        image = cv2.imread(str(path))
        assert image is not None and image.shape[1] >= 3 * image.shape[0] // 2, path.name  # three panels side by side
