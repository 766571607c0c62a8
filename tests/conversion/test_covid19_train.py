"""A Task 1 fold config (fold 3 by --cfg-options, as documented) trains 2 iterations and tests with the
benchmark's volume metrics on that fold's 16 test cases."""
from __future__ import annotations

from pathlib import Path

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic.covid19 import write_covid19_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
FOLD3_TRAIN = ['coronacases_003', 'coronacases_005', 'radiopaedia_40_86625_0', 'radiopaedia_27_86410_0']  # NOTES.md


def test_fold_config_trains_and_tests_with_volume_metrics(tmp_path):
    write_covid19_release(tmp_path / 'raw', 'zenodo', num_slices=3, size=32)
    data = tmp_path / 'covid19'
    prepare(CONVERTERS['covid19'](), tmp_path / 'raw', data, workers=2, previews=0)
    options = tiny_overrides(data, scale=32, iters=2, base_channels=8, batch_size=2, workers=0) + [
        f'{loader}.dataset.ann_file=splits/task1_fold3_{split}.txt'
        for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'test'), ('test_dataloader', 'test'))]
    run(mim_train(CONFIG, tmp_path / 'train', options, ['--gpus', '0']), log=tmp_path / 'train.log', cwd=REPO)
    run(mim_test(CONFIG, last_checkpoint(tmp_path / 'train'), tmp_path / 'test', options, ['--gpus', '0']),
        log=tmp_path / 'test.log', cwd=REPO)
    metrics = read_test_metrics(tmp_path / 'test')
    for cls in ('left_lung', 'right_lung', 'infection'):
        for name in ('Dice', 'NSD'):
            assert 0.0 <= metrics[f'volume/{name}.{cls}'] <= 100.0
    log = (tmp_path / 'test.log').read_text()
    assert 'volume metrics over 16 cases' in log  # the fold's test cases, none of its 4 training cases
    assert not any(f'{c}_0000' in (data / 'splits' / 'task1_fold3_test.txt').read_text() for c in FOLD3_TRAIN)
