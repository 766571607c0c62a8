"""Pseudo labels for self-training: thresholds by hand and by property, confidence against scipy's softmax,
and the round trip synthetic CrossMoDA → source model → tools/pseudo_label.py → self-training round (from
the source checkpoint) → target VS Dice of both models on a labelled synthetic hrT2 hold-out, printed and
checked to be a valid number only: whether self-training helps is measured by
tools/benchmarks/crossmoda_self_training.py (configs/crossmoda/README.md), not by this short test."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from scipy.special import softmax

from mmseg_medical.pseudo_label import LEVELS, class_thresholds, confidence_and_labels
from mmseg_medical.runs import last_checkpoint, mim_train, run, tiny_overrides

REPO = Path(__file__).resolve().parents[1]
SOURCE_CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
PSEUDO_CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-pseudo-256x256.py'


def test_thresholds_by_hand():
    hist = np.zeros((2, LEVELS), np.int64)
    for level in (900, 800, 700, 600, 500):          # class 0: five pixels; 60% → the top three
        hist[0, level] += 1
    hist[1, 300] = 4                                   # class 1: four tied pixels → all kept
    assert class_thresholds(hist, 0.6).tolist() == [700, 300]
    assert class_thresholds(np.zeros((1, LEVELS), np.int64), 0.6).tolist() == [LEVELS]   # never predicted


def test_thresholds_keep_the_most_confident_portion():
    rng = np.random.default_rng(0)
    for _ in range(20):
        conf = rng.integers(0, LEVELS, size=rng.integers(1, 500))
        portion = rng.uniform(0.05, 1.0)
        hist = np.bincount(conf, minlength=LEVELS)[None]
        t = class_thresholds(hist, portion)[0]
        need = int(np.ceil(portion * conf.size - 1e-9))
        assert np.sum(conf >= t) >= need > np.sum(conf >= t + 1)


def test_confidence_is_the_softmax_of_the_predicted_class():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(3, 5, 7)).astype(np.float32)
    labels = logits.argmax(axis=0).astype(np.uint8)
    expected = softmax(logits.astype(np.float64), axis=0).max(axis=0)
    np.testing.assert_allclose(confidence_and_labels(logits, labels) / (LEVELS - 1), expected, atol=1e-5)


SIZE, SLICES, HOLDOUT, ITERS = 32, 6, 2, 8   # a short run: the benchmark script measures the effect


def _options(root: Path, iters: int) -> list:
    return tiny_overrides(root, scale=SIZE, iters=iters, base_channels=8, workers=0) + [
        'model.decode_head.num_classes=3']


def _target_dice(config: Path, checkpoint: Path, options: list, scans: Path, labels: Path, out: Path) -> float:
    """Mean Dice (VS, over the hold-out hrT2 scans) of infer_volume's predictions against the labels."""
    subprocess.run([sys.executable, str(REPO / 'tools/infer_volume.py'), str(config), str(checkpoint), '--input',
                    str(scans), '--output', str(out), '--device', 'cpu', '--cfg-options', *options],
                   check=True, capture_output=True, cwd=REPO)
    dices = []
    for pred_file in sorted(out.glob('*.nii.gz')):
        case = pred_file.name.split('.')[0].rsplit('_', 1)[0]  # crossmoda_13_hrT2 -> crossmoda_13
        truth = np.asanyarray(nib.load(str(labels / f'{case}_Label.nii.gz')).dataobj) == 1
        pred = np.asanyarray(nib.load(str(pred_file)).dataobj) == 1
        dices.append(2 * np.sum(truth & pred) / max(1, truth.sum() + pred.sum()))
    assert len(dices) == HOLDOUT
    return float(np.mean(dices))


@pytest.fixture(scope='module')
def source_model(tmp_path_factory):
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

    root = tmp_path_factory.mktemp('selftrain')
    write_crossmoda_release(root / 'raw', num_source=4, num_target=3, num_val=HOLDOUT, size=SIZE,
                            num_slices=SLICES, target_label_dir=root / 'holdout_labels')
    prepare(CONVERTERS['crossmoda'](), root / 'raw', root / 'data', workers=2, previews=0)
    options = _options(root / 'data', ITERS)
    run(mim_train(SOURCE_CONFIG, root / 'source', options, ['--gpus', '0']), log=root / 'source.log', cwd=REPO)
    return root, options, last_checkpoint(root / 'source')


def test_pseudo_label_round_trip_and_self_training(source_model):
    root, options, checkpoint = source_model
    data = root / 'data'
    cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(SOURCE_CONFIG), str(checkpoint), '--data',
           str(data), '--split', 'target', '--portion', '0.6', '--out-split', 'target_pseudo', '--cfg-options', *options]
    printed = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    assert 'pseudo-labelled as target_pseudo' in printed
    target = (data / 'splits/target.txt').read_text().split()
    train = (data / 'splits/train.txt').read_text().split()
    assert (data / 'splits/target_pseudo.txt').read_text().split() == target
    assert (data / 'splits/train+target_pseudo.txt').read_text().split() == train + target
    record = json.loads((data / 'pseudo_masks/target_pseudo/pseudo_label.json').read_text())
    counts = np.zeros(3, np.int64)
    ignored = 0
    for stem in target:
        mask = cv2.imread(str(data / 'pseudo_masks/target_pseudo' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) <= {0, 1, 2, 255}
        counts += np.bincount(mask[mask != 255], minlength=3)[:3]
        ignored += int(np.sum(mask == 255))
    assert counts.tolist() == record['kept_pixels']
    assert counts.sum() + ignored == len(target) * SIZE * SIZE == sum(record['predicted_pixels'])
    for kept, predicted in zip(record['kept_pixels'], record['predicted_pixels']):
        assert kept >= 0.6 * predicted                               # most confident 60% (ties kept)
    for stem in train:                                               # the source masks, unchanged
        a = cv2.imread(str(data / 'pseudo_masks/target_pseudo' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, cv2.imread(str(data / 'masks' / f'{stem}.png'), cv2.IMREAD_UNCHANGED))

    pseudo_options = _options(data, ITERS) + [f'load_from={checkpoint}']
    run(mim_train(PSEUDO_CONFIG, root / 'pseudo', pseudo_options, ['--gpus', '0']), log=root / 'pseudo.log', cwd=REPO)
    assert f'Load checkpoint from {checkpoint}' in (root / 'pseudo.log').read_text()   # started from the source
    scans = root / 'raw/crossmoda_validation/target_validation'
    before = _target_dice(SOURCE_CONFIG, checkpoint, options, scans, root / 'holdout_labels', root / 'pred_source')
    after = _target_dice(PSEUDO_CONFIG, last_checkpoint(root / 'pseudo'), options, scans, root / 'holdout_labels',
                         root / 'pred_pseudo')
    print(f'\ntarget hold-out VS Dice ({ITERS} iterations per run): source-only {before:.3f}, '
          f'after one self-training round {after:.3f}')
    assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0


def test_bad_inputs_are_one_line_errors(source_model, tmp_path):
    root, options, checkpoint = source_model
    cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(SOURCE_CONFIG), str(checkpoint), '--data',
           str(root / 'data'), '--split', 'nosuch', '--cfg-options', *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stderr.count('\n') == 1
    assert proc.stderr.startswith(f'error: {root / "data" / "splits" / "nosuch.txt"}: no split list ')
    proc = subprocess.run(cmd[:6] + ['--portion', '1.5'], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stderr.strip() == 'error: --portion: must be in (0, 1], got 1.5'
