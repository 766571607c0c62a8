"""mim train → checkpoint → mim test --checkpoint, with torch's weights_only loading left on."""
import subprocess
import sys
from pathlib import Path

import pytest

from mmseg_medical.manifest import read_manifest
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'


@pytest.fixture(scope='module')
def trained(cranium_data, tmp_path_factory):
    work = tmp_path_factory.mktemp('mim')
    options = tiny_overrides(cranium_data, scale=32, iters=4, workers=0)
    run(mim_train(CONFIG, work / 'train', options, ['--gpus', '0']), log=work / 'train.log', cwd=REPO)
    return work, options, last_checkpoint(work / 'train')


def test_checkpoint_needs_the_safe_globals(trained):
    """Plain torch.load refuses an mmengine checkpoint; importing the package (only) makes it load."""
    _, _, ckpt = trained
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


def test_mim_test_with_checkpoint(trained, cranium_data):
    work, options, ckpt = trained
    pred = work / 'pred'
    run(mim_test(CONFIG, ckpt, work / 'test', options, ['--gpus', '0', '--out', str(pred)]),
        log=work / 'test.log', cwd=REPO)
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
