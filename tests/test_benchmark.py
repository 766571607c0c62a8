"""The benchmark runner on two tiny configs: table, csv, charts, and resuming without re-running; resume
keyed on config and --cfg-options with the mim calls replaced by fakes."""
import csv
import json
import re
from pathlib import Path

import pytest

from mmseg_medical import benchmark
from mmseg_medical.benchmark import PRESETS, main, resolve_configs
from mmseg_medical.runs import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def test_presets_point_at_shipped_configs():
    for name, configs in PRESETS.items():
        assert len(resolve_configs(configs)) == 3, name


def test_two_configs_then_resume(cranium_data, tmp_path, capsys, monkeypatch):
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
    for row, log in zip(data, [sorted(tmp_path.glob(f'{Path(c).stem}-*/test/mim_test.log'))[0] for c in configs]):
        # the numbers mmengine printed at the end of that run's mim test (read here from the text log)
        printed = [ln for ln in log.read_text().splitlines() if 'Iter(test)' in ln and 'mIoU:' in ln][-1]
        for key in ('mIoU', 'mDice', 'volume/mDice', 'volume/mHD95'):
            assert float(row[key]) == pytest.approx(float(re.search(re.escape(key) + r': (\S+)', printed).group(1)),
                                                    abs=1e-2), key
    for chart in ('mIoU.png', 'mDice.png', 'volume_mDice.png', 'volume_mNSD.png', 'volume_mHD95.png'):
        assert (tmp_path / chart).stat().st_size > 1000
    capsys.readouterr()
    logs = sorted(tmp_path.glob('*/train/mim_train.log'))
    stamps = [p.stat().st_mtime_ns for p in logs]

    def no_run(*args, **kwargs):
        raise AssertionError('resume must not train or test again')

    monkeypatch.setattr(benchmark, 'run', no_run)
    assert main(argv) == 0
    assert capsys.readouterr().out.count('skip ') == 2
    assert [p.stat().st_mtime_ns for p in logs] == stamps


def test_unknown_config_is_one_error(tmp_path, capsys):
    assert main(['--configs', 'configs/nope/*.py', '--work-dir', str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == 'error: configs/nope/*.py: no config matches'


class FakeMim:
    """Stands in for the mim calls: records them, writes the logs and gives each test run its own mIoU."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(benchmark, 'run', self.run)
        monkeypatch.setattr(benchmark, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
        monkeypatch.setattr(benchmark, 'read_test_metrics', self.read_test_metrics)
        monkeypatch.setattr(benchmark, 'describe', lambda c, o: {
            'config': c.name, 'method': c.stem.split('_')[0], 'backbone': 'unet', 'head': 'FCNHead',
            'crop_size': '32x32', 'lr': 0.01})

    def run(self, cmd, log=None, cwd=None):
        options = cmd[cmd.index('--cfg-options') + 1:] if '--cfg-options' in cmd else []
        self.calls.append((cmd[1], Path(cmd[3]).name, options))
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(' '.join(map(str, cmd)))

    def read_test_metrics(self, test_dir):
        return {'mIoU': float(len(self.calls)), 'mDice': 1.0}

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def test_resume_is_keyed_on_config_and_cfg_options(tmp_path, monkeypatch, capsys):
    fake = FakeMim(monkeypatch)
    configs = [str(REPO / PRESETS['cranium-lr'][0]), str(REPO / PRESETS['cranium-lr'][1])]
    names = [Path(c).name for c in configs]
    base = ['--configs', *configs, '--work-dir', str(tmp_path), '--gpus', '0']
    opts_a, opts_b = ['train_cfg.max_iters=4'], ['train_cfg.max_iters=8']

    assert main(base + ['--cfg-options', *opts_a]) == 0
    assert fake.take() == [('train', names[0], opts_a), ('test', names[0], opts_a),
                           ('train', names[1], opts_a), ('test', names[1], opts_a)]
    assert main(base + ['--cfg-options', *opts_a]) == 0  # same config and options: nothing runs
    assert fake.take() == [] and capsys.readouterr().out.count('skip ') == 2
    assert main(base + ['--cfg-options', *opts_b]) == 0  # other options: a new run of each config
    assert fake.take() == [('train', names[0], opts_b), ('test', names[0], opts_b),
                           ('train', names[1], opts_b), ('test', names[1], opts_b)]
    with open(tmp_path / 'results.csv') as f:
        assert [float(r['mIoU']) for r in csv.DictReader(f)] == [2.0, 4.0]  # the option-B runs' own results
    assert main(base) == 0  # no options at all is a third key
    assert [c[0] for c in fake.take()] == ['train', 'test', 'train', 'test']

    run_dirs = sorted(p.parent for p in tmp_path.glob('*/run_key.json'))
    assert len(run_dirs) == 6
    keys = [json.loads((d / 'run_key.json').read_text()) for d in run_dirs]
    assert sorted((k['config'], tuple(k['cfg_options'])) for k in keys) == sorted(
        (n, tuple(o)) for n in names for o in (opts_a, opts_b, []))


def test_finished_training_is_not_repeated_and_foreign_dirs_refused(tmp_path, monkeypatch, capsys):
    fake = FakeMim(monkeypatch)
    config = str(REPO / PRESETS['cranium-lr'][0])
    argv = ['--configs', config, '--work-dir', str(tmp_path), '--gpus', '0', '--cfg-options', 'x=1']
    assert main(argv) == 0
    (run_dir,) = [p.parent for p in tmp_path.glob('*/result.json')]
    (run_dir / 'result.json').unlink()  # interrupted after training
    fake.take()
    assert main(argv) == 0
    assert [c[0] for c in fake.take()] == ['test']
    (run_dir / 'result.json').unlink()
    (run_dir / 'run_key.json').write_text(json.dumps({'config': 'other.py', 'cfg_options': []}))
    capsys.readouterr()
    assert main(argv) == 1
    assert 'belongs to another run' in capsys.readouterr().err and fake.take() == []


# ---- covid19-task1: one config on the five official folds, table next to the published row ----------------
# ../shared/NOTES.md: the 2D U-Net baseline, Task 1 mean (DSC / NSD, %).
PUBLISHED = {'left_lung': (95.1, 84.6), 'right_lung': (95.6, 85.5), 'infection': (60.9, 61.5)}


CLASSES = ('left_lung', 'right_lung', 'infection')


def _fold_metrics(fold: int) -> dict:
    """What read_test_metrics gives for a fold's test run: VolumeMetric's keys (%), written by hand.

    Class i (0, 1, 2): DSC mean 80 - 20 i + 2 fold, std 10.328 + i; NSD mean 10 below, std 5.164 + i.
    """
    out = {'mIoU': 1.0, 'volume/mDice': 0.0}
    for i, c in enumerate(CLASSES):
        out[f'volume/Dice.{c}'] = 80.0 - 20 * i + 2 * fold
        out[f'volume/Dice_std.{c}'] = 10.328 + i
        out[f'volume/NSD.{c}'] = 70.0 - 20 * i + 2 * fold
        out[f'volume/NSD_std.{c}'] = 5.164 + i
    return out


def test_covid19_task1_preset_runs_five_folds_and_writes_the_table(tmp_path, monkeypatch, capsys):
    preset = benchmark.FOLD_PRESETS['covid19-task1']
    assert resolve_configs([preset.config])[0].name == \
        'fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
    calls = []

    def fake_run(cmd, log=None, cwd=None):
        options = cmd[cmd.index('--cfg-options') + 1:]
        calls.append((cmd[1], options))
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text('no VolumeMetric table in this log: the table comes from the returned keys')

    def fake_metrics(test_dir):  # the fold of the test run just made
        return _fold_metrics(int(re.search(r'task1_fold(\d)_test', ' '.join(calls[-1][1])).group(1)))

    monkeypatch.setattr(benchmark, 'run', fake_run)
    monkeypatch.setattr(benchmark, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
    monkeypatch.setattr(benchmark, 'read_test_metrics', fake_metrics)
    assert main(['--preset', 'covid19-task1', '--work-dir', str(tmp_path), '--gpus', '0',
                 '--cfg-options', 'train_cfg.max_iters=4']) == 0
    assert [c[0] for c in calls] == ['train', 'test'] * 5
    for k in range(5):
        assert calls[2 * k][1] == ['train_cfg.max_iters=4', f'train_dataloader.dataset.ann_file=splits/task1_fold{k}_train.txt',
                                   f'val_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt',
                                   f'test_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt']
    lines = (tmp_path / 'fold_table.md').read_text().splitlines()
    assert lines[0] == ('| fold | left_lung DSC | left_lung NSD | right_lung DSC | right_lung NSD | infection DSC '
                        '| infection NSD |')
    assert lines[2] == '| 0 | 80.0 ± 10.3 | 70.0 ± 5.2 | 60.0 ± 11.3 | 50.0 ± 6.2 | 40.0 ± 12.3 | 30.0 ± 7.2 |'
    assert lines[6] == '| 4 | 88.0 ± 10.3 | 78.0 ± 5.2 | 68.0 ± 11.3 | 58.0 ± 6.2 | 48.0 ± 12.3 | 38.0 ± 7.2 |'
    # mean over folds: 80 + 2 · (0 + 1 + 2 + 3 + 4) / 5 = 84.0; std of the fold means 2 · sqrt(10 / 4) = 3.16
    assert lines[7] == ('| **mean** | **84.0** ± 3.2 | **74.0** ± 3.2 | **64.0** ± 3.2 | **54.0** ± 3.2 | '
                        '**44.0** ± 3.2 | **34.0** ± 3.2 |')
    published = [f'{v:.1f}' for c in CLASSES for v in PUBLISHED[c]]
    assert lines[8] == '| 2D U-Net (published, Task 1 mean) | ' + ' | '.join(published) + ' |'
    with open(tmp_path / 'fold_table.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['fold', 'class', 'metric', 'mean', 'std'] and len(rows) == 1 + 5 * 6 + 6 + 6
    assert rows[1] == ['0', 'left_lung', 'DSC', '80.0', '10.328']
    assert rows[6] == ['0', 'infection', 'NSD', '30.0', '7.164']
    assert rows[31] == ['mean', 'left_lung', 'DSC', '84.0', '']
    assert (tmp_path / 'fold_table.png').stat().st_size > 0
    # resumed: nothing is run again, the same table is written from the stored result.json
    calls.clear()
    assert main(['--preset', 'covid19-task1', '--work-dir', str(tmp_path), '--gpus', '0',
                 '--cfg-options', 'train_cfg.max_iters=4']) == 0
    assert calls == [] and (tmp_path / 'fold_table.md').read_text().splitlines()[2] == lines[2]


def test_missing_volume_keys_are_one_error(tmp_path, monkeypatch, capsys):
    """A run without VolumeMetric's std keys (or with a null from the JSON dump) is one error line."""
    metrics = _fold_metrics(0)
    del metrics['volume/Dice_std.right_lung']
    with pytest.raises(RuntimeError, match=r'no volume/Dice_std\.right_lung in the test metrics'):
        benchmark.fold_summary(metrics, CLASSES, tmp_path / 'result.json')
    metrics = {**_fold_metrics(0), 'volume/NSD.infection': None}
    with pytest.raises(RuntimeError, match=r'no volume/NSD\.infection'):
        benchmark.fold_summary(metrics, CLASSES, tmp_path / 'result.json')
    monkeypatch.setattr(benchmark, 'run', lambda cmd, log=None, cwd=None: None)
    monkeypatch.setattr(benchmark, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
    monkeypatch.setattr(benchmark, 'read_test_metrics', lambda d: {'mIoU': 1.0})
    assert main(['--preset', 'covid19-task1', '--work-dir', str(tmp_path), '--gpus', '0']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: covid19-task1: ') and 'no volume/Dice.left_lung' in err[0]
