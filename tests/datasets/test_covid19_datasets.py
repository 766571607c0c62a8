"""Covid19Dataset and Covid19MultiSourceDataset read prepared folders as a subtask's classes: the loaded ground truth
equals the raw release masks (read with nibabel here, in display order by hand), whatever the folder stores."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.datasets.covid19 import Covid19Dataset, Covid19MultiSourceDataset, stored_label_map
from mmseg_medical.errors import MedSegError
from mmseg_medical.synthetic.covid19 import write_covid19_release, write_mosmed_release, write_msd_lung_release
from mmseg.datasets.transforms import LoadAnnotations  # noqa: E402  (after mmseg_medical: mmcv-lite stand-ins)

SLICES = 2


def _display(path: Path, las: bool = False) -> np.ndarray:
    """(Z, H, W) display order of a synthetic file (stored L, P, S; MosMed L, A, S: rows flipped)."""
    data = np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)
    return data[:, ::-1, :] if las else data


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('covid-datasets')
    raw = {'covid19': write_covid19_release(root / 'raw-covid', 'zenodo', num_slices=SLICES, size=16),
           'msd-lung': write_msd_lung_release(root / 'raw-msd', num_cases=3, num_slices=SLICES, size=16),
           'mosmed': write_mosmed_release(root / 'raw-mosmed', num_labelled=2, num_unlabelled=0, num_slices=SLICES,
                                          size=16)}
    for name, src in raw.items():
        prepare(CONVERTERS[name](), src, root / 'data' / name, workers=1, previews=0)
    return root / 'data', raw


def _loaded(dataset) -> dict:
    return {Path(d['img_path']).stem: d['gt_seg_map'] for d in (dataset[i] for i in range(len(dataset)))}


def test_label_maps_by_folder(data):
    root, _ = data
    joint = ('background', 'left_lung', 'right_lung', 'infection')
    assert stored_label_map(str(root / 'mosmed'), joint, 'lung_infection') == {0: 0, 1: 3}
    assert stored_label_map(str(root / 'mosmed'), ('background', 'infection'), 'infection') is None
    assert stored_label_map(str(root / 'msd-lung'), ('background', 'infection'), 'infection') is None  # tumour = 1
    assert stored_label_map(str(root / 'covid19'), joint, 'lung_infection') == {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 3}
    with pytest.raises(MedSegError, match=r"mosmed/dataset\.json: stored class 'infection' \(mask value 1\) has no "
                                          r"class in \['background', 'left_lung', 'right_lung'\]"):
        stored_label_map(str(root / 'mosmed'), ('background', 'left_lung', 'right_lung'), 'lung')


@pytest.mark.parametrize('subtask, pairs', [('lung_infection', (('left_lung', 'right_lung'),)),
                                            ('lung', (('left_lung', 'right_lung'),)), ('infection', ()),
                                            ('all', (('left_lung', 'right_lung'),
                                                     ('infection_left_lung', 'infection_right_lung')))])
def test_metainfo_carries_the_subtasks_mirror_pairs(data, subtask, pairs):
    """What a checkpoint saves as ``dataset_meta`` (the train dataset's metainfo) names the subtask's pairs."""
    root, _ = data
    ds = Covid19Dataset(subtask=subtask, data_root=str(root / 'covid19'), ann_file='splits/train.txt',
                        data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=[])
    assert tuple(map(tuple, ds.metainfo['mirror_pairs'])) == pairs


def test_joint_model_trains_with_lateral_flips(data):
    """The joint subtask with ``LateralRandomFlip`` (the card's config option): each loaded mask is the release's
    ``Lung_and_Infection_Mask`` slice mirrored across the columns with 1 and 2 exchanged, by hand."""
    from mmseg.registry import TRANSFORMS

    root, raw = data
    flip = TRANSFORMS.build(dict(type='LateralRandomFlip', prob=1.0, swap_pairs=[(1, 2)]))
    ds = Covid19Dataset(subtask='lung_infection', data_root=str(root / 'covid19'),
                        ann_file='splits/task1_fold0_train.txt',
                        data_prefix=dict(img_path='images/', seg_map_path='masks/'),
                        pipeline=[TRANSFORMS.build(dict(type='LoadImageFromFile')), LoadAnnotations(), flip])
    loaded = _loaded(ds)
    joint = _display(raw['covid19'] / 'Lung_and_Infection_Mask' / 'coronacases_008.nii.gz')
    exchanged = np.array([0, 2, 1, 3])[joint[:, :, ::-1]]
    assert set(np.unique(joint)) == {0, 1, 2, 3}
    for k in range(SLICES):
        assert np.array_equal(loaded[f'coronacases_008_{k:04d}'], exchanged[k])


def test_mosmed_read_by_the_joint_model_is_class_3(data):
    root, raw = data
    ds = Covid19Dataset(subtask='lung_infection', data_root=str(root / 'mosmed'), ann_file='splits/test.txt',
                        data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=[LoadAnnotations()])
    mask = _display(raw['mosmed'] / 'masks' / 'study_0256_mask.nii.gz', las=True)
    loaded = _loaded(ds)
    for k in range(SLICES):
        assert np.array_equal(loaded[f'study_0256_{k:04d}'], 3 * mask[k])


def test_several_folders_read_as_one_infection_set(data):
    """MSD tumour masks and the COVID store's codes in one dataset: each slice's truth = its release's own mask."""
    root, raw = data
    ds = Covid19MultiSourceDataset(
        subtask='infection', data_root=str(root),
        sources=[dict(root='msd-lung', ann_file='splits/train.txt'), dict(root='covid19', ann_file='splits/task1_fold0_train.txt')],
        pipeline=[LoadAnnotations()])
    assert ds.metainfo['classes'] == ('background', 'infection')
    loaded = _loaded(ds)
    msd_train = (root / 'msd-lung' / 'splits' / 'train.txt').read_text().split()
    assert len(loaded) == len(msd_train) + 4 * SLICES  # fold 0 trains on 4 COVID cases (NOTES.md)
    for stem in msd_train:
        case, k = stem.rsplit('_', 1)
        assert np.array_equal(loaded[stem], _display(raw['msd-lung'] / 'labelsTr' / f'{case}.nii.gz')[int(k)])
    infection = _display(raw['covid19'] / 'Infection_Mask' / 'coronacases_008.nii.gz')
    for k in range(SLICES):
        assert np.array_equal(loaded[f'coronacases_008_{k:04d}'], infection[k])


def test_multi_source_errors_name_the_problem(data):
    root, _ = data
    with pytest.raises(MedSegError, match='takes its split lists per source'):
        Covid19MultiSourceDataset(sources=[dict(root='covid19', ann_file='splits/train.txt')], data_root=str(root),
                                  ann_file='splits/train.txt')
    with pytest.raises(MedSegError, match=r'covid19_task2_train\.txt: split list not found'):
        Covid19MultiSourceDataset(sources=[dict(root='msd-lung', ann_file='splits/covid19_task2_train.txt')],
                                  data_root=str(root), subtask='infection')
    with pytest.raises(MedSegError, match='each source is dict'):
        Covid19MultiSourceDataset(sources=[dict(root='msd-lung')], data_root=str(root))
