"""Every COVID-19-CT-Seg fold preset end to end, shrunk (a few iterations of a tiny U-Net on 32² synthetic slices):
both Task 1 presets from one prepare, a Task 2 and a Task 3 preset on synthetic sources with the official lists.

mim's train and test run in this process (the same config, --cfg-options, --out and checkpoint the benchmark passes
to mim; tests/test_benchmark.py and tests/conversion/test_covid19_train.py run the real mim subprocesses). Checked
against: the benchmark's split files read as JSON, the README's published rows typed here, the pooled mean ± std
recomputed from fold_cases.csv, and Dice recomputed by hand from the written prediction and the raw release masks.
"""
from __future__ import annotations

import csv
import json
import statistics
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical import benchmark
from mmseg_medical.benchmark import runner
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import tiny_overrides
from mmseg_medical.synthetic.covid19 import (write_covid19_release, write_mosmed_release, write_msd_lung_release,
                                             write_nsclc_release, write_structseg_gtv_release,
                                             write_structseg_lung_release)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / 'projects/medical/data/covid19_splits.json'
SHARED = REPO.parent / 'shared' / 'realdata' / 'covid19'
SLICES = 3


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny convolutions on a shared 2-core machine run twice as fast on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def official(file: str) -> list:
    """A split file ``<task>_<name>`` read as JSON (../shared/realdata's decoded copy, else the package's copy)."""
    shared = SHARED / f'{file}.json'
    if shared.is_file():
        return json.loads(shared.read_text())
    return json.loads(SHIPPED.read_text())['splits'][file.split('_', 1)[1]]


def mim_in_process(cmd, log=None, cwd=None):
    """What ``mim train|test mmseg CONFIG ...`` does (mmseg's tools/train.py, tools/test.py), in this process."""
    from mmengine.runner import Runner

    verb, config, args = cmd[1], Path(cmd[3]), list(cmd[4:])
    cut = args.index('--cfg-options') if '--cfg-options' in args else len(args)
    flags, options = dict(zip(args[:cut:2], args[1:cut:2])), args[cut + 1:]
    cfg = benchmark.load_config(config, options)
    cfg.work_dir = flags['--work-dir']
    cfg.experiment_name = f'{config.stem}-{uuid.uuid4().hex[:8]}'
    if verb == 'train':
        Runner.from_cfg(cfg).train()
    else:
        cfg.load_from = flags['--checkpoint']
        if '--out' in flags:
            cfg.test_evaluator['output_dir'] = flags['--out']
            cfg.test_evaluator['keep_results'] = True
        Runner.from_cfg(cfg).test()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(' '.join(map(str, cmd)) + '\n')


@pytest.fixture
def in_process(monkeypatch):
    """The benchmark's mim calls run in this process; configs are dumped and logged unformatted (yapf's
    formatting took a second per run), as one assignment per key, so checkpoints still carry a readable config."""
    from mmengine.config import Config

    monkeypatch.setattr(runner, 'run', mim_in_process)
    # still a config text (one assignment per top-level key) that mmengine reads back: checkpoints carry it
    monkeypatch.setattr(Config, 'pretty_text', property(
        lambda self: ''.join(f'{key} = {value!r}\n' for key, value in self._cfg_dict.to_dict().items())))


def shrink(data_root: Path, validate: bool = False) -> list:
    """Two iterations of a 4-channel U-Net on 32² slices; no validation unless ``validate``; no bootstrap CI."""
    return tiny_overrides(data_root, scale=32, iters=2, base_channels=4, batch_size=2, workers=0) + [
        'test_evaluator.metrics.1.n_bootstrap=0', 'val_evaluator.metrics.1.n_bootstrap=0',
        *([] if validate else ['train_cfg.val_begin=1000'])]


def read_cases(work: Path) -> list:
    with open(work / 'fold_cases.csv') as f:
        return list(csv.DictReader(f))


def check_all_rows(work: Path, rows: list) -> int:
    """Every ``all`` row of fold_table.csv = mean ± sample std of fold_cases.csv's values (%), pooled over folds."""
    with open(work / 'fold_table.csv') as f:
        table = [r for r in csv.DictReader(f) if r['fold'] == 'all']
    for r in table:
        metric = {'DSC': 'dice', 'NSD': 'nsd'}[r['metric']]
        values = [100 * float(c[metric]) for c in rows if (c['source'], c['test_set'], c['class']) ==
                  (r['source'], r['test_set'], r['class']) and c[metric] != 'nan']
        assert int(r['n']) == len(values)
        assert float(r['mean']) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(r['std']) == pytest.approx(statistics.stdev(values), abs=1e-4)
    return len(table)


def dice_by_hand(pred: np.ndarray, truth: np.ndarray) -> float:
    return 2 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth))


@pytest.fixture(scope='module')
def covid(tmp_path_factory):
    """One prepare of COVID-19-CT-Seg (default options) and a prepared MosMed, in one data folder."""
    root = tmp_path_factory.mktemp('covid19-bench')
    release = write_covid19_release(root / 'raw', 'zenodo', num_slices=SLICES, size=32)
    mosmed_raw = write_mosmed_release(root / 'mosmed-raw', num_labelled=3, num_unlabelled=0, num_slices=SLICES)
    prepare(CONVERTERS['covid19'](), root / 'raw', root / 'data' / 'covid19', workers=2, previews=0)
    prepare(CONVERTERS['mosmed'](), mosmed_raw, root / 'data' / 'mosmed', workers=2, previews=0)
    return root, release, mosmed_raw


def test_both_task1_presets_run_from_one_prepare(covid, tmp_path, in_process):
    root, release, mosmed_raw = covid
    data, mosmed = root / 'data' / 'covid19', root / 'data' / 'mosmed'
    folds = official('Task1_Task1_COVID_datasplit')
    for name, row in (('covid19-task1-separate', 'Task1-Separate'), ('covid19-task1-union', 'Task1-Union')):
        work = tmp_path / name
        assert benchmark.main(['--preset', name, '--work-dir', str(work), '--gpus', '0', '--mosmed', str(mosmed),
                               '--cfg-options', *shrink(data)]) == 0
        rows = read_cases(work)
        for k, fold in enumerate(folds):  # every official test case of every fold, every class
            for cls in ('left_lung', 'right_lung', 'infection'):
                cases = [r['case'] for r in rows if (r['fold'], r['class'], r['test_set']) == (str(k), cls, 'covid19')]
                assert sorted(cases) == sorted(fold['val']) and len(cases) == 16
            mos = [r['case'] for r in rows if (r['fold'], r['test_set']) == (str(k), 'mosmed')]
            assert sorted(mos) == ['study_0255', 'study_0256', 'study_0257']
        assert len(rows) == 5 * (16 * 3 + 3)
        assert check_all_rows(work, rows) == 2 * 4
        md = (work / 'fold_table.md').read_text()
        assert f'2D U-Net {row} (published)' in md and f'3D U-Net {row} (published)' in md
        assert ('Task1-Union' if row == 'Task1-Separate' else 'Task1-Separate') not in md
        assert 'Cases pooled in `all`: COVID-19-CT-Seg 80, MosMed 15.' in md
        assert (work / 'fold_table.png').stat().st_size > 1000

    # Dice of one case recomputed from the written prediction and the release's own masks (nibabel, same grid):
    # the lung model against Lung_Mask, the infection model against Infection_Mask, the joint model against the
    # combined mask and, on MosMed, its class 3 against MosMed's mask 1.
    k, case = 0, folds[0]['val'][0]
    checks = [('covid19-task1-separate', 'task1-lung', 'covid19', case, 'Lung_Mask', 'left_lung', 1, 1),
              ('covid19-task1-separate', 'task1-infection', 'covid19', case, 'Infection_Mask', 'infection', 1, 1),
              ('covid19-task1-union', 'task1', 'covid19', case, 'Lung_and_Infection_Mask', 'right_lung', 2, 2),
              ('covid19-task1-union', 'task1', 'mosmed', 'study_0256', None, 'infection', 3, 1)]
    for preset, config, test_set, case_id, folder, cls, pred_value, true_value in checks:
        options = [*shrink(data), *(o.format(k=k) for o in benchmark.TASK1_FOLD)]
        run_dir = benchmark.run_dir_for(tmp_path / preset, benchmark.resolve_configs([benchmark._cfg(config)])[0],
                                        options)
        pred = np.asarray(nib.load(str(run_dir / f'test-{test_set}' / 'out' / 'volumes' / f'{case_id}.nii.gz')).dataobj)
        truth_path = (mosmed_raw / 'masks' / f'{case_id}_mask.nii.gz' if folder is None
                      else release / folder / f'{case_id}.nii.gz')
        truth = np.asarray(nib.load(str(truth_path)).dataobj)
        expected = dice_by_hand(pred == pred_value, truth == true_value)
        row = next(r for r in read_cases(tmp_path / preset) if (r['fold'], r['case'], r['class'], r['test_set']) ==
                   (str(k), case_id, cls, test_set))
        assert float(row['dice']) == pytest.approx(expected, abs=1e-9), (preset, config, test_set)


@pytest.fixture(scope='module')
def sources(covid, tmp_path_factory):
    """Synthetic Task 2/3 sources holding every case their split files name, prepared with both tasks' lists, in the
    data folder of the prepared COVID-19-CT-Seg and MosMed."""
    root, _, _ = covid
    raw = tmp_path_factory.mktemp('sources')

    def names(file):
        fold = official(file)[0]
        return fold['train'] + fold['val']

    structseg = [n[len('train_'):] for n in names('Task2_Task200_StructSegLung_datasplit')]
    write_msd_lung_release(raw / 'msd', num_slices=2, size=16, names=names('Task2_Task202_MSD_LungTumor_datasplit'))
    write_structseg_lung_release(raw / 'structseg', num_slices=2, size=16, names=structseg)
    write_structseg_gtv_release(raw / 'structseg', num_slices=2, size=16, names=structseg)
    write_nsclc_release(raw / 'nsclc-lung', 'lung', num_slices=2, size=16, names=names('Task2_Task201_NSCLCLung_datasplit'))
    write_nsclc_release(raw / 'nsclc-pe', 'pe', num_slices=2, size=16, names=names('Task2_Task204_NSCLCPE_datasplit'))
    for name, src in (('msd-lung', 'msd'), ('structseg-lung', 'structseg'), ('structseg-gtv', 'structseg'),
                      ('nsclc-lung', 'nsclc-lung'), ('nsclc-pe', 'nsclc-pe')):
        prepare(CONVERTERS[name](split=['covid19-task2', 'covid19-task3']), raw / src, root / 'data' / name,
                workers=2, previews=0)
    return root / 'data'


def _cases_of(dataset) -> set:
    return {Path(d['img_path']).stem.rsplit('_', 1)[0] for d in dataset.load_data_list()}


def test_task3_training_set_is_the_split_file(sources):
    """The Task 3 StructSeg lung config of fold 2, built as the preset builds it: its training cases are the split
    file's train list of fold 2 (train_<n> = the release's folder <n>), its validation and test cases too."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    init_default_scope('mmseg')
    config = benchmark.resolve_configs([benchmark._cfg('task3-lung-structseg')])[0]
    cfg = benchmark.load_config(config, [f'{loader}.dataset.data_root={sources}/' for loader in
                                         ('train_dataloader', 'val_dataloader', 'test_dataloader')]
                                + [o.format(k=2) for o in benchmark.TASK3_FOLD])
    fold = official('Task3_Task300_StructSegLung_datasplit')[2]

    def named(cases):
        return sorted(c if c.startswith(('coronacases', 'radiopaedia')) else f'train_{c}' for c in cases)

    assert named(_cases_of(DATASETS.build(cfg.train_dataloader.dataset))) == sorted(fold['train'])
    assert named(_cases_of(DATASETS.build(cfg.val_dataloader.dataset))) == sorted(fold['val'])
    assert named(_cases_of(DATASETS.build(cfg.test_dataloader.dataset))) == sorted(fold['test'])


def test_task2_and_task3_presets_run_shrunk(sources, tmp_path, in_process):
    # Task 2, infection: three sources, each validated in-domain, tested on the 20 cases and MosMed
    work = tmp_path / 'task2'
    assert benchmark.main(['--preset', 'covid19-task2-infection', '--work-dir', str(work), '--gpus', '0', '--mosmed',
                           str(sources / 'mosmed'), '--cfg-options', *shrink(sources, validate=True)]) == 0
    rows = read_cases(work)
    every = sorted(official('Task1_Task1_COVID_datasplit')[0]['train'] + official('Task1_Task1_COVID_datasplit')[0]['val'])
    for source in ('MSD lung tumour', 'StructSeg gross target volume', 'NSCLC pleural effusion'):
        assert sorted(r['case'] for r in rows if (r['source'], r['test_set']) == (source, 'covid19')) == every
        assert len([r for r in rows if (r['source'], r['test_set']) == (source, 'mosmed')]) == 3
    assert {r['class'] for r in rows} == {'infection'} and {r['fold'] for r in rows} == {'0'}
    assert check_all_rows(work, rows) == 3 * 4
    md = (work / 'fold_table.md').read_text()
    # the benchmark README's Task 2 rows (infection on COVID-19-CT-Seg, on MosMed), typed here
    assert '| 2D U-Net Task2-MSD (published) | 7.9 ± 11.5 | 12.9 ± 15.3 | 7.6 ± 15.8 | 9.9 ± 17.1 |' in md
    assert '| 3D U-Net Task2-NSCLC (published) | 0.4 ± 0.9 | 3.7 ± 4.8 | 0.0 ± 0.0 | 0.5 ± 1.4 |' in md
    train_logs = sorted(work.glob('*task2-infection-msd*/train/*/*.log'))
    assert train_logs and 'volume metrics over 12 cases' in train_logs[0].read_text()  # MSD's 12 in-domain val cases

    # Task 3, lung: two sources + the four COVID cases of the fold, tested on its 16 (two folds)
    work = tmp_path / 'task3'
    assert benchmark.main(['--preset', 'covid19-task3-lung', '--work-dir', str(work), '--gpus', '0', '--folds', '0',
                           '3', '--cfg-options', *shrink(sources)]) == 0
    rows = read_cases(work)
    for k in (0, 3):
        test = official('Task3_Task301_NSCLCLung_datasplit')[k]['test']
        for source in ('StructSeg lung', 'NSCLC lung'):
            for cls in ('left_lung', 'right_lung'):
                cases = [r['case'] for r in rows if (r['source'], r['fold'], r['class']) == (source, str(k), cls)]
                assert sorted(cases) == sorted(test)
    assert len(rows) == 2 * 2 * 16 * 2
    assert check_all_rows(work, rows) == 2 * 2 * 2
    md = (work / 'fold_table.md').read_text()
    assert '| 2D U-Net Task3-StructSeg (published) | 96.3 ± 7.6 | 88.7 ± 10.8 | 96.7 ± 7.0 | 89.0 ± 11.6 |' in md
    assert 'Folds run: 0, 3.' in md


@pytest.mark.parametrize('preset,folds,sources_,classes', [
    ('covid19-task2-lung', [], ('StructSeg lung', 'NSCLC lung'), ('left_lung', 'right_lung')),
    ('covid19-task3-infection', ['--folds', '4'], ('MSD lung tumour', 'StructSeg gross target volume',
                                                   'NSCLC pleural effusion'), ('infection',)),
])
def test_the_other_source_presets_run_shrunk(sources, tmp_path, in_process, preset, folds, sources_, classes):
    work = tmp_path / preset
    mosmed = ['--mosmed', str(sources / 'mosmed')] if 'infection' in preset else []
    assert benchmark.main(['--preset', preset, '--work-dir', str(work), '--gpus', '0', *folds, *mosmed,
                           '--cfg-options', *shrink(sources)]) == 0
    rows = read_cases(work)
    task1 = official('Task1_Task1_COVID_datasplit')
    test = sorted(task1[4]['val']) if folds else sorted(task1[0]['train'] + task1[0]['val'])
    for source in sources_:
        for cls in classes:
            assert sorted(r['case'] for r in rows if (r['source'], r['class'], r['test_set']) ==
                          (source, cls, 'covid19')) == test
    assert check_all_rows(work, rows) == len(sources_) * len(classes) * (2 if mosmed else 1) * 2
