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


def test_protocol_option_retests_without_retraining(tmp_path, monkeypatch, capsys):
    """--protocol NAME reaches the test command as the VolumeMetric's protocol; another protocol re-tests only."""
    fake = FakeMim(monkeypatch)
    config = str(REPO / PRESETS['cranium-lr'][0])
    base = ['--configs', config, '--work-dir', str(tmp_path), '--gpus', '0', '--cfg-options', 'x=1']
    assert main(base + ['--protocol', 'hemseg']) == 0
    assert fake.take() == [('train', Path(config).name, ['x=1']),
                           ('test', Path(config).name, ['x=1', 'test_evaluator.metrics.1.protocol=hemseg'])]
    assert 'protocol `hemseg` for every test' in (tmp_path / 'results.md').read_text()
    assert main(base + ['--protocol', 'hemseg']) == 0 and fake.take() == []
    assert main(base + ['--protocol', 'default']) == 0
    assert fake.take() == [('test', Path(config).name, ['x=1', 'test_evaluator.metrics.1.protocol=default'])]
    assert main(base + ['--protocol', 'nope']) == 1
    assert 'nope' in capsys.readouterr().err


# ---- COVID-19-CT-Seg fold presets: tables from per-case rows, the published rows, the runs they make -------------
# The benchmark README's result table (github.com/JunMa11/COVID-19-CT-Seg-Benchmark), typed here: DSC, NSD (%) as
# printed, for left lung, right lung, infection (COVID-19-CT-Seg) and infection (MosMed).
README_2D = {
    'Task1-Separate': ['95.1 ± 7.9', '84.6 ± 12.7', '95.6 ± 7.4', '85.5 ± 12.8', '60.9 ± 24.5', '61.5 ± 27.0',
                       '53.7 ± 21.4', '61.5 ± 21.2'],
    'Task1-Union': ['87.3 ± 15.8', '70.5 ± 18.7', '89.4 ± 12.8', '71.0 ± 17.8', '57.7 ± 26.3', '57.2 ± 29.0',
                    '52.2 ± 21.6', '46.2 ± 18.3'],
}
README_3D = {
    'Task1-Separate': ['85.8 ± 10.5', '71.2 ± 13.8', '87.9 ± 9.3', '74.8 ± 11.9', '67.3 ± 22.3', '70.0 ± 24.4',
                       '58.8 ± 20.6', '66.4 ± 20.3'],
    'Task1-Union': ['64.6 ± 26.4', '51.1 ± 23.4', '75.0 ± 16.8', '57.7 ± 17.4', '61.0 ± 26.2', '61.8 ± 27.4',
                    '48.2 ± 22.1', '41.4 ± 19.1'],
}
# A hand-written fold_cases.csv: two folds, left lung only (fractions; nan = a case both empty under the protocol).
TINY_CASES = """fold,case,class,dice,nsd,test_set,source
0,a,left_lung,0.9,0.8,covid19,joint model
0,b,left_lung,0.7,0.6,covid19,joint model
1,c,left_lung,0.8,0.5,covid19,joint model
1,d,left_lung,0.6,nan,covid19,joint model
"""


def test_fold_table_pools_every_case_for_the_all_row(tmp_path):
    """By hand (%): DSC fold 0: 80.0 ± 14.142 (sample std), fold 1: 70.0 ± 14.142, all four: 75.0 ± sqrt(500/3) =
    12.910; NSD fold 0: 70.0 ± 14.142, fold 1: 50.0 (one value, the nan left out), all three: 63.333 ±
    sqrt(466.67/2) = 15.275 (the std of the fold means would be 7.07 and 14.14)."""
    rows = [{**r, 'fold': int(r['fold']), 'dice': float(r['dice']), 'nsd': float(r['nsd'])}
            for r in csv.DictReader(TINY_CASES.splitlines())]
    preset = benchmark.FOLD_PRESETS['covid19-task1-union']
    paths = benchmark.write_fold_tables('covid19-task1-union', preset, rows, tmp_path, 'covid19', [0, 1], False)
    assert [p.name for p in paths] == ['fold_cases.csv', 'fold_table.md', 'fold_table.csv', 'fold_table.png']
    assert (tmp_path / 'fold_cases.csv').read_text().splitlines()[0] == 'fold,case,class,dice,nsd,test_set,source'
    with open(tmp_path / 'fold_table.csv') as f:
        table = {(r['test_set'], r['fold'], r['class'], r['metric']): r for r in csv.DictReader(f)}
    expected = {('0', 'DSC'): (80.0, 14.1421, 2), ('1', 'DSC'): (70.0, 14.1421, 2), ('all', 'DSC'): (75.0, 12.9099, 4),
                ('0', 'NSD'): (70.0, 14.1421, 2), ('1', 'NSD'): (50.0, 0.0, 1), ('all', 'NSD'): (63.3333, 15.2753, 3)}
    for (fold, metric), (mean, std, n) in expected.items():
        row = table[('covid19', fold, 'left_lung', metric)]
        assert (float(row['mean']), float(row['std']), int(row['n'])) == (mean, std, n), (fold, metric)
    md = (tmp_path / 'fold_table.md').read_text().splitlines()
    assert '| **all** | **75.0** ± 12.9 | **63.3** ± 15.3 | – | – | – | – | – | – |' in md
    assert '| 1 | 70.0 ± 14.1 | 50.0 ± 0.0 | – | – | – | – | – | – |' in md
    assert 'protocol `covid19`' in (tmp_path / 'fold_table.md').read_text()
    assert 'MosMed: not run (pass --mosmed DIR' in (tmp_path / 'fold_table.md').read_text()
    assert table[('covid19', '2D U-Net Task1-Union', 'infection', 'NSD')]['mean'] == '57.2'
    assert table[('mosmed', '2D U-Net Task1-Union', 'infection', 'NSD')]['mean'] == '46.2'


@pytest.mark.parametrize('name,row', [('covid19-task1-union', 'Task1-Union'), ('covid19-task1-separate', 'Task1-Separate'),
                                      ('covid19-task1', 'Task1-Union')])
def test_each_task1_preset_shows_its_own_published_rows(tmp_path, name, row):
    preset = benchmark.FOLD_PRESETS[name]
    benchmark.write_fold_tables(name, preset, [], tmp_path, 'covid19', list(range(5)), True)
    md = (tmp_path / 'fold_table.md').read_text()
    assert f'| 2D U-Net {row} (published) | ' + ' | '.join(README_2D[row]) + ' |' in md
    assert f'| 3D U-Net {row} (published) | ' + ' | '.join(README_3D[row]) + ' |' in md
    other = 'Task1-Separate' if row == 'Task1-Union' else 'Task1-Union'
    assert other not in md.replace('(it was shown beside Task1-Separate before)', '')


class FakeFoldMim:
    """Stands in for mim in the fold presets: records each call; a test run writes VolumeMetric's per-case CSV for two
    cases, DSC = 0.1 × (fold + 1) for every class, NSD = DSC / 2."""

    CLASSES = {'task1-512x512': 3, 'task1-lung-512x512': 2, 'task1-infection-512x512': 1}

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(benchmark, 'run', self.run)
        monkeypatch.setattr(benchmark, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')

    def run(self, cmd, log=None, cwd=None):
        options = cmd[cmd.index('--cfg-options') + 1:] if '--cfg-options' in cmd else []
        self.calls.append((cmd[1], Path(cmd[3]).name, options, cmd))
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(' '.join(map(str, cmd)))
        if cmd[1] == 'test':
            out = Path(cmd[cmd.index('--out') + 1])
            fold = int(re.search(r'task1_fold(\d)_', ' '.join(options)).group(1))
            n = next(v for k, v in self.CLASSES.items() if Path(cmd[3]).name.endswith(f'covid19-{k}.py'))
            (out / 'volumes').mkdir(parents=True)
            dice = 0.1 * (fold + 1)
            lines = ['case,class,dice,nsd,empty'] + [f'{case},{c},{dice},{dice / 2},' for case in ('x', 'y')
                                                    for c in range(1, n + 1)]
            (out / 'volumes' / 'metrics.csv').write_text('\n'.join(lines) + '\n')

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def test_separate_preset_trains_two_models_per_fold_and_scores_mosmed(tmp_path, monkeypatch, capsys):
    fake = FakeFoldMim(monkeypatch)
    mosmed = tmp_path / 'mosmed'
    mosmed.mkdir()
    (mosmed / 'manifest.csv').write_text('')
    argv = ['--preset', 'covid19-task1-separate', '--work-dir', str(tmp_path / 'w'), '--gpus', '0', '--mosmed',
            str(mosmed), '--cfg-options', 'train_cfg.max_iters=4']
    assert main(argv) == 0
    calls = fake.take()
    lung, infection = (benchmark._cfg(f'task1-{m}').split('/')[-1] for m in ('lung', 'infection'))
    assert [(c[0], c[1]) for c in calls] == [(v, m) for _ in range(5) for m, tests in ((lung, 1), (infection, 2))
                                             for v in ['train'] + ['test'] * tests]
    for k in range(5):
        train = [c for c in calls if c[0] == 'train'][2 * k]
        assert train[2] == ['train_cfg.max_iters=4', f'train_dataloader.dataset.ann_file=splits/task1_fold{k}_train.txt',
                            f'val_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt',
                            f'test_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt']
    tests = [c for c in calls if c[0] == 'test']
    assert all(c[2][-1] == 'test_evaluator.metrics.1.protocol=covid19' and '--out' in c[3] for c in tests)
    mosmed_tests = [c for c in tests if f'test_dataloader.dataset.data_root={mosmed.resolve()}/' in c[2]]
    assert len(mosmed_tests) == 5 and all(c[1] == infection for c in mosmed_tests)
    assert all('test_dataloader.dataset.ann_file=splits/test.txt' in c[2] for c in mosmed_tests)
    with open(tmp_path / 'w' / 'fold_cases.csv') as f:
        rows = list(csv.DictReader(f))
    # per fold: 2 cases x (left, right lung + infection) on COVID-19-CT-Seg + 2 MosMed infection rows
    assert len(rows) == 5 * 2 * 4
    assert {(r['test_set'], r['class']) for r in rows} == {('covid19', 'left_lung'), ('covid19', 'right_lung'),
                                                            ('covid19', 'infection'), ('mosmed', 'infection')}
    md = (tmp_path / 'w' / 'fold_table.md').read_text()
    # DSC per fold 10 (k + 1) %, all: mean 30.0, sample std of 10, 10, 20, 20, ..., 50, 50 = sqrt(2000 / 9) = 14.9
    assert '| 0 | 10.0 ± 0.0 | 5.0 ± 0.0 | 10.0 ± 0.0 |' in md
    assert '| **all** | **30.0** ± 14.9 | **15.0** ± 7.5 |' in md
    assert '| 2D U-Net Task1-Separate (published) | ' + ' | '.join(README_2D['Task1-Separate']) + ' |' in md
    capsys.readouterr()
    assert main(argv) == 0 and fake.take() == []  # resumed: nothing runs again
    assert capsys.readouterr().out.count('skip test') == 15


def test_old_task1_name_is_the_union_preset_with_a_note(tmp_path, monkeypatch, capsys):
    fake = FakeFoldMim(monkeypatch)
    assert main(['--preset', 'covid19-task1', '--work-dir', str(tmp_path), '--gpus', '0', '--folds', '2']) == 0
    assert [(c[0], c[1]) for c in fake.take()] == [('train', benchmark._cfg('task1').split('/')[-1]),
                                                   ('test', benchmark._cfg('task1').split('/')[-1])]
    out = capsys.readouterr().out
    assert out.startswith('note: covid19-task1 is the union preset under its old name')
    assert 'Task1-Union' in (tmp_path / 'fold_table.md').read_text()
    assert main(['--preset', 'covid19-task1', '--work-dir', str(tmp_path), '--gpus', '0', '--folds', '5']) == 1
    assert 'folds [5] do not exist' in capsys.readouterr().err


def test_fold_options_are_rejected_for_config_lists(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['--preset', 'cranium-lr', '--work-dir', str(tmp_path), '--folds', '1'])
    assert '--mosmed and --folds go with a fold preset' in capsys.readouterr().err


def test_every_fold_preset_points_at_shipped_configs():
    for name, preset in benchmark.FOLD_PRESETS.items():
        for experiment in preset.experiments:
            for model in experiment.models:
                assert len(resolve_configs([model.config])) == 1, (name, model.config)
                assert all(ref in benchmark.PUBLISHED for ref in experiment.references)
