"""The benchmark runner on two tiny configs (the cranium-2.5d preset: a 1-slice config and its 2.5D counterpart):
table, csv, chart, and resuming without re-running; resume keyed on config and --cfg-options with the mim calls
replaced by fakes; run labels; the charts read back from the matplotlib figures the runner saves."""
import csv
import json
import re
from pathlib import Path

import pytest
from matplotlib.container import BarContainer

from mmseg_medical import benchmark
from mmseg_medical.benchmark import runner
from mmseg_medical.benchmark import PAIRS_2_5D, PRESETS, main, resolve_configs, results_figure, run_labels
from mmseg_medical.runs import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def test_presets_point_at_shipped_configs():
    from mmengine.config import Config

    for name, configs in PRESETS.items():
        assert len(resolve_configs(configs)) == len(configs) == (2 if name in PAIRS_2_5D else 3), name
    for name, config in PAIRS_2_5D.items():  # a 1-slice config and the 2.5D one beside it (LoadSliceStack)
        plain, stacked = PRESETS[name]
        assert plain == config and stacked == config.replace('-512x512', '-2.5d-512x512').replace(
            '-256x256', '-2.5d-256x256')
        loaders = [Config.fromfile(str(REPO / c)).train_dataloader.dataset.pipeline[0]['type']
                   for c in (plain, stacked)]
        assert loaders == ['LoadImageFromFile', 'LoadSliceStack'], name    # as resolved (2023: inherited)


def test_two_configs_then_resume(cranium_data, tmp_path, capsys, monkeypatch):
    """The cranium-2.5d preset shrunk: the lr-0.01 config and its 2.5D version side by side in one table."""
    configs = [str(REPO / c) for c in PRESETS['cranium-2.5d']]
    options = tiny_overrides(cranium_data, scale=32, iters=4, workers=0)
    argv = ['--preset', 'cranium-2.5d', '--work-dir', str(tmp_path), '--cfg-options', *options]
    assert main(argv) == 0
    table = (tmp_path / 'results.md').read_text().splitlines()
    assert table[0] == ('| run | Method | Backbone | Crop Size | lr | input | mIoU (%) | mDice (%) | vol. Dice (%) '
                        '| vol. NSD (%) | vol. HD95 (mm) | config |')
    rows = [ln for ln in table[2:] if ln.startswith('| ')]
    assert [r.split(' | ')[:2] for r in rows] == [['| **cranium**', 'fcn-unet-s5-d16'],
                                                  ['| **cranium-2.5d**', 'fcn-unet-s5-d16']]
    assert '| unet | 32x32 | 0.01 | slice k |' in rows[0] and '| unet | 32x32 | 0.01 | slices k-1,k,k+1 |' in rows[1]
    with open(tmp_path / 'results.csv') as f:
        data = list(csv.DictReader(f))
    assert [r['run'] for r in data] == ['cranium', 'cranium-2.5d']
    for row, log in zip(data, [sorted(tmp_path.glob(f'{Path(c).stem}-*/test/mim_test.log'))[0] for c in configs]):
        # the numbers mmengine printed at the end of that run's mim test (read here from the text log)
        printed = [ln for ln in log.read_text().splitlines() if 'Iter(test)' in ln and 'mIoU:' in ln][-1]
        for key in ('mIoU', 'mDice', 'volume/mDice', 'volume/mHD95'):
            assert float(row[key]) == pytest.approx(float(re.search(re.escape(key) + r': (\S+)', printed).group(1)),
                                                    abs=1e-2), key
    assert (tmp_path / 'results.png').stat().st_size > 1000
    capsys.readouterr()
    logs = sorted(tmp_path.glob('*/train/mim_train.log'))
    stamps = [p.stat().st_mtime_ns for p in logs]

    def no_run(*args, **kwargs):
        raise AssertionError('resume must not train or test again')

    monkeypatch.setattr(runner, 'run', no_run)
    assert main(argv) == 0
    assert capsys.readouterr().out.count('skip ') == 2
    assert [p.stat().st_mtime_ns for p in logs] == stamps


HEMSEG = 'fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py'
HEMSEG_3W = 'fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-512x512.py'


def test_run_labels_tell_every_config_apart():
    # the two that shared "fcn-unet-s5-d16 (lr 0.01)" before
    assert run_labels([HEMSEG, HEMSEG_3W]) == ['hemseg', 'hemseg-3w']
    assert run_labels(['a-b_c-MIDDLE1-d_e.py', 'a-b_c-MIDDLE2-d_e.py']) == ['MIDDLE1', 'MIDDLE2']
    assert run_labels([HEMSEG.replace('0.01-20k_hemseg', '0.01-20k_hemseg-3w'), HEMSEG_3W.replace('3w', '3w-2.5d')]
                      ) == ['hemseg-3w', 'hemseg-3w-2.5d']
    losses = [f'configs/cranium/fcn-unet-s5-d16{v}_unet_1xb16-0.01-20k_cranium-512x512.py'
              for v in ('', '-ce-1.0-dice-3.0', '-sigmoid')]  # the bare one named by the shared method field
    assert run_labels(losses) == ['fcn-unet-s5-d16', 'fcn-unet-s5-d16-ce-1.0-dice-3.0', 'fcn-unet-s5-d16-sigmoid']
    assert run_labels(PRESETS['cranium-lr']) == ['0.01', '0.001', '0.0001']
    assert run_labels(PRESETS['cranium-heads']) == ['fcn', 'pspnet', 'deeplabv3']
    assert run_labels(['fcn-x_1xb16-0.01-20k_d.py', 'psp-x_1xb16-0.001-20k_d.py']) == ['fcn…0.01', 'psp…0.001']
    assert run_labels(['a/x.py', 'b/x.py']) == ['x #1', 'x #2']  # one file name in two folders
    assert run_labels(['p-x-q-r.py', 'p-q-x-r.py']) == ['x-q', 'q-x']  # the same parts in another order
    for folder in ('cranium', 'hemseg', 'crossmoda', 'covid19'):  # every shipped config of a dataset at once
        names = sorted(p.name for p in (REPO / 'configs' / folder).glob('*.py'))
        labels = run_labels(names)
        assert len(set(labels)) == len(names) and all(labels), folder


def _result(config, values, lr=0.01):
    keys = ('mIoU', 'mDice', 'volume/mDice', 'volume/mNSD', 'volume/mHD95')
    return {'config': config, 'method': config.split('_')[0], 'backbone': 'unet', 'crop_size': '512x512', 'lr': lr,
            'input': 'slice k', 'metrics': {k: v for k, v in zip(keys, values) if v is not None}}


def test_chart_bars_are_the_table_values_one_per_run(tmp_path):
    """The figure results.png is saved from, read back: one panel per metric, its y axis named with unit and range,
    one bar per run at its own x position under the run's label, heights = results.csv, a legend of the runs."""
    results = [_result(HEMSEG, (76.48, 84.68, 90.0, 70.1, 12.5)), _result(HEMSEG_3W, (78.1, 86.0, 91.5, 74.0, 8.1)),
               _result(HEMSEG.replace('512x512', '2.5d-512x512'), (79.1, 97.0, None, 4.0, 3.1))]
    benchmark.write_results(results, tmp_path)
    with open(tmp_path / 'results.csv') as f:
        table = list(csv.DictReader(f))
    labels = [r['run'] for r in table]
    assert labels == ['hemseg', 'hemseg-3w', 'hemseg-2.5d']
    md = (tmp_path / 'results.md').read_text()
    assert all(f'| **{label}** |' in md for label in labels)
    fig = results_figure(results)
    panels = [ax for ax in fig.axes if ax.get_ylabel()]
    expected = {'mIoU': ('mIoU (%, 0–100)', 'mIoU'), 'mDice': ('mDice (%, 0–100)', 'mDice'),
                'vol. Dice': ('vol. Dice (%, 0–100)', 'volume/mDice'),
                'vol. NSD': ('vol. NSD (%, 0–100)', 'volume/mNSD'),
                'vol. HD95': ('vol. HD95 (mm, 0–15)', 'volume/mHD95')}
    assert [ax.get_ylabel() for ax in panels] == [v[0] for v in expected.values()]
    for ax, (ylabel, key) in zip(panels, expected.values()):
        assert ax.get_ylim() == ((0.0, 100.0) if '%' in ylabel else (0.0, pytest.approx(15.0)))
        ticks = {round(t, 6): label.get_text() for t, label in zip(ax.get_xticks(), ax.get_xticklabels())}
        assert sorted(ticks.values()) == sorted(labels)
        bars = {round(b.get_x() + b.get_width() / 2, 6): b.get_height() for b in ax.patches}
        drawn = {ticks[x]: h for x, h in bars.items()}  # x position → run label
        assert len(bars) == len(ax.patches)  # no two bars at one x position
        assert drawn == {r['run']: float(r[key]) for r in table if r[key] != ''}, key
        for b in ax.patches:
            assert ax.get_ylim()[0] <= b.get_height() <= ax.get_ylim()[1]
    legend = [ax.get_legend() for ax in fig.axes if ax.get_legend()][0]
    assert [t.get_text() for t in legend.get_texts()] == labels
    colours = [p.get_facecolor() for p in legend.get_patches()]
    assert len(set(colours)) == 3
    for ax in panels:  # each bar in its run's legend colour
        for b in ax.patches:
            x = round(b.get_x() + b.get_width() / 2, 6)
            label = dict(zip([round(t, 6) for t in ax.get_xticks()], [t.get_text() for t in ax.get_xticklabels()]))[x]
            assert b.get_facecolor() == colours[labels.index(label)]
    assert (tmp_path / 'results.png').stat().st_size > 1000


def test_unknown_config_is_one_error(tmp_path, capsys):
    assert main(['--configs', 'configs/nope/*.py', '--work-dir', str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == 'error: configs/nope/*.py: no config matches'


class FakeMim:
    """Stands in for the mim calls: records them, writes the logs and gives each test run its own mIoU."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(runner, 'run', self.run)
        monkeypatch.setattr(runner, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
        monkeypatch.setattr(runner, 'read_test_metrics', self.read_test_metrics)
        monkeypatch.setattr(runner, 'describe', lambda c, o: {
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


def test_resume_keys_on_parsed_values_not_their_quoting(tmp_path, monkeypatch):
    """``size='(64,64)'`` (as tiny_options.py prints it, the quotes reaching mmengine through $(...)) and
    ``size=(64, 64)`` give mmengine's DictAction the same value: one run; other values are other runs."""
    import argparse

    from mmengine.config import DictAction

    fake = FakeMim(monkeypatch)
    config = str(REPO / PRESETS['cranium-lr'][0])
    base = ['--configs', config, '--work-dir', str(tmp_path), '--gpus', '0', '--cfg-options']
    first = ["model.data_preprocessor.size='(64,64)'", 'x=1']
    same = [['model.data_preprocessor.size=(64,64)', 'x=1'], ['model.data_preprocessor.size="(64, 64)"', "x='1'"],
            ['model.data_preprocessor.size=(64,64)', 'x=0', 'x=1']]       # a later item replaces an earlier one
    other = [['model.data_preprocessor.size=(64,65)', 'x=1'], ['model.data_preprocessor.size=[64,64]', 'x=1'],
             ['model.data_preprocessor.size=(64,64)', 'x=1.0'], ['model.data_preprocessor.size=(64,64)', 'x=one']]
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    parse = lambda options: parser.parse_args(['--o', *options]).o      # noqa: E731  what mmengine is given
    assert all(parse(s) == parse(first) for s in same)
    assert all(repr(parse(o)) != repr(parse(first)) for o in other)     # 1.0 == 1, but mmengine gets a float
    assert main(base + first) == 0 and [c[0] for c in fake.take()] == ['train', 'test']
    for spelling in same:
        assert main(base + spelling) == 0 and fake.take() == [], spelling
    for options in other:
        assert main(base + options) == 0 and [c[0] for c in fake.take()] == ['train', 'test'], options
    assert len(list(tmp_path.glob('*/run_key.json'))) == 1 + len(other)


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
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(base + ['--protocol', 'nope'])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and fake.take() == []
    from mmseg_medical.evaluation.protocols import protocol_names
    assert err[-1] == (f"benchmark.py: error: --protocol: unknown evaluation protocol 'nope'; choose from "
                       f"{sorted(protocol_names())}")
    assert {'covid19', 'crossmoda', 'default', 'hemseg', 'hemseg-paper'} <= set(protocol_names())


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
    assert (tmp_path / 'fold_cases.csv').read_text().splitlines()[0] == 'fold,case,class,dice,nsd,test_set,source,empty'
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

    CLASSES = {'task1-512x512': 3, 'task1-lung-512x512': 2, 'task1-infection-512x512': 1, 'task1-2.5d-512x512': 3}

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(runner, 'run', self.run)
        monkeypatch.setattr(runner, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')

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
    assert capsys.readouterr().out.count('skip ') == 10  # each (fold, model) run: its result.json exists


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


def test_2_5d_fold_preset_puts_both_joint_models_side_by_side(tmp_path, monkeypatch):
    """covid19-task1-2.5d: per fold the joint model and its 2.5D version; one side-by-side table of their all rows
    and the Task1-Union rows, and one chart panel whose bars are those numbers."""
    fake = FakeFoldMim(monkeypatch)
    assert main(['--preset', 'covid19-task1-2.5d', '--work-dir', str(tmp_path), '--gpus', '0', '--folds', '1']) == 0
    plain, stacked = benchmark._cfg('task1').split('/')[-1], benchmark._cfg('task1-2.5d').split('/')[-1]
    calls = fake.take()
    assert [(c[0], c[1]) for c in calls] == [('train', plain), ('test', plain), ('train', stacked), ('test', stacked)]
    assert calls[2][2] == calls[0][2]  # the same fold lists for both
    md = (tmp_path / 'fold_table.md').read_text()
    side = md[md.index('### Side by side (all folds pooled): joint model vs 2.5D joint model'):].splitlines()
    # fold 1: every case DSC 20 %, NSD 10 % (the fake), for both models
    assert side[4] == ('| joint model | 20.0 ± 0.0 | 10.0 ± 0.0 | 20.0 ± 0.0 | 10.0 ± 0.0 | 20.0 ± 0.0 | 10.0 ± 0.0 '
                       '| – | – |')
    assert side[5].startswith('| 2.5D joint model | 20.0 ± 0.0 |')
    assert side[6] == '| 2D U-Net Task1-Union (published) | ' + ' | '.join(README_2D['Task1-Union']) + ' |'


def test_fold_chart_bars_are_the_fold_table_values(tmp_path):
    """The fold chart of a 2.5D comparison, read back from its figure: one panel (both models share the published
    rows), per column one bar per model and published row at distinct x positions, heights = fold_table.csv."""
    rows = [{**r, 'fold': int(r['fold']), 'dice': float(r['dice']), 'nsd': float(r['nsd'])}
            for r in csv.DictReader(TINY_CASES.splitlines())]
    rows += [{**r, 'source': '2.5D joint model', 'dice': r['dice'] / 2} for r in rows]
    preset = benchmark.FOLD_PRESETS['covid19-task1-2.5d']
    benchmark.write_fold_tables('covid19-task1-2.5d', preset, rows, tmp_path, 'covid19', [0, 1], False)
    with open(tmp_path / 'fold_table.csv') as f:
        table = {(r['source'], r['fold'], r['test_set'], r['class'], r['metric']): float(r['mean'])
                 for r in csv.DictReader(f) if r['fold'] not in ('0', '1')}
    stats = benchmark.fold_summaries(rows, [0, 1])
    cols = [(t, c, m, title) for t, c in preset.columns for m, title in benchmark.FOLD_METRICS]
    fig = benchmark.fold_figure(preset, stats, cols)
    (ax,) = fig.axes
    assert ax.get_ylabel() == 'DSC / NSD (%, 0–100)' and ax.get_ylim() == (0.0, 100.0)
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ['joint model (this run, all)', '2.5D joint model (this run, all)',
                     '2D U-Net Task1-Union (published)', '3D U-Net Task1-Union (published)']
    centres = [round(b.get_x() + b.get_width() / 2, 6) for b in ax.patches]
    assert len(set(centres)) == len(centres)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == len(names)
    for container, name in zip(containers, names):
        source, fold = ((name.split(' (')[0], 'all') if 'this run' in name
                        else ('joint model', name.replace(' (published)', '')))
        for bar in container.patches:
            i = int(round(bar.get_x() + bar.get_width() / 2))  # the column the bar stands over
            t, c, _, title = cols[i]
            assert ticks[i] == f'{benchmark.TEST_SETS[t]}\n{c} {title}'
            assert bar.get_height() == pytest.approx(table[(source, fold, t, c, title)], abs=1e-4), (name, t, c, title)
    assert containers[1].patches[0].get_height() == pytest.approx(37.5)  # left lung DSC: 75 % / 2


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


def test_cranium_paper_preset_trains_each_fold_and_leaves_out_patients_without_hemorrhage(tmp_path, monkeypatch):
    """cranium-paper: per fold k the lr-0.01 config trained on fold{k}_train and tested on fold{k}_val (default
    protocol); cases whose hemorrhage truth is empty are left out of the table; the paper's row (Dice 31.0, no
    std, no NSD) beside it. Fake per-case rows: fold k, hemorrhage patients a, b with DSC 0.2 (k + 1) and 0.4,
    patient c without hemorrhage (both empty: 1.0, must not count)."""
    calls = []

    def fake_run(cmd, log=None, cwd=None):
        options = cmd[cmd.index('--cfg-options') + 1:] if '--cfg-options' in cmd else []
        calls.append((cmd[1], Path(cmd[3]).name, options))
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text('')
        if cmd[1] == 'test':
            k = int(re.search(r'fold(\d)_val', ' '.join(options)).group(1))
            out = Path(cmd[cmd.index('--out') + 1]) / 'volumes'
            out.mkdir(parents=True)
            out.joinpath('metrics.csv').write_text(f'case,class,dice,nsd,empty\na{k},1,{0.2 * (k + 1)},0.5,\n'
                                                   f'b{k},1,0.4,0.5,\nc{k},1,1.0,1.0,both_empty\n')

    monkeypatch.setattr(runner, 'run', fake_run)
    monkeypatch.setattr(runner, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
    assert main(['--preset', 'cranium-paper', '--work-dir', str(tmp_path), '--gpus', '0', '--folds', '0', '1']) == 0
    config = 'fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
    assert [(c[0], c[1]) for c in calls] == [('train', config), ('test', config)] * 2
    for k in (0, 1):
        assert calls[2 * k][2] == [f'train_dataloader.dataset.ann_file=splits/fold{k}_train.txt',
                                   f'val_dataloader.dataset.ann_file=splits/fold{k}_val.txt',
                                   f'test_dataloader.dataset.ann_file=splits/fold{k}_val.txt']
        assert calls[2 * k + 1][2][-1] == 'test_evaluator.metrics.1.protocol=default'
    md = (tmp_path / 'fold_table.md').read_text()
    # fold 0: 20, 40 -> 30.0 ± 14.1; fold 1: 40, 40 -> 40.0 ± 0.0; all: 20, 40, 40, 40 -> 35.0 ± 10.0
    assert '| 0 | 30.0 ± 14.1 | 50.0 ± 0.0 |' in md and '| 1 | 40.0 ± 0.0 | 50.0 ± 0.0 |' in md
    assert '| **all** | **35.0** ± 10.0 | **50.0** ± 0.0 |' in md
    assert '| U-Net (Hssayeni et al. 2020) (published) | 31.0 | – |' in md
    assert 'Data 2020, 5(1):14' in md and 'patients without hemorrhage' in md
    assert "as the benchmark's Avg rows" not in md
    with open(tmp_path / 'fold_cases.csv') as f:
        assert sorted(r['case'] for r in csv.DictReader(f)) == ['a0', 'a1', 'b0', 'b1']


def test_fold_presets_take_the_launcher_options(tmp_path, monkeypatch):
    """A fold preset with --launcher slurm: one unit per (fold, model) goes to the Slurm executor built from the
    options (here one that runs them in this process as a job would: launcher slurm, its job id) and the fold
    table is the one of the in-process run."""
    from mmseg_medical.benchmark import cli

    def fake_run(cmd, log=None, cwd=None):
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text('')
        if cmd[1] == 'test':
            k = int(re.search(r'fold(\d)_val', ' '.join(cmd)).group(1))
            out = Path(cmd[cmd.index('--out') + 1]) / 'volumes'
            out.mkdir(parents=True)
            out.joinpath('metrics.csv').write_text(f'case,class,dice,nsd,empty\na{k},1,{0.1 * (k + 1)},0.5,\n')

    made = []

    class JobsHere:
        def __init__(self, *args, **kwargs):
            made.append((args, kwargs))
            self.labels = []

        def run(self, units):
            self.labels += [u.label for u in units]
            for i, unit in enumerate(units):
                runner.execute_unit(unit.spec, launcher='slurm', job_id=str(100 + i))
            made.append(self.labels)
            return []

    monkeypatch.setattr(runner, 'run', fake_run)
    monkeypatch.setattr(runner, 'last_checkpoint', lambda d: Path(d) / 'iter_4.pth')
    monkeypatch.setattr(cli, 'SlurmExecutor', JobsHere)
    base = ['--preset', 'cranium-paper', '--gpus', '0', '--folds', '0', '1']
    assert main([*base, '--work-dir', str(tmp_path / 'here')]) == 0
    assert main([*base, '--work-dir', str(tmp_path / 'slurm'), '--launcher', 'slurm', '--partition', 'p',
                 '--cpus-per-run', '4', '--max-jobs', '1', '--slurm-args', '--time=1:00:00 --qos=low']) == 0
    (args, kwargs), labels = made
    assert args == ('p', 0, 1, 4, 1, ['--time=1:00:00', '--qos=low'])
    config = 'fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
    assert labels == [f'{config} fold 0', f'{config} fold 1']
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / 'slurm').glob('*/result.json'))]
    assert sorted((r['fold'], r['launcher'], r['job_id']) for r in results) == [(0, 'slurm', '100'),
                                                                                (1, 'slurm', '101')]
    here = [json.loads(p.read_text()) for p in (tmp_path / 'here').glob('*/result.json')]
    assert {(r['launcher'], r['job_id']) for r in here} == {('local', None)}
    assert all(r['started'] <= r['finished'] for r in results + here)
    assert (tmp_path / 'slurm' / 'fold_table.md').read_text() == (tmp_path / 'here' / 'fold_table.md').read_text()
