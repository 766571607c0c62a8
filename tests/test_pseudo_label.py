"""Pseudo labels for self-training: thresholds by hand and by property, confidence against scipy's softmax,
and the round trip synthetic CrossMoDA → source model → tools/pseudo_label.py → self-training round (from
the source checkpoint) → both models' infer_volume predictions on a labelled synthetic hrT2 hold-out (the
scans' grid, read with nibabel), scored as the CrossMoDA card says (evaluate_volumes --protocol crossmoda)
and checked against Dice by hand and medpy's ASSD of the same files. Whether self-training helps is
measured by tools/benchmarks/crossmoda_self_training.py (configs/crossmoda/README.md), not by this short
test: it prints both VS Dice values."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from scipy.special import softmax

from mmseg_medical.inference import class_probabilities
from mmseg_medical.pseudo_label import LEVELS, class_thresholds, confidence
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
    np.testing.assert_allclose(confidence(class_probabilities(logits), labels) / (LEVELS - 1), expected, atol=1e-5)


SIZE, SLICES, HOLDOUT, ITERS = 32, 6, 2, 8   # a short run: the benchmark script measures the effect


def _options(root: Path, iters: int) -> list:
    return tiny_overrides(root, scale=SIZE, iters=iters, base_channels=8, workers=0) + [
        'model.decode_head.num_classes=3']


#: For the source run only: a background class weight of 0.02 makes the short-trained model predict the
#: structures (unweighted it predicts background only), so pseudo labels and scores are not constants.
#: (mmseg's cross entropy cannot weight classes when labels hold the ignore index, as pseudo masks do.)
SOURCE_WEIGHTS = ['model.decode_head.loss_decode.class_weight=[0.02,1.0,1.0]']


def _target_dice(config: Path, checkpoint: Path, options: list, scans: Path, labels: Path, out: Path,
                 by_hand) -> float:
    """infer_volume's predictions of the hold-out scans, on each scan's grid; ``evaluate_volumes --protocol
    crossmoda`` of them equals Dice by hand and medpy's ASSD per case and structure. Returns the mean VS
    Dice over the hold-out scans."""
    from mmseg_medical.evaluation.cli import main as evaluate_main

    subprocess.run([sys.executable, str(REPO / 'tools/infer_volume.py'), str(config), str(checkpoint), '--input',
                    str(scans), '--output', str(out), '--device', 'cpu', '--cfg-options', *options],
                   check=True, capture_output=True, cwd=REPO)
    preds = sorted(out.glob('*.nii.gz'))
    # named by case id: crossmoda_13_hrT2.nii.gz is written as crossmoda_13.nii.gz
    assert [p.name for p in preds] == sorted(p.name.replace('_hrT2', '') for p in scans.glob('*.nii.gz'))
    assert len(preds) == HOLDOUT
    truth_dir = out.parent / f'{out.name}_truth'          # the labels under the predictions' names
    truth_dir.mkdir()
    hand = {}
    for pred_file in preds:
        scan, pred = nib.load(str(scans / pred_file.name.replace('.nii.gz', '_hrT2.nii.gz'))), nib.load(str(pred_file))
        assert pred.shape == scan.shape and np.allclose(pred.affine, scan.affine, atol=1e-4)
        assert set(np.unique(np.asanyarray(pred.dataobj))) <= {0, 1, 2}
        case = pred_file.name.split('.')[0]
        shutil.copy(labels / f'{case}_Label.nii.gz', truth_dir / pred_file.name)
        hand[pred_file.name[:-len('.nii.gz')]] = by_hand(pred_file, truth_dir / pred_file.name)
    table = out.parent / f'{out.name}.csv'
    assert evaluate_main(['--pred', str(out), '--gt', str(truth_dir), '--out', str(table), '--protocol', 'crossmoda',
                          '--classes', '1,2', '--bootstrap', '0']) == 0
    with open(table, newline='') as f:
        rows = list(csv.DictReader(f))
    assert sorted((r['case'], int(r['class'])) for r in rows) == sorted((c, k) for c in hand for k in (1, 2))
    for r in rows:
        dice, assd = hand[r['case']][int(r['class'])]
        assert float(r['dice']) == pytest.approx(dice, abs=1e-6, nan_ok=True)
        assert float(r['assd']) == pytest.approx(assd, abs=1e-6)
    return float(np.mean([scores[1][0] for scores in hand.values()]))


def _check_selection_by_hand(data: Path, target: list, checkpoint: Path, options: list, record: dict) -> None:
    """The written pseudo masks against the confidence selection redone here: mmseg's ``inference_model`` logits of
    each target PNG, scipy's softmax, the predicted class and its probability; per class over the whole split the
    most confident ``ceil(0.6 n)`` of the ``n`` pixels predicted as it, every pixel tied with the last one kept,
    the rest 255. The code quantises confidence to 1/65535 and batches the forward pass, so a pixel may differ
    only where its confidence lies within 1e-4 of its class's threshold (or its top two classes tie)."""
    from mmseg.apis import inference_model

    from mmseg_medical.inference import load_config, load_model
    from mmseg_medical.inference_cli import build_parser

    args = build_parser().parse_args([str(SOURCE_CONFIG), str(checkpoint), '--input', 'x', '--output', 'y',
                                      '--cfg-options', *options])
    model = load_model(load_config(args.config, args.cfg_options), checkpoint, 'cpu')
    probs = []
    for stem in target:
        logits = inference_model(model, str(data / 'images' / f'{stem}.png')).seg_logits.data.numpy()
        probs.append(softmax(logits.astype(np.float64), axis=0))
    probs = np.stack(probs)                                              # (slices, C, H, W)
    labels, conf = probs.argmax(axis=1), probs.max(axis=1)
    top2 = np.sort(probs, axis=1)[:, -2]
    thresholds = {}
    for c in range(probs.shape[1]):
        values = np.sort(conf[labels == c])[::-1]
        if values.size:
            thresholds[c] = values[int(np.ceil(0.6 * values.size - 1e-9)) - 1]
    expected = np.full(labels.shape, 255, np.uint8)
    for c, t in thresholds.items():
        expected[(labels == c) & (conf >= t)] = c
    written = np.stack([cv2.imread(str(data / 'pseudo_masks/target_pseudo' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
                        for stem in target])
    differ = written != expected
    near = np.zeros_like(differ)
    for c, t in thresholds.items():
        near |= (labels == c) & (np.abs(conf - t) < 1e-4)
    near |= conf - top2 < 1e-4
    assert not (differ & ~near).any(), f'{int((differ & ~near).sum())} pixels off the hand selection'
    assert differ.sum() <= 0.001 * differ.size
    for c in range(probs.shape[1]):
        assert abs(int(np.sum(labels == c)) - record['predicted_pixels'][c]) <= int(near.sum())
    assert (expected == 255).any() and (expected != 255).any()         # a real selection, not all or nothing


@pytest.fixture(scope='module')
def source_model(tmp_path_factory):
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

    root = tmp_path_factory.mktemp('selftrain')
    write_crossmoda_release(root / 'raw', num_source=4, num_target=3, num_val=HOLDOUT, size=SIZE,
                            num_slices=SLICES, target_label_dir=root / 'holdout_labels')
    prepare(CONVERTERS['crossmoda'](), root / 'raw', root / 'data', workers=2, previews=0)
    options = _options(root / 'data', ITERS)
    run(mim_train(SOURCE_CONFIG, root / 'source', options + SOURCE_WEIGHTS, ['--gpus', '0']), log=root / 'source.log',
        cwd=REPO)
    return root, options, last_checkpoint(root / 'source')


def test_pseudo_label_round_trip_and_self_training(source_model, crossmoda_by_hand):
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
    assert record['predicted_pixels'][1] > 0                         # the weighted source model finds VS
    _check_selection_by_hand(data, target, checkpoint, options, record)
    for stem in train:                                               # the source masks, unchanged
        a = cv2.imread(str(data / 'pseudo_masks/target_pseudo' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, cv2.imread(str(data / 'masks' / f'{stem}.png'), cv2.IMREAD_UNCHANGED))

    pseudo_options = _options(data, ITERS) + [f'load_from={checkpoint}']
    run(mim_train(PSEUDO_CONFIG, root / 'pseudo', pseudo_options, ['--gpus', '0']), log=root / 'pseudo.log', cwd=REPO)
    assert f'Load checkpoint from {checkpoint}' in (root / 'pseudo.log').read_text()   # started from the source
    scans = root / 'raw/crossmoda_validation/target_validation'
    before = _target_dice(SOURCE_CONFIG, checkpoint, options, scans, root / 'holdout_labels',
                          root / 'pred_source', crossmoda_by_hand)
    after = _target_dice(PSEUDO_CONFIG, last_checkpoint(root / 'pseudo'), options, scans, root / 'holdout_labels',
                         root / 'pred_pseudo', crossmoda_by_hand)
    print(f'\ntarget hold-out VS Dice ({ITERS} iterations per run): source-only {before:.3f}, '
          f'after one self-training round {after:.3f}')


def test_bad_inputs_are_one_line_errors(source_model, tmp_path):
    root, options, checkpoint = source_model
    cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(SOURCE_CONFIG), str(checkpoint), '--data',
           str(root / 'data'), '--split', 'nosuch', '--cfg-options', *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stderr.count('\n') == 1
    assert proc.stderr.startswith(f'error: {root / "data" / "splits" / "nosuch.txt"}: no split list ')
    proc = subprocess.run(cmd[:6] + ['--portion', '1.5'], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stderr.strip() == 'error: --portion: must be in (0, 1], got 1.5'


def test_sigkill_midway_then_a_rerun_leaves_no_staging_and_a_complete_output(source_model):
    """tools/pseudo_label.py SIGKILLed while its staging folder fills (``.pseudo-<pid>-<hex>/`` inside the dataset):
    no pseudo_masks/<out_split>/ and no split list appear; a re-run removes the folder and writes every mask, the
    record and both lists."""
    import os
    import signal
    import time

    root, options, checkpoint = source_model
    data = root / 'data'
    cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(SOURCE_CONFIG), str(checkpoint), '--data',
           str(data), '--split', 'target', '--portion', '0.6', '--out-split', 'killed', '--batch-size', '1',
           '--cfg-options', *options]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, end = False, time.monotonic() + 180
    while time.monotonic() < end and process.poll() is None:
        if any(any((p / 'raw').glob('*.png')) for p in data.glob('.pseudo-*') if (p / 'raw').is_dir()):
            os.kill(process.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    process.wait()
    assert killed, 'pseudo_label finished before the kill'
    assert len(list(data.glob('.pseudo-*'))) == 1
    assert not (data / 'pseudo_masks' / 'killed').exists() and not (data / 'splits' / 'killed.txt').exists()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    assert list(data.glob('.pseudo-*')) == []
    target = (data / 'splits/target.txt').read_text().split()
    assert (data / 'splits/killed.txt').read_text().split() == target
    assert (data / 'splits/train+killed.txt').read_text().split() == (data / 'splits/train.txt').read_text().split() \
        + target
    written = {p.stem for p in (data / 'pseudo_masks' / 'killed').glob('*.png')}
    assert set(target) <= written
    record = json.loads((data / 'pseudo_masks/killed/pseudo_label.json').read_text())
    assert record['slices'] == len(target) and sum(record['predicted_pixels']) == len(target) * SIZE * SIZE
