"""The CrossMoDA source config trains 2 iterations on a prepared synthetic release and `mim test` logs the
VolumeMetric table: Dice and ASSD per structure over the val patients (none of the train patients)."""
from __future__ import annotations

import re
from pathlib import Path

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
NUM = r'\d+\.\d+ ± \d+\.\d+'


def test_source_config_trains_and_tests_with_volume_metrics(tmp_path):
    write_crossmoda_release(tmp_path / 'raw', num_source=5, num_target=1, num_val=1, size=32, num_slices=4)
    data = tmp_path / 'crossmoda'
    prepare(CONVERTERS['crossmoda'](), tmp_path / 'raw', data, workers=2, previews=0)
    options = tiny_overrides(data, scale=32, iters=2, base_channels=8, batch_size=2, workers=0)
    run(mim_train(CONFIG, tmp_path / 'train', options, ['--gpus', '0']), log=tmp_path / 'train.log', cwd=REPO)
    run(mim_test(CONFIG, last_checkpoint(tmp_path / 'train'), tmp_path / 'test', options, ['--gpus', '0']),
        log=tmp_path / 'test.log', cwd=REPO)

    # val patients: the case ids of the slice stems in splits/val.txt (<case>_<4-digit slice>), 4 slices each
    val_stems = (data / 'splits/val.txt').read_text().split()
    val_cases = {re.sub(r'_\d{4}$', '', s) for s in val_stems}
    train_cases = {re.sub(r'_\d{4}$', '', s) for s in (data / 'splits/train.txt').read_text().split()}
    assert val_cases and not val_cases & train_cases and len(val_stems) == 4 * len(val_cases)
    assert val_cases | train_cases == {f'crossmoda_{n}' for n in range(1, 6)}   # the 5 ceT1 patients

    log = (tmp_path / 'test.log').read_text()
    assert f'volume metrics over {len(val_cases)} cases' in log
    header = re.search(r'^\| class \| n \| (.*) \|$', log, re.M).group(1).split(' | ')
    assert header[header.index('dice')] == 'dice' and 'assd (mm)' in header
    for structure in ('vestibular_schwannoma', 'cochlea'):
        row = re.search(rf'^\| {structure} \| (\d+) \| (.*) \|$', log, re.M)
        assert row, f'no VolumeMetric row for {structure}'
        assert int(row.group(1)) == len(val_cases)
        cells = row.group(2).split(' | ')
        dice = float(re.match(NUM, cells[header.index('dice')]).group(0).split(' ± ')[0])
        assd = float(re.match(NUM, cells[header.index('assd (mm)')]).group(0).split(' ± ')[0])
        assert 0.0 <= dice <= 1.0 and assd >= 0.0
    metrics = read_test_metrics(tmp_path / 'test')
    for structure in ('vestibular_schwannoma', 'cochlea'):
        assert 0.0 <= metrics[f'volume/Dice.{structure}'] <= 100.0
        assert f'volume/ASSD_std.{structure}' in metrics
    assert metrics['volume/mASSD'] >= 0.0
