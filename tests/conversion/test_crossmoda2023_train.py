"""crossMoDA 2023 end to end on a synthetic release (sites etz / ldn / ukm, 3 structures): the 2023 source config
trains 2 iterations, ``mim test --out`` scores the val patients (one per site) under the crossmoda protocol with a
``vs`` row, and ``tools/pseudo_label.py`` labels the T2 target split for the 2023 self-training config.

Independent references: the release's label files (nibabel), medpy 0.5.2's ``dc`` and ``assd`` of each structure
and of the union masks intra ∪ extra (``scores.py``'s spacing |diagonal of the label's affine|, 350 mm for an empty
prediction), and the means written out here.
"""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-256x256.py'
PSEUDO_CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-pseudo-256x256.py'
SIZE, SLICES = 32, 4
STRUCTURES = {'1': (1,), '2': (2,), '3': (3,), 'vs': (1, 2)}
NAMES = {'1': 'vs_intrameatal', '2': 'vs_extrameatal', '3': 'cochlea', 'vs': 'vs'}
ROUNDED = 6e-5                               # VolumeMetric returns values rounded to 4 decimals


def _by_medpy(pred_file: Path, label_file: Path) -> dict:
    binary = pytest.importorskip('medpy.metric.binary')
    label, pred = nib.load(str(label_file)), nib.load(str(pred_file))
    assert pred.shape == label.shape and np.allclose(pred.affine, label.affine, atol=1e-4)
    truth, guess = np.rint(np.asanyarray(label.dataobj)), np.asanyarray(pred.dataobj)
    spacing = [abs(float(label.affine[k, k])) for k in range(3)]
    out = {}
    for key, members in STRUCTURES.items():
        g, p = np.isin(truth, members), np.isin(guess, members)
        assert g.any()
        out[key] = (float(binary.dc(p, g)), float(binary.assd(p, g, voxelspacing=spacing)) if p.any() else 350.0)
    return out


def test_2023_config_trains_tests_with_a_vs_row_and_pseudo_labels_the_target(tmp_path):
    pytest.importorskip('medpy.metric.binary')
    raw = write_crossmoda_release(tmp_path / 'raw', naming='2023', num_source=6, num_target=2, num_val=1,
                                  size=SIZE, num_slices=SLICES)
    data = tmp_path / 'crossmoda2023'
    prepare(CONVERTERS['crossmoda'](), raw, data, workers=2, previews=0)
    options = tiny_overrides(data, scale=32, iters=2, base_channels=8, batch_size=2, workers=0) + [
        'model.decode_head.loss_decode.class_weight=[0.02,1.0,1.0,1.0]']
    no_val = ['train_cfg.val_begin=3']
    run(mim_train(CONFIG, tmp_path / 'train', options + no_val, ['--gpus', '0']), log=tmp_path / 'train.log', cwd=REPO)
    checkpoint = last_checkpoint(tmp_path / 'train')
    pred = tmp_path / 'pred'
    run(mim_test(CONFIG, checkpoint, tmp_path / 'test', options, ['--gpus', '0', '--out', str(pred)]),
        log=tmp_path / 'test.log', cwd=REPO)

    val_cases = sorted({re.sub(r'_\d{4}$', '', s) for s in (data / 'splits/val.txt').read_text().split()})
    assert sorted(c.split('_')[1] for c in val_cases) == ['etz', 'ldn', 'ukm']
    source = raw / 'crossmoda23_training/TrainingSource'
    hand = {c: _by_medpy(pred / 'volumes' / f'{c}.nii.gz', source / f'{c}_Label.nii.gz') for c in val_cases}
    with open(pred / 'volumes' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['case'], r['class']) for r in rows] == [(c, k) for c in val_cases for k in STRUCTURES]
    for r in rows:
        dice, assd = hand[r['case']][r['class']]
        assert float(r['dice']) == pytest.approx(dice, abs=1e-12)
        assert float(r['assd']) == pytest.approx(assd, abs=1e-9)

    # evaluate_volumes --data: the class names from dataset.json give the same vs rows
    from mmseg_medical.evaluation.cli import main as evaluate_main

    table = tmp_path / 'evaluate.csv'
    assert evaluate_main(['--pred', str(pred / 'volumes'), '--data', str(data), '--split', 'val', '--out', str(table),
                          '--protocol', 'crossmoda', '--bootstrap', '0']) == 0
    with open(table, newline='') as f:
        scored = list(csv.DictReader(f))
    assert [(r['case'], r['class']) for r in scored] == [(c, k) for c in val_cases for k in STRUCTURES]
    for r in scored:
        assert float(r['dice']) == pytest.approx(hand[r['case']][r['class']][0], abs=1e-12)

    metrics = read_test_metrics(tmp_path / 'test')
    log = (tmp_path / 'test.log').read_text()
    assert re.search(rf'^\| vs \| {len(val_cases)} \| ', log, re.M)
    assert 'Site ukm (1 cases)' in log and 'Site London (1 cases)' in log and 'Site Tilburg (1 cases)' in log
    for key, name in NAMES.items():
        dice = np.array([hand[c][key][0] for c in val_cases])
        assert metrics[f'volume/Dice.{name}'] == pytest.approx(100 * dice.mean(), abs=ROUNDED)
        assert metrics[f'volume/Dice_median.{name}'] == pytest.approx(100 * np.median(dice), abs=ROUNDED)
        for case in val_cases:
            site = {'etz': 'Tilburg', 'ldn': 'London', 'ukm': 'ukm'}[case.split('_')[1]]
            assert metrics[f'volume/Dice.{name}.{site}'] == pytest.approx(100 * hand[case][key][0], abs=ROUNDED)
    # the means over structures stay over the three classes: the union is not counted twice
    per_class = [np.mean([hand[c][k][0] for c in val_cases]) for k in ('1', '2', '3')]
    assert metrics['volume/mDice'] == pytest.approx(100 * np.mean(per_class), abs=ROUNDED)

    # the test report reads the vs rows: a column group of their own, named as a union
    from mmseg_medical.report import main as report_main

    assert report_main([str(pred), '--data', str(data)]) == 0
    page = (pred / 'report.html').read_text()
    assert 'vs (union of classes)' in page and 'vs_intrameatal (class 1)' in page

    # self-training on the T2 target: pseudo labels over the 4 classes, then the -pseudo config's train set
    cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(CONFIG), str(checkpoint), '--data', str(data),
           '--split', 'target', '--portion', '0.6', '--out-split', 'target_pseudo', '--cfg-options', *options]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    target = (data / 'splits/target.txt').read_text().split()
    train = (data / 'splits/train.txt').read_text().split()
    assert sorted({re.sub(r'_\d{4}$', '', s) for s in target}) == sorted(
        p.name[:-len('_T2.nii.gz')] for p in (raw / 'crossmoda23_training/TrainingTarget').glob('*_T2.nii.gz'))
    assert (data / 'splits/train+target_pseudo.txt').read_text().split() == train + target
    for stem in target:
        mask = cv2.imread(str(data / 'pseudo_masks/target_pseudo' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= {0, 1, 2, 3, 255}
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(str(PSEUDO_CONFIG))
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': str(data) + '/'})
    init_default_scope('mmseg')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert dataset.metainfo['classes'] == ('background', 'vs_intrameatal', 'vs_extrameatal', 'cochlea')
    assert [Path(dataset.get_data_info(i)['seg_map_path']).stem for i in range(len(dataset))] == train + target

    # inference finds the crossmoda converter and the 2023 settings from the config's dataset type and data root
    from mmseg_medical.inference import converter_for, load_config

    converter = converter_for(load_config(CONFIG, {'test_dataloader.dataset.data_root': str(data) + '/'}))
    assert (converter.name, converter.dataset_type) == ('crossmoda', 'CrossMoDA2023Dataset')
    assert converter.label_map.classes == dataset.metainfo['classes']
    assert converter.settings()['edition'] == '2023'
