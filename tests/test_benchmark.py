"""The benchmark runner on two tiny configs: table, csv, charts, and resuming without re-running."""
import csv
import time
from pathlib import Path

from mmseg_medical.benchmark import PRESETS, main, resolve_configs
from mmseg_medical.runs import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def test_presets_point_at_shipped_configs():
    for name, configs in PRESETS.items():
        assert len(resolve_configs(configs)) == 3, name


def test_two_configs_then_resume(cranium_data, tmp_path, capsys):
    configs = [str(REPO / PRESETS['cranium-lr'][0]), str(REPO / PRESETS['cranium-heads'][1])]
    options = tiny_overrides(cranium_data, scale=32, iters=4, workers=0)
    argv = ['--configs', *configs, '--work-dir', str(tmp_path), '--cfg-options', *options]
    assert main(argv) == 0
    table = (tmp_path / 'results.md').read_text().splitlines()
    assert table[0].startswith('| Method | Backbone | Crop Size | lr | mIoU | mDice | vol. Dice | vol. NSD | vol. HD95 (mm) |')
    rows = [ln for ln in table[2:] if ln.startswith('| ')]
    assert [r.split(' | ')[0] for r in rows] == ['| fcn-unet-s5-d16', '| pspnet-unet-s5-d16']
    assert all('| unet | 32x32 | 0.01 |' in r for r in rows)
    with open(tmp_path / 'results.csv') as f:
        data = list(csv.DictReader(f))
    assert len(data) == 2
    for row in data:
        assert 0 <= float(row['mIoU']) <= 100 and 0 <= float(row['volume/mDice']) <= 100
        assert float(row['volume/mHD95']) >= 0
    for chart in ('mIoU.png', 'mDice.png', 'volume_mDice.png', 'volume_mNSD.png', 'volume_mHD95.png'):
        assert (tmp_path / chart).stat().st_size > 1000
    capsys.readouterr()
    logs = sorted(tmp_path.glob('*/train/mim_train.log'))
    stamps = [p.stat().st_mtime_ns for p in logs]
    start = time.perf_counter()
    assert main(argv) == 0
    assert time.perf_counter() - start < 20  # no training or testing again
    assert capsys.readouterr().out.count('skip ') == 2
    assert [p.stat().st_mtime_ns for p in logs] == stamps


def test_unknown_config_is_one_error(tmp_path, capsys):
    assert main(['--configs', 'configs/nope/*.py', '--work-dir', str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == 'error: configs/nope/*.py: no config matches'
