"""HemSeg folds that keep the published test set: ``--folds K`` under ``official``/``csv`` (folds over train
+ val, patients with a test scan in no fold) and ``--split patient`` (the CSVs' test set kept, with every scan
of its patients). Checked as properties of the written lists against split CSVs written here by hand and
read back with ``csv``, hand-listed patient facts, and the real published split (../shared/NOTES.md)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.base import CaseInfo
from mmseg_medical.errors import MedSegError
from mmseg_medical.synthetic.hemseg import hemseg_scan_layout, write_hemseg_release

SPLITS = ('train', 'val', 'test')
# Hand-made published split of a 12-scan release: (patient, split) of scan i.
LAYOUT = [('ID_pa', 'train'), ('ID_pa', 'test'),                       # train + test: left out of folds
          ('ID_pb', 'val'), ('ID_pb', 'test'), ('ID_pb', 'test'),      # val + test: left out of folds
          ('ID_pc', 'test'),                                           # test only
          ('ID_pd', 'train'), ('ID_pd', 'val'),                        # train + val: in the folds, together
          ('ID_pe', 'train'), ('ID_pf', 'val'), ('ID_pg', 'train'), ('ID_pg', 'train')]
EXCLUDED = ['ID_pa', 'ID_pb']          # by hand from LAYOUT
MOVED_TO_TEST = [0, 2]                 # --split patient: the non-test scans of ID_pa and ID_pb


def hemseg(**options):
    return CONVERTERS['hemseg'](**options)


def _read_csvs(raw: Path) -> Dict[str, str]:
    """scan → split, read straight from the fixture's CSV files."""
    split_of = {}
    for split in SPLITS:
        with open(raw / f'{split}_set.csv', newline='') as f:
            for row in csv.DictReader(f):
                split_of[row['filename']] = split
    return split_of


def _read_patients(raw: Path) -> Dict[str, str]:
    lines = [json.loads(t) for t in (raw / 'annotion_file_info.jsonl').read_text().splitlines()]
    return {line['scan_']: line['patient'] for line in lines}


def _expected_excluded(split_of: Dict[str, str], patient_of: Dict[str, str]) -> List[str]:
    """Patients with both a test scan and a non-test scan, computed here from the CSVs."""
    test = {patient_of[s] for s, k in split_of.items() if k == 'test'}
    rest = {patient_of[s] for s, k in split_of.items() if k != 'test'}
    return sorted(test & rest)


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    """The synthetic release, its jsonl patients and split CSVs rewritten to :data:`LAYOUT`."""
    raw = write_hemseg_release(tmp_path_factory.mktemp('hemseg_folds') / 'raw', num_scans=len(LAYOUT))
    lines = [json.loads(t) for t in (raw / 'annotion_file_info.jsonl').read_text().splitlines()]
    for line, (patient, _) in zip(lines, LAYOUT):
        line['patient'] = patient
    (raw / 'annotion_file_info.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
    for split in SPLITS:
        with open(raw / f'{split}_set.csv', 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['filename', 'label'])
            writer.writerows([line['scan_'], 1] for line, (_, k) in zip(lines, LAYOUT) if k == split)
    return raw


@pytest.fixture(scope='module')
def scans(release) -> List[str]:
    return [json.loads(t)['scan_'] for t in (release / 'annotion_file_info.jsonl').read_text().splitlines()]


def check_folds(lists: dict, folds: int, split_of: Dict[str, str], patient_of: Dict[str, str],
                excluded: List[str]) -> None:
    """The fold properties, from the published split (CSV) and the excluded patients alone."""
    test = {s for s, k in split_of.items() if k == 'test'}
    pool = {s for s, k in split_of.items() if k != 'test' and patient_of[s] not in excluded}
    fold_names = [f'fold{k}_{part}' for k in range(folds) for part in ('train', 'val')]
    assert set(fold_names) <= set(lists) and not any(n.startswith(f'fold{folds}_') for n in lists)
    for name in fold_names:
        assert not set(lists[name]) & test, name                             # no published test scan
        assert not {patient_of[s] for s in lists[name]} & set(excluded), name
    vals = [s for k in range(folds) for s in lists[f'fold{k}_val']]
    assert sorted(vals) == sorted(pool)                                     # each pool scan in exactly one val
    val_patients = [{patient_of[s] for s in lists[f'fold{k}_val']} for k in range(folds)]
    assert sum(map(len, val_patients)) == len(set().union(*val_patients))   # no patient in two folds' val
    for k in range(folds):
        train, val = set(lists[f'fold{k}_train']), set(lists[f'fold{k}_val'])
        assert train | val == pool and val
        assert not {patient_of[s] for s in train} & {patient_of[s] for s in val}


@pytest.mark.parametrize('rule', ['csv', 'official'])
def test_folds_keep_the_published_test_set(release, scans, rule, tmp_path, capsys):
    out = tmp_path / 'out'
    if rule == 'official':   # the label archive's folders: the generator's cycle, not LAYOUT
        split_of = {s['scan']: s['split'] for s in hemseg_scan_layout(len(LAYOUT))}
    else:
        split_of = _read_csvs(release)
    patient_of = _read_patients(release)
    expected = _expected_excluded(split_of, patient_of)
    if rule == 'csv':
        assert expected == EXCLUDED
    prepare(hemseg(split=rule, folds=3), release, out, workers=2, previews=0)
    err = capsys.readouterr().err
    lists = json.loads((out / 'splits.json').read_text())
    for split in SPLITS:                      # the published lists stay as they are
        assert lists[split] == sorted(s for s, k in split_of.items() if k == split)
    check_folds(lists, 3, split_of, patient_of, expected)
    card = json.loads((out / 'dataset.json').read_text())
    assert card['fold_excluded_patients']['patients'] == expected
    assert 'test' in card['fold_excluded_patients']['reason']
    warnings = [line for line in err.splitlines() if line.startswith('warning: --folds')]
    assert len(warnings) == 1 and all(p in warnings[0] for p in expected)
    folds_json = json.loads((out / 'splits' / 'folds.json').read_text())
    assert folds_json == [{'train': lists[f'fold{k}_train'], 'val': lists[f'fold{k}_val']} for k in range(3)]
    stems = (out / 'splits' / 'fold0_val.txt').read_text().split()
    assert sorted({s.rsplit('_', 1)[0] for s in stems}) == lists['fold0_val']


def test_official_release_layout(tmp_path, capsys):
    """The generator's own release (folders = its CSVs): its one train + test patient is left out."""
    raw = write_hemseg_release(tmp_path / 'raw', num_scans=12)
    split_of, patient_of = _read_csvs(raw), _read_patients(raw)
    expected = _expected_excluded(split_of, patient_of)
    assert len(expected) == 1     # scans 0 (train) and 3 (test) share a patient
    out = tmp_path / 'out'
    prepare(hemseg(folds=2), raw, out, workers=2, previews=0)
    lists = json.loads((out / 'splits.json').read_text())
    check_folds(lists, 2, split_of, patient_of, expected)
    for split in SPLITS:
        assert lists[split] == sorted(s for s, k in split_of.items() if k == split)


def test_patient_split_keeps_the_published_test_patients(release, scans, tmp_path, capsys):
    out = tmp_path / 'out'
    prepare(hemseg(split='patient', folds=2, val_fraction=0.3), release, out, workers=2, previews=0)
    err = capsys.readouterr().err
    split_of, patient_of = _read_csvs(release), _read_patients(release)
    lists = json.loads((out / 'splits.json').read_text())
    test_patients = {patient_of[s] for s, k in split_of.items() if k == 'test'}
    every_scan_of_test_patients = {s for s in scans if patient_of[s] in test_patients}
    assert set(lists['test']) == every_scan_of_test_patients
    assert {s for s, k in split_of.items() if k == 'test'} <= set(lists['test'])
    rest = set(scans) - every_scan_of_test_patients
    assert set(lists['train']) | set(lists['val']) == rest and not set(lists['train']) & set(lists['val'])
    assert not {patient_of[s] for s in lists['train']} & {patient_of[s] for s in lists['val']}
    assert not {patient_of[s] for s in rest} & test_patients
    # folds over the rest only: no test scan, nobody left out (test patients are all in test)
    check_folds(lists, 2, {s: ('test' if s in lists['test'] else 'train') for s in scans}, patient_of, [])
    moved = sorted(scans[i] for i in MOVED_TO_TEST)
    card = json.loads((out / 'dataset.json').read_text())
    assert card['patient_split_moved_to_test']['scans'] == moved and 'fold_excluded_patients' not in card
    assert any(line.startswith('warning: --split patient') and all(s in line for s in moved)
               for line in err.splitlines())


def test_folds_added_later_by_a_resplit_keep_the_record(release, tmp_path):
    out = tmp_path / 'out'
    prepare(hemseg(split='csv'), release, out, workers=2, previews=0)
    assert not any(n.startswith('fold') for n in json.loads((out / 'splits.json').read_text()))
    stats = prepare(hemseg(split='csv', folds=2), release, out, workers=2, previews=0)
    assert stats.get('resplit')
    lists = json.loads((out / 'splits.json').read_text())
    check_folds(lists, 2, _read_csvs(release), _read_patients(release), EXCLUDED)
    assert json.loads((out / 'dataset.json').read_text())['fold_excluded_patients']['patients'] == EXCLUDED


@pytest.mark.parametrize('rule,missing', [('patient', 'test'), ('patient', 'train'), ('csv', 'val')])
def test_missing_split_csv_is_one_error_naming_it(release, tmp_path, rule, missing):
    import shutil

    raw = tmp_path / 'raw'
    shutil.copytree(release, raw)
    (raw / f'{missing}_set.csv').unlink()
    with pytest.raises(MedSegError) as exc:
        hemseg(split=rule).find_cases(raw)
    assert str(exc.value.path) == str(raw / f'{missing}_set.csv') and 'split CSV' in str(exc.value)


def test_official_folds_need_no_csvs(release, tmp_path):
    import shutil

    raw = tmp_path / 'raw'
    shutil.copytree(release, raw)
    for split in SPLITS:
        (raw / f'{split}_set.csv').unlink()
    conv = hemseg(folds=2)
    cases = conv.find_cases(raw)
    conv.check_split_options(cases)
    assert conv.fold_excluded and all(c.split for c in cases)


def test_too_many_folds_for_the_pool(release, tmp_path):
    # pool patients: ID_pd, ID_pe, ID_pf, ID_pg (4); the test patients do not count
    with pytest.raises(MedSegError, match='4 patient groups cannot fill 5 folds'):
        prepare(hemseg(split='csv', folds=5), release, tmp_path / 'out', workers=1, previews=0)
    assert not (tmp_path / 'out').exists()


# ---- the real published split (../shared/realdata/hemseg; skipped when absent) ----------------------
# ../shared/NOTES.md: the 8 patients with scans in two splits of the CSVs, and which of them have a test scan.
SHARED = {'ID_c7097cd4', 'ID_a2f9bbf1', 'ID_bfb9a9e6', 'ID_1eb6ed8e', 'ID_fadb352b', 'ID_3b4accbe',
          'ID_944f9841', 'ID_3ec4fa47'}
REAL_EXCLUDED = {'ID_c7097cd4', 'ID_1eb6ed8e', 'ID_fadb352b', 'ID_3b4accbe', 'ID_944f9841'}   # train + test
REAL_KEPT = SHARED - REAL_EXCLUDED                                                             # train + val


def test_real_published_split_folds(realdata):
    from mmseg_medical.conversion.hemseg import fold_excluded_patients

    root = realdata / 'hemseg'
    split_of = _read_csvs(root)
    patient_of = {}
    for t in (root / 'annotion_file_info_500.jsonl').read_text().splitlines():
        if t.strip():
            item = json.loads(t)
            patient_of[item['scan_name']] = item['patient_name']
    assert set(split_of) == set(patient_of) and len(split_of) == 525
    assert set(fold_excluded_patients(split_of, patient_of)) == REAL_EXCLUDED
    # the fold machinery on all 525 published scans (as if every one were converted)
    conv = hemseg(split='csv', folds=5)
    infos = {s: CaseInfo(s, True, i % 3 != 0, patient_of[s], split_of[s]) for i, s in enumerate(sorted(split_of))}
    _, lists = conv.split_lists(infos)
    check_folds(lists, 5, split_of, patient_of, sorted(REAL_EXCLUDED))
    in_folds = {patient_of[s] for k in range(5) for s in lists[f'fold{k}_val']}
    assert REAL_KEPT <= in_folds and not REAL_EXCLUDED & in_folds
    assert [len(lists[k]) for k in SPLITS] == [334, 85, 106]
