"""The COVID-19-CT-Seg benchmark's official lists: the shipped split data against the decoded split files in
../shared/realdata (and their provenance), ``--split covid19-task2`` / ``covid19-task3`` of every Task 2/3 source
against the split files read here as JSON, and the counts typed from the benchmark's README / ../shared NOTES.md.
"""
from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.base import CaseInfo
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.synthetic.covid19 import (write_covid19_release, write_msd_lung_release, write_nsclc_release,
                                             write_structseg_gtv_release, write_structseg_lung_release)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / 'projects/medical/data/covid19_splits.json'
SHARED = REPO.parent / 'shared' / 'realdata' / 'covid19'
#: converter → (Task 2 file, Task 3 file, the name the files give case id c).
SOURCES = {
    'structseg-lung': ('Task2_Task200_StructSegLung_datasplit', 'Task3_Task300_StructSegLung_datasplit', 'train_{}'),
    'nsclc-lung': ('Task2_Task201_NSCLCLung_datasplit', 'Task3_Task301_NSCLCLung_datasplit', '{}'),
    'msd-lung': ('Task2_Task202_MSD_LungTumor_datasplit', 'Task3_Task302_MSD_LungTumor_datasplit', '{}'),
    'structseg-gtv': ('Task2_Task203_StructSegTumor_datasplit', 'Task3_Task303_StructSegTumor_datasplit', 'train_{}'),
    'nsclc-pe': ('Task2_Task204_NSCLCPE_datasplit', 'Task3_Task304_NSCLCPE_datasplit', '{}'),
}
#: Task 2 train / val counts (../shared/realdata/covid19/README.md; the benchmark's README lists NSCLC-PE as 62/16).
COUNTS = {'structseg-lung': (40, 10), 'nsclc-lung': (322, 80), 'msd-lung': (51, 12), 'structseg-gtv': (40, 10),
          'nsclc-pe': (63, 15)}
#: ../shared/NOTES.md: the four training cases of Task 1 fold 0.
FOLD0_TRAIN = ['coronacases_008', 'coronacases_007', 'radiopaedia_36_86526_0', 'radiopaedia_4_85506_1']


def official(file: str) -> list:
    """A split file (``<task>_<name>``) read as JSON: ../shared/realdata's decoded copy when present, else the
    package's data file (the first test checks that they agree)."""
    shared = SHARED / f'{file}.json'
    if shared.is_file():
        return json.loads(shared.read_text())
    return json.loads(SHIPPED.read_text())['splits'][file.split('_', 1)[1]]


def _case_ids(names, template):
    prefix = template.split('{}')[0]
    return [n[len(prefix):] for n in names]


def test_shipped_split_files_equal_the_decoded_files(realdata):
    shipped = json.loads(SHIPPED.read_text())
    files = sorted((realdata / 'covid19').glob('Task*_datasplit.json'))
    assert len(files) == 12
    assert sorted(shipped['splits']) == sorted(p.stem.split('_', 1)[1] for p in files)
    for path in files:
        assert shipped['splits'][path.stem.split('_', 1)[1]] == json.loads(path.read_text()), path.name


def test_provenance_names_a_file_for_every_shipped_split():
    """Every shipped split has its source file, in the task folder its name implies (``Task1_*`` in ``Task1/``,
    ``Task2<nn>_*`` in ``Task2/``, ``Task3<nn>_*`` in ``Task3/``), and no file is named without its split; with
    ../shared the commit is the one its README names."""
    shipped = json.loads(SHIPPED.read_text())
    files = shipped['source']['files']
    assert sorted(files) == sorted(shipped['splits'])
    for name, path in files.items():
        task = re.match(r'Task(\d)', name).group(1)
        assert path == f'Task{task}/{name}.pkl', name
    readme = SHARED / 'README.md'
    if readme.is_file():
        assert shipped['source']['commit'] in readme.read_text()


def test_task1_82_split_is_the_complement_of_task1():
    """``Task1_COVID_82_datasplit`` (the Task1 README's "80% training, 20% testing" 3D baselines): per fold its 4
    test ("val") cases are Task 1's 4 training cases and its 16 training cases Task 1's 16 test cases."""
    task1, task1_82 = official('Task1_Task1_COVID_datasplit'), official('Task1_Task1_COVID_82_datasplit')
    assert len(task1) == len(task1_82) == 5
    for fold, fold_82 in zip(task1, task1_82):
        assert sorted(fold_82['val']) == sorted(fold['train']) and len(fold_82['val']) == 4
        assert sorted(fold_82['train']) == sorted(fold['val']) and len(fold_82['train']) == 16
    assert sorted(task1_82[0]['val']) == sorted(FOLD0_TRAIN)
    readme = SHARED / 'Task1_README.md'
    if readme.is_file():
        assert '(80% training, 20% testing)' in readme.read_text()


def test_setup_ships_the_split_data():
    """setup.py's package_data has a pattern matching the data file (read from setup.py's syntax tree)."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'setup')
    package_data = ast.literal_eval(next(k.value for k in call.keywords if k.arg == 'package_data'))
    relative = SHIPPED.relative_to(REPO / 'projects/medical').as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data['mmseg_medical'])


@pytest.mark.parametrize('name', sorted(SOURCES))
def test_every_task2_and_task3_list_equals_its_split_file(name):
    """The lists every source writes with --split, for a release holding every case the files name."""
    task2_file, task3_file, template = SOURCES[name]
    task2, task3 = official(task2_file), official(task3_file)
    assert len(task2) == 1 and len(task3) == 5
    assert (len(task2[0]['train']), len(task2[0]['val'])) == COUNTS[name]
    every = _case_ids(task2[0]['train'] + task2[0]['val'], template)
    cases = {c: CaseInfo(c, True, True, c) for c in every}
    converter = CONVERTERS[name](split=['covid19-task2', 'covid19-task3'])
    lists = converter.official_splits(cases)
    assert lists['covid19_task2_train'] == _case_ids(task2[0]['train'], template)
    assert lists['covid19_task2_val'] == _case_ids(task2[0]['val'], template)
    task1 = official('Task1_Task1_COVID_datasplit')
    for k, fold in enumerate(task3):
        covid = [n for n in fold['train'] if n in task1[k]['train']]
        assert sorted(covid) == sorted(task1[k]['train'])  # + the prepared COVID-19-CT-Seg's task1_fold{k}_train
        source = [n for n in fold['train'] if n not in covid]
        assert lists[f'covid19_task3_fold{k}_train'] == _case_ids(source, template)
        assert lists[f'covid19_task3_fold{k}_val'] == _case_ids(fold['val'], template)
        assert fold['test'] == task1[k]['val']  # tests on the prepared COVID-19-CT-Seg's task1_fold{k}_test
    files = converter.split_files(lists)
    assert files['covid19_task3.json']['folds'] == task3 and files['covid19_task2.json']['folds'] == task2


def test_msd_lung_task2_gives_the_official_51_and_12(tmp_path):
    """prepare_dataset.py msd-lung --split covid19-task2 on a release with the 63 official case names."""
    task2 = official('Task2_Task202_MSD_LungTumor_datasplit')[0]
    names = task2['train'] + task2['val']
    write_msd_lung_release(tmp_path / 'raw', num_slices=2, size=16, names=names + ['lung_999'])  # + one unlisted
    out = tmp_path / 'msd'
    assert prepare_main(['msd-lung', '--src', str(tmp_path / 'raw'), '--out', str(out), '--split', 'covid19-task2',
                         '--workers', '2', '--previews', '0']) == 0
    for split, expected in (('train', task2['train']), ('val', task2['val'])):
        stems = (out / 'splits' / f'covid19_task2_{split}.txt').read_text().split()
        assert sorted(stems) == sorted(f'{c}_{z:04d}' for c in expected for z in range(2))
    assert len(task2['train']) == 51 and len(task2['val']) == 12
    for default in ('train', 'val'):    # asked for by name: the default lists are the official ones, not random
        assert (out / 'splits' / f'{default}.txt').read_text() == \
            (out / 'splits' / f'covid19_task2_{default}.txt').read_text()
    assert (out / 'splits' / 'unlisted.txt').read_text().split() == ['lung_999_0000', 'lung_999_0001']
    card = json.loads((out / 'dataset.json').read_text())
    assert card['split_settings']['split'] == ['covid19-task2']
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / 'images').iterdir()}
    # adding Task 3 rewrites the lists only
    assert prepare_main(['msd-lung', '--src', str(tmp_path / 'raw'), '--out', str(out), '--split', 'covid19-task2',
                         'covid19-task3', '--workers', '2', '--previews', '0']) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / 'images').iterdir()} == stamps
    fold0 = official('Task3_Task302_MSD_LungTumor_datasplit')[0]
    stems = (out / 'splits' / 'covid19_task3_fold0_train.txt').read_text().split()
    assert sorted({s.rsplit('_', 1)[0] for s in stems} | set(FOLD0_TRAIN)) == sorted(fold0['train'])


def test_task3_train_list_is_the_source_list_plus_the_covid_fold(tmp_path):
    """Union of the two prepared stores' lists = the Task 3 split file's train list of fold 0 (StructSeg lung,
    whose files name the cases train_<n>: the release's folders <n>/)."""
    names = [n[len('train_'):] for n in official('Task2_Task200_StructSegLung_datasplit')[0]['train']
             + official('Task2_Task200_StructSegLung_datasplit')[0]['val']]
    write_structseg_lung_release(tmp_path / 'download', num_slices=2, size=16, names=names)
    write_structseg_gtv_release(tmp_path / 'download', num_cases=2, num_slices=2, size=16)  # the other release
    write_covid19_release(tmp_path / 'covid', 'zenodo', num_slices=2, size=16)
    data = tmp_path / 'data'
    prepare(CONVERTERS['structseg-lung'](split=['covid19-task3']), tmp_path / 'download', data / 'structseg-lung',
            workers=2, previews=0)
    prepare(CONVERTERS['covid19'](), tmp_path / 'covid', data / 'covid19', workers=2, previews=0)
    fold = official('Task3_Task300_StructSegLung_datasplit')[0]

    def cases(store, name):
        return [s.rsplit('_', 1)[0] for s in (data / store / 'splits' / f'{name}.txt').read_text().split()[::2]]

    train = [f'train_{c}' for c in cases('structseg-lung', 'covid19_task3_fold0_train')] + \
        cases('covid19', 'task1_fold0_train')
    assert sorted(train) == sorted(fold['train']) and len(train) == 44
    assert sorted(f'train_{c}' for c in cases('structseg-lung', 'covid19_task3_fold0_val')) == sorted(fold['val'])
    assert sorted(cases('covid19', 'task1_fold0_test')) == sorted(fold['test'])
    # only Task 3 named: train / val are its fold 0 source lists (every case is in one of them here)
    for default in ('train', 'val'):
        assert cases('structseg-lung', default) == cases('structseg-lung', f'covid19_task3_fold0_{default}')
    assert not (data / 'structseg-lung' / 'splits' / 'unlisted.txt').exists()


def test_a_missing_official_case_is_one_error(tmp_path, capsys):
    write_nsclc_release(tmp_path / 'raw', 'pe', num_slices=2, size=16,
                        names=[n for n in official('Task2_Task204_NSCLCPE_datasplit')[0]['train']][:5])
    code = prepare_main(['nsclc-pe', '--src', str(tmp_path / 'raw'), '--out', str(tmp_path / 'out'), '--split',
                         'covid19-task2', '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert 'Task204_NSCLCPE_datasplit fold 0 train: 58 of its 63 cases are not in this release' in err[0]
    assert not (tmp_path / 'out').exists()
