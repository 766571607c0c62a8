"""mim train → checkpoint → mim test --checkpoint --out DIR → evaluate_volumes --pred DIR/volumes --data --split
val, run as the README shows (bash, ``$(python tools/tiny_options.py DATA ...)``), with torch's weights_only
loading left on."""
import csv
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmseg_medical.manifest import read_manifest
from mmseg_medical.runs import read_test_metrics, usable_cores


@pytest.fixture(scope='module')
def tested(cranium_model, shell):
    """``mim test`` of the tiny model with the same ``$(tiny_options.py ...)`` line; its ``--out`` folder."""
    m = cranium_model
    pred = m.work / 'pred'
    shell.bash(shell.mim('test', 'mmseg', shell.cranium_config, '--checkpoint', m.checkpoint, '--gpus', '0',
                         '--work-dir', m.work / 'test', '--out', pred, m.options), m.work / 'test.log')
    return pred


def test_checkpoint_needs_the_safe_globals(cranium_model):
    """Plain torch.load refuses an mmengine checkpoint; importing the package (only) makes it load."""
    ckpt = cranium_model.checkpoint
    code = ('import sys, torch\n'
            'try:\n    torch.load(sys.argv[1])\nexcept Exception as e:\n    print("refused", type(e).__name__)\n'
            'import mmseg_medical\n'
            'ck = torch.load(sys.argv[1])\n'
            'print("loaded", sorted(ck)[:3])\n')
    out = subprocess.run([sys.executable, '-c', code, str(ckpt)], capture_output=True, text=True, check=True).stdout
    assert 'refused UnpicklingError' in out
    assert "loaded ['message_hub', 'meta', 'optimizer']" in out


def test_only_the_needed_globals_are_registered():
    import numpy as np
    import torch.serialization

    import mmseg_medical  # noqa: F401
    from mmseg_medical.torch_compat import history_buffer_getattr
    registered = torch.serialization.get_safe_globals()
    names = {g[1] if isinstance(g, tuple) else g.__name__ for g in registered}
    assert {'HistoryBuffer', '_reconstruct', 'scalar', 'ndarray', 'builtins.getattr'} <= names
    assert not names & {'getattr', 'eval', 'exec', 'system', 'Popen', 'tofile'}
    # getattr is only the restricted stand-in: no way to reach a file-writing method
    assert (history_buffer_getattr, 'builtins.getattr') in registered
    with pytest.raises(Exception, match='only HistoryBuffer statistics'):
        history_buffer_getattr(np.zeros(2), 'tofile')


def test_tiny_options_line_is_the_run(cranium_model, shell):
    """The line ``tools/tiny_options.py DATA --scale 32 --iters 4 --workers 0`` printed gave, through bash, a
    run of 4 iterations on 32 x 32 slices of DATA with a UNet of 16 base channels (the tool's default): the
    dumped config, the log and the checkpoint's weight shapes (UNet's first conv: 16 x 3 x 3 x 3, the FCN
    head's classifier: 2 classes x 16) say so."""
    m = cranium_model
    cfg = Config.fromfile(m.work / 'train' / shell.cranium_config.name)
    for loader, resize in (('train_dataloader', 2), ('val_dataloader', 1), ('test_dataloader', 1)):
        assert cfg[loader].dataset.data_root.rstrip('/') == str(m.data)
        assert tuple(cfg[loader].dataset.pipeline[resize].scale) == (32, 32)
        assert cfg[loader].num_workers == 0 and cfg[loader].persistent_workers is False
    assert tuple(cfg.model.data_preprocessor.size) == (32, 32) and cfg.train_cfg.max_iters == 4
    log = (m.work / 'train.log').read_text()
    assert 'Iter(train) [4/4]' in log and 'Iter(train) [5/' not in log
    cores = usable_cores()   # --workers 0: every core for torch, set by CpuThreadsHook in the training process
    assert f'CPU threads: torch {cores} (was ' in log and f'x 1 dataloader worker(s) on {cores} cores' in log
    assert m.checkpoint.name == 'iter_4.pth'
    weights = torch.load(m.checkpoint, map_location='cpu')['state_dict']
    assert tuple(weights['backbone.encoder.0.0.convs.0.conv.weight'].shape) == (16, 3, 3, 3)
    assert tuple(weights['decode_head.conv_seg.weight'].shape) == (2, 16, 1, 1)


def test_mim_test_with_checkpoint(cranium_model, tested, cranium_data):
    work, pred = cranium_model.work, tested
    metrics = read_test_metrics(work / 'test')
    val = [r for r in read_manifest(cranium_data) if r.split == 'val']
    assert sorted(p.stem for p in pred.glob('*.png')) == sorted(r.stem for r in val)
    # mmseg's numbers, recomputed by hand from the written predictions and the mask PNGs (both at the
    # slices' native size): pixel accuracy and the class IoUs pooled over all val slices.
    import cv2
    import numpy as np
    gt = np.stack([cv2.imread(str(cranium_data / r.mask), cv2.IMREAD_UNCHANGED) for r in val])
    pr = np.stack([cv2.imread(str(pred / f'{r.stem}.png'), cv2.IMREAD_UNCHANGED) for r in val])
    assert metrics['aAcc'] == pytest.approx(100 * np.mean(gt == pr), abs=0.01)
    ious = [np.sum((gt == c) & (pr == c)) / np.sum((gt == c) | (pr == c)) for c in (0, 1)
            if np.sum((gt == c) | (pr == c))]
    assert metrics['mIoU'] == pytest.approx(100 * np.mean(ious), abs=0.01)
    assert 'Weights only load failed' not in (work / 'test.log').read_text()


def _dice(truth: np.ndarray, guess: np.ndarray) -> float:
    """2|G & P| / (|G| + |P|); 1 when both are empty (protocol default)."""
    total = int(truth.sum() + guess.sum())
    return 2.0 * int((truth & guess).sum()) / total if total else 1.0


def test_evaluate_volumes_scores_every_val_case_as_the_raw_masks_give(cranium_model, tested, cranium_data, shell,
                                                                       tmp_path):
    """``evaluate_volumes --pred DIR/volumes --data PREPARED --split val`` scores every val patient, under the
    release's own name (``masks/<patient>.nii``), and its Dice is the Dice of the predicted volume against
    the raw release's NIfTI mask (nibabel, numpy by hand, same shape and affine)."""
    pred = tested / 'volumes'
    val = sorted({re.sub(r'_\d{4}$', '', s) for s in (cranium_data / 'splits/val.txt').read_text().split()})
    assert len(val) == 2
    assert sorted(p.name for p in pred.glob('*.nii.gz')) == [f'{case}.nii.gz' for case in val]
    out = tmp_path / 'metrics.csv'
    proc = subprocess.run([sys.executable, 'tools/evaluate_volumes.py', '--pred', str(pred), '--data',
                           str(cranium_data), '--split', 'val', '--classes', '1', '--out', str(out)],
                          cwd=shell.repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'warning' not in proc.stderr            # no val case left without a prediction
    rows = {r['case']: r for r in csv.DictReader(out.open())}
    assert sorted(rows) == val
    raw = cranium_data.parent / 'raw'              # the release the session's cranium_data was prepared from
    nonzero = 0
    for case in val:
        [mask_file] = raw.rglob(f'masks/{case}.nii')
        mask, volume = nib.load(str(mask_file)), nib.load(str(pred / f'{case}.nii.gz'))
        assert volume.shape == mask.shape and np.allclose(volume.affine, mask.affine, atol=1e-4)
        truth, guess = np.asanyarray(mask.dataobj) == 1, np.asanyarray(volume.dataobj) == 1
        assert float(rows[case]['dice']) == pytest.approx(_dice(truth, guess), abs=1e-12)
        nonzero += 0 < _dice(truth, guess) < 1
    assert nonzero, 'the tiny model should leave a Dice strictly between 0 and 1 on some val case'
