"""COVID-19-CT-Seg: both layouts, the all-masks store and the subtasks, the value-range intensity rule, the
official Task 1 folds and the Task 2 test list.

Expected values come from ../shared/NOTES.md (case names, folds, typed here), the benchmark's split files read
as JSON, nibabel reads of the raw files and hand-computed window values and codes, never from the converter.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.conversion.covid19 import INTENSITY, kaggle_case_id
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.covid19 import write_covid19_release

SLICES = 4
REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / 'shared' / 'realdata' / 'covid19'


@pytest.fixture(scope='session')
def official():
    """The benchmark's split file ``<task>_<name>`` read as JSON: the decoded copy in ../shared/realdata when present,
    else the package's data file (test_covid19_splits.py checks that the two agree)."""
    def read(task: str, name: str) -> list:
        shared = SHARED / f'{task}_{name}.json'
        if shared.is_file():
            return json.loads(shared.read_text())
        return json.loads((REPO / 'projects/medical/data/covid19_splits.json').read_text())['splits'][name]
    return read
# ../shared/NOTES.md, COVID-19-CT-Seg: the 20 cases and the official Task 1 folds (train cases).
NOTES_CASES = [f'coronacases_{i:03d}' for i in range(1, 11)] + [
    'radiopaedia_4_85506_1', 'radiopaedia_7_85703_0', 'radiopaedia_10_85902_1', 'radiopaedia_10_85902_3',
    'radiopaedia_14_85914_0', 'radiopaedia_27_86410_0', 'radiopaedia_29_86490_1', 'radiopaedia_29_86491_1',
    'radiopaedia_36_86526_0', 'radiopaedia_40_86625_0']
NOTES_FOLDS = [
    ['coronacases_008', 'coronacases_007', 'radiopaedia_36_86526_0', 'radiopaedia_4_85506_1'],
    ['coronacases_009', 'coronacases_004', 'radiopaedia_14_85914_0', 'radiopaedia_7_85703_0'],
    ['coronacases_010', 'coronacases_001', 'radiopaedia_10_85902_1', 'radiopaedia_29_86491_1'],
    ['coronacases_003', 'coronacases_005', 'radiopaedia_40_86625_0', 'radiopaedia_27_86410_0'],
    ['coronacases_002', 'radiopaedia_10_85902_3', 'coronacases_006', 'radiopaedia_29_86490_1'],
]


@pytest.fixture(scope='module')
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp('covid19')
    zenodo = write_covid19_release(root / 'zenodo', 'zenodo', num_slices=SLICES, nest='a/b')
    kaggle = write_covid19_release(root / 'kaggle', 'kaggle', num_slices=SLICES, nest='covid19-ct-scans')
    return root, zenodo, kaggle


@pytest.fixture(scope='module')
def prepared(releases):
    root, _, _ = releases
    out = {}
    for layout in ('zenodo', 'kaggle'):
        out[layout] = root / f'out-{layout}'
        prepare(CONVERTERS['covid19'](), root / layout, out[layout], workers=2, previews=0)
    return out


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _slices(nifti: Path) -> np.ndarray:
    """(Z, H, W) of a synthetic file: stored LPS (affine diag(-sx, -sy, sz)) = display order already."""
    img = nib.load(str(nifti))
    assert nib.aff2axcodes(img.affine) == ('L', 'P', 'S')
    return np.asarray(img.dataobj).transpose(2, 1, 0)


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_hu_cases_are_lung_windowed(releases, prepared):
    _, zenodo, _ = releases
    hu = _slices(zenodo / 'COVID-19-CT-Seg_20cases' / 'coronacases_003.nii.gz').astype(np.float64)
    assert hu.min() <= -1000  # really HU
    expected = np.clip(np.rint((hu + 1250.0) * 255.0 / 1500.0), 0, 255)
    for k in range(SLICES):
        assert np.array_equal(_png(prepared['zenodo'] / 'images' / f'coronacases_003_{k:04d}.png'), expected[k])


def test_window_by_hand():
    hu = np.array([[[-2000, -1250, -950, 250, 1000]]], np.int16)
    assert INTENSITY(hu).tolist() == [[[0, 0, 51, 255, 255]]]


def test_prewindowed_cases_are_kept(releases, prepared):
    _, zenodo, _ = releases
    stored = _slices(zenodo / 'COVID-19-CT-Seg_20cases' / 'radiopaedia_29_86490_1.nii.gz')
    assert stored.dtype == np.float32 and 0 <= stored.min() and stored.max() <= 255
    for k in range(SLICES):
        assert np.array_equal(_png(prepared['zenodo'] / 'images' / f'radiopaedia_29_86490_1_{k:04d}.png'), stored[k])


@pytest.mark.parametrize('values', [(-100, 300), (-400, 100), (-5000, 0), (0, 4095)])
def test_range_that_fits_neither_convention_is_refused(values):
    array = np.array(values, np.float32).reshape(1, 1, 2)
    with pytest.raises(MedSegError, match=r'^scan\.nii: value range .* fits neither Hounsfield units .* nor 8-bit'):
        INTENSITY(array, 'scan.nii')


def test_bad_range_is_one_error_line(releases, tmp_path, capsys):
    _, zenodo, _ = releases
    src = tmp_path / 'src'
    shutil.copytree(zenodo, src)
    bad = src / 'COVID-19-CT-Seg_20cases' / 'coronacases_005.nii.gz'
    img = nib.load(str(bad))
    nib.save(nib.Nifti1Image(np.full(img.shape, 300, np.int16), img.affine), str(bad))  # 300 everywhere
    code = prepare_main(['covid19', '--src', str(src), '--out', str(tmp_path / 'out'), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0] == (f'error: {bad}: value range [300, 300] fits neither Hounsfield units (minimum <= -500, '
                      'within [-4096, 32767]) nor 8-bit [0, 255]')
    assert not (tmp_path / 'out').exists()


def test_both_layouts_give_identical_outputs(prepared):
    for part in ('images', 'masks', 'splits'):
        assert _files(prepared['zenodo'] / part) == _files(prepared['kaggle'] / part)
    assert (prepared['zenodo'] / 'manifest.csv').read_bytes() == (prepared['kaggle'] / 'manifest.csv').read_bytes()


def test_every_case_once_in_the_manifest(prepared):
    rows = read_manifest(prepared['kaggle'])
    assert sorted({r.case_id for r in rows}) == sorted(NOTES_CASES)
    assert len(rows) == 20 * SLICES
    assert {r.split for r in rows} == {'train', 'val'}
    split = {r.case_id: r.split for r in rows}  # two series of one Radiopaedia patient stay together
    assert split['radiopaedia_10_85902_1'] == split['radiopaedia_10_85902_3']
    assert split['radiopaedia_29_86490_1'] == split['radiopaedia_29_86491_1']


def test_official_task1_folds(prepared, official):
    splits = prepared['zenodo'] / 'splits'
    folds = json.loads((splits / 'task1_folds.json').read_text())
    assert len(folds) == 5
    published = official('Task1', 'Task1_COVID_datasplit')  # the benchmark's file: "val" = the 16 test cases
    for k, (fold, train) in enumerate(zip(folds, NOTES_FOLDS)):
        assert set(fold) == {'train', 'test'}
        assert fold['train'] == train == published[k]['train']
        assert fold['test'] == published[k]['val']
        assert len(fold['test']) == 16 and set(fold['test']) == set(NOTES_CASES) - set(train)
        for name, cases in (('train', train), ('test', fold['test'])):
            stems = (splits / f'task1_fold{k}_{name}.txt').read_text().split()
            assert sorted(stems) == sorted(f'{c}_{z:04d}' for c in cases for z in range(SLICES))
    assert sorted(c for f in NOTES_FOLDS for c in f) == sorted(NOTES_CASES)  # each case trains in one fold


def test_default_store_holds_all_three_masks(releases, prepared):
    """Code = lung label + 3 where infected (the module's rule, computed here by hand from the three raw files);
    codes 0..3 are the combined mask's labels, and each subtask's reading gives back its own raw mask."""
    _, zenodo, _ = releases
    for case in ('coronacases_001', 'radiopaedia_7_85703_0'):
        lung = _slices(zenodo / 'Lung_Mask' / f'{case}.nii.gz').astype(int)
        infection = _slices(zenodo / 'Infection_Mask' / f'{case}.nii.gz').astype(int)
        joint = _slices(zenodo / 'Lung_and_Infection_Mask' / f'{case}.nii.gz').astype(int)
        assert set(np.unique(joint)) == {0, 1, 2, 3} and infection.max() == 1
        codes = np.stack([_png(prepared['zenodo'] / 'masks' / f'{case}_{k:04d}.png') for k in range(SLICES)])
        assert np.array_equal(codes, lung + 3 * infection)
        assert np.array_equal(np.where(codes >= 3, 3, codes), joint)               # joint: 4, 5 -> 3
        assert np.array_equal(np.where(codes >= 3, codes - 3, codes), lung)        # lung: infected voxels keep the lung
        assert np.array_equal((codes >= 3).astype(int), infection)
    card = json.loads((prepared['zenodo'] / 'dataset.json').read_text())
    assert card['classes'] == ['background', 'left_lung', 'right_lung', 'infection', 'infection_left_lung',
                               'infection_right_lung']
    assert card['settings']['subtask'] == 'all'
    assert card['label_store']['subtasks']['lung'] == {'0': 0, '1': 1, '2': 2, '3': 0, '4': 1, '5': 2}
    assert card['label_store']['subtask_classes'] == {
        'lung_infection': ['background', 'left_lung', 'right_lung', 'infection'],
        'lung': ['background', 'left_lung', 'right_lung'], 'infection': ['background', 'infection']}
    # a left-right mirroring exchanges the lungs and the codes of infection inside each lung (4 <-> 5)
    assert card['mirror_pairs'] == [['left_lung', 'right_lung'], ['infection_left_lung', 'infection_right_lung']]
    assert 'Hounsfield units' in card['settings']['intensity_rule'] and '[0, 255]' in card['settings']['intensity_rule']


def test_combined_mask_that_disagrees_is_one_error(releases, tmp_path, capsys):
    _, zenodo, _ = releases
    src = tmp_path / 'src'
    shutil.copytree(zenodo, src)
    path = src / 'Lung_and_Infection_Mask' / 'coronacases_006.nii.gz'
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    assert data[0, 0, 0] == 0
    data[0, 0, 0], data[1, 0, 0] = 1, 3  # two voxels outside the lungs labelled in the combined mask only
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    code = prepare_main(['covid19', '--src', str(src), '--out', str(tmp_path / 'out'), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and 'coronacases_006' in err[0]
    assert 'Lung_and_Infection_Mask differs from Lung_Mask with Infection_Mask over it in 2 voxels' in err[0]
    assert not (tmp_path / 'out').exists()
    # the subtask that reads only that folder still prepares
    assert prepare_main(['covid19', '--src', str(src), '--out', str(tmp_path / 'joint'), '--workers', '1',
                         '--subtask', 'lung_infection', '--previews', '0']) == 0


@pytest.mark.parametrize('subtask,folder,classes', [
    ('lung_infection', 'lung_and_infection_mask', ['background', 'left_lung', 'right_lung', 'infection']),
    ('lung', 'lung_mask', ['background', 'left_lung', 'right_lung']),
    ('infection', 'infection_mask', ['background', 'infection']),
])
def test_subtasks(releases, tmp_path, subtask, folder, classes):
    _, _, kaggle = releases
    out = tmp_path / subtask
    prepare(CONVERTERS['covid19'](subtask=subtask), kaggle, out, workers=1, previews=0)
    assert json.loads((out / 'dataset.json').read_text())['classes'] == classes
    for case in ('coronacases_002', 'radiopaedia_40_86625_0'):
        raw = _slices(kaggle / folder / f'{case}.nii')
        assert set(np.unique(raw)) <= set(range(len(classes))) and raw.max() == len(classes) - 1
        for k in range(SLICES):
            assert np.array_equal(_png(out / 'masks' / f'{case}_{k:04d}.png'), raw[k])


def test_kaggle_names_map_to_zenodo_ids():
    assert kaggle_case_id(Path('coronacases_org_001.nii')) == 'coronacases_001'
    assert kaggle_case_id(Path('radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii')) == 'radiopaedia_4_85506_1'
    with pytest.raises(MedSegError, match='not a COVID-19-CT-Seg scan name'):
        kaggle_case_id(Path('ct_scans/scan_1.nii'))


def test_missing_case_and_missing_mask_are_errors(releases, tmp_path):
    _, zenodo, _ = releases
    src = tmp_path / 'src'
    shutil.copytree(zenodo, src)
    (src / 'Lung_and_Infection_Mask' / 'coronacases_004.nii.gz').unlink()
    with pytest.raises(MedSegError, match=r'coronacases_004\.nii\.gz: no mask Lung_and_Infection_Mask/coronacases_004'):
        prepare(CONVERTERS['covid19'](), src, tmp_path / 'out', workers=1)
    (src / 'COVID-19-CT-Seg_20cases' / 'coronacases_004.nii.gz').unlink()
    with pytest.raises(MedSegError, match=r'1 of the 20 cases missing \(coronacases_004\)'):
        prepare(CONVERTERS['covid19'](), src, tmp_path / 'out', workers=1)


@pytest.mark.parametrize('subtask,folder,classes', [
    ('lung_infection', 'Lung_and_Infection_Mask', ('background', 'left_lung', 'right_lung', 'infection')),
    ('lung', 'Lung_Mask', ('background', 'left_lung', 'right_lung')),
    ('infection', 'Infection_Mask', ('background', 'infection')),
])
def test_one_store_feeds_every_subtask(releases, prepared, subtask, folder, classes):
    """Covid19Dataset(subtask) over the default store: the loaded ground truth equals that subtask's raw mask."""
    from mmseg.datasets.transforms import LoadAnnotations

    from mmseg_medical.datasets import Covid19Dataset
    _, zenodo, _ = releases
    ds = Covid19Dataset(subtask=subtask, data_root=str(prepared['zenodo']), ann_file='splits/task1_fold1_train.txt',
                        data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=[LoadAnnotations()])
    assert ds.metainfo['classes'] == classes
    assert len(ds) == 4 * SLICES
    raw = _slices(zenodo / folder / 'coronacases_009.nii.gz')  # fold 1 trains on coronacases_009 (NOTES.md)
    loaded = {Path(d['img_path']).stem: d['gt_seg_map'] for d in (ds[i] for i in range(len(ds)))}
    for k in range(SLICES):
        assert np.array_equal(loaded[f'coronacases_009_{k:04d}'], raw[k])
    assert Covid19Dataset.METAINFO['classes'] == ('background', 'left_lung', 'right_lung', 'infection')


def test_task2_test_list_is_all_20_cases(prepared):
    stems = (prepared['kaggle'] / 'splits' / 'task2_test.txt').read_text().split()
    assert sorted(stems) == sorted(f'{c}_{z:04d}' for c in NOTES_CASES for z in range(SLICES))
