"""``prepare_dataset.py nnunet``: nnU-Net v2 raw datasets, checked against SimpleITK / nibabel / scikit-learn."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmseg_medical.conversion.cli import main
from mmseg_medical.io.images import read_image
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.nnunet import write_nnunet_release

sitk = pytest.importorskip('SimpleITK')


def prepare(capsys, *argv):
    code = main(['nnunet', *map(str, argv), '--workers', '1', '--previews', '0'])
    return code, capsys.readouterr().err.strip().splitlines()


def slice_stack(out: Path, folder: str, case: str) -> np.ndarray:
    paths = sorted((out / folder).glob(f'{case}_[0-9][0-9][0-9][0-9].png'))
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths])


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('nnunet')
    release = write_nnunet_release(root / 'raw')
    out = root / 'out'
    assert main(['nnunet', '--src', str(release), '--out', str(out), '--folds', '5', '--workers', '1',
                 '--previews', '0']) == 0
    return release, out


def test_classes_channels_and_test_split_come_from_dataset_json(toy):
    release, out = toy
    raw = json.loads((release / 'dataset.json').read_text())
    card = json.loads((out / 'dataset.json').read_text())
    assert card['classes'] == ['background', 'peripheral', 'transition'] == list(raw['labels'])
    assert card['channels'] == ['T2', 'ADC']
    assert card['intensity']['ADC']['rule'] == 'percentile'
    splits = json.loads((out / 'splits.json').read_text())
    assert splits['test'] == ['toy_100', 'toy_101']  # imagesTs (+ labelsTs)
    assert sorted(splits['train'] + splits['val']) == [f'toy_{i:03d}' for i in range(6)]


def test_every_label_voxel_kept_in_simpleitk_voxel_order(toy):
    """Identity-direction (LPS) files: the display slices are SimpleITK's (z, y, x) array as it is."""
    release, out = toy
    for case in ('toy_000', 'toy_003', 'toy_101'):
        part = 'Ts' if case == 'toy_101' else 'Tr'
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(release / f'labels{part}' / f'{case}.nii.gz')))
        np.testing.assert_array_equal(slice_stack(out, 'masks', case), label)
        assert np.bincount(label.ravel(), minlength=3)[1:].min() > 0


def test_second_channel_is_the_second_file(toy):
    release, out = toy
    adc = sitk.GetArrayFromImage(sitk.ReadImage(str(release / 'imagesTr' / 'toy_002_0001.nii.gz')))
    t2 = sitk.GetArrayFromImage(sitk.ReadImage(str(release / 'imagesTr' / 'toy_002_0000.nii.gz')))
    png1 = slice_stack(out, 'images_0001', 'toy_002').astype(float)
    png0 = slice_stack(out, 'images', 'toy_002').astype(float)
    corr = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]  # noqa: E731
    assert corr(png1, adc) > 0.95 and corr(png0, t2) > 0.95
    assert corr(png1, adc) > corr(png1, t2) + 0.01


def test_folds_are_sklearn_kfold_12345_over_sorted_ids(toy):
    from sklearn.model_selection import KFold

    _, out = toy
    ids = np.array(sorted(f'toy_{i:03d}' for i in range(6)))
    expected = [{'train': list(ids[a]), 'val': list(ids[b])}
                for a, b in KFold(5, shuffle=True, random_state=12345).split(ids)]
    assert json.loads((out / 'splits' / 'folds.json').read_text()) == expected
    for k, fold in enumerate(expected):
        stems = (out / 'splits' / f'fold{k}_val.txt').read_text().split()
        assert sorted({s.rsplit('_', 1)[0] for s in stems}) == fold['val']


def test_user_splits_file_taken_as_it_is(tmp_path, toy, capsys):
    release, _ = toy
    folds = [{'train': ['toy_000', 'toy_001', 'toy_002'], 'val': ['toy_003', 'toy_004', 'toy_005']},
             {'train': ['toy_005', 'toy_004', 'toy_003'], 'val': ['toy_002', 'toy_001', 'toy_000']}]
    (tmp_path / 'splits_final.json').write_text(json.dumps(folds))
    code, _ = prepare(capsys, '--src', release, '--out', tmp_path / 'out', '--nnunet-splits',
                      tmp_path / 'splits_final.json')
    assert code == 0
    assert json.loads((tmp_path / 'out' / 'splits' / 'folds.json').read_text()) == folds
    lists = json.loads((tmp_path / 'out' / 'splits.json').read_text())
    assert lists['fold1_val'] == ['toy_000', 'toy_001', 'toy_002']


@pytest.mark.parametrize('ending', ['.nrrd', '.mha', '.nii'])
def test_every_file_ending_has_the_nifti_geometry(tmp_path, ending):
    """An oblique volume written by SimpleITK as .nii.gz and as ``ending``: the affine nibabel gives the NIfTI
    is the one read from the other file, and so is the voxel array."""
    import nibabel as nib

    array = np.random.default_rng(0).integers(0, 9, (5, 7, 6)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((12.0, -30.0, 5.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0, s, c, 0, 0, 0, -1))
    sitk.WriteImage(image, str(tmp_path / 'a.nii.gz'))
    sitk.WriteImage(image, str(tmp_path / f'a{ending}'))
    ref = nib.load(str(tmp_path / 'a.nii.gz'))
    got = read_image(tmp_path / f'a{ending}')
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(got.array, np.asarray(ref.dataobj).transpose(2, 1, 0))


def test_nrrd_release_prepares_like_the_nifti_one(tmp_path, toy, capsys):
    _, out = toy
    release = write_nnunet_release(tmp_path / 'raw', file_ending='.nrrd', num_training=6, num_test=2)
    code, _ = prepare(capsys, '--src', release, '--out', tmp_path / 'out')
    assert code == 0
    np.testing.assert_array_equal(slice_stack(tmp_path / 'out', 'masks', 'toy_004'),
                                  slice_stack(out, 'masks', 'toy_004'))
    assert len(read_manifest(tmp_path / 'out')) == len(read_manifest(out))


# ---- bad inputs: one line naming the file, nothing written ---------------------------------------
@pytest.fixture()
def release(tmp_path):
    return write_nnunet_release(tmp_path / 'raw', num_training=3, num_test=0, shape=(3, 8, 10))


def check_refused(capsys, release, out, needle, path, code=2):
    got, err = prepare(capsys, '--src', release, '--out', out)
    assert got == code and len(err) == 1, err
    assert needle in err[0] and str(path) in err[0], err
    assert not out.exists() and not list(out.parent.glob(f'.{out.name}.*'))


def test_missing_dataset_json(release, tmp_path, capsys):
    (release / 'dataset.json').unlink()
    check_refused(capsys, release, tmp_path / 'out', 'dataset.json not found', release / 'dataset.json')


def test_malformed_dataset_json(release, tmp_path, capsys):
    (release / 'dataset.json').write_text('{"labels": ')
    check_refused(capsys, release, tmp_path / 'out', 'malformed dataset.json', release / 'dataset.json')


def test_region_based_labels(release, tmp_path, capsys):
    card = json.loads((release / 'dataset.json').read_text())
    card['labels'] = {'background': 0, 'whole': [1, 2], 'core': 2}
    card['regions_class_order'] = [1, 2]
    (release / 'dataset.json').write_text(json.dumps(card))
    check_refused(capsys, release, tmp_path / 'out', 'region-based labels (whole', release / 'dataset.json')


def test_channel_file_missing(release, tmp_path, capsys):
    (release / 'imagesTr' / 'toy_001_0001.nii.gz').unlink()
    check_refused(capsys, release, tmp_path / 'out', 'channel file missing for case toy_001',
                  release / 'imagesTr' / 'toy_001_0001.nii.gz')


def test_num_training_mismatch(release, tmp_path, capsys):
    card = json.loads((release / 'dataset.json').read_text())
    card['numTraining'] = 4
    (release / 'dataset.json').write_text(json.dumps(card))
    check_refused(capsys, release, tmp_path / 'out', 'numTraining is 4', release / 'dataset.json')


def test_label_value_not_in_labels(release, tmp_path, capsys):
    path = release / 'labelsTr' / 'toy_002.nii.gz'
    label = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 7
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(label)
    sitk.WriteImage(bad, str(path))
    check_refused(capsys, release, tmp_path / 'out', '7', path)


def test_label_of_other_geometry(release, tmp_path, capsys):
    path = release / 'labelsTr' / 'toy_001.nii.gz'
    label = sitk.ReadImage(str(path))
    label.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(label, str(path))
    check_refused(capsys, release, tmp_path / 'out', 'label does not match image', path)


def test_channel_of_other_geometry(release, tmp_path, capsys):
    path = release / 'imagesTr' / 'toy_000_0001.nii.gz'
    image = sitk.ReadImage(str(path))
    image.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path))
    check_refused(capsys, release, tmp_path / 'out', 'channel does not match channel 0', path)


def test_folds_equal_nnunetv2_generate_crossval_split(toy, reference):
    crossval = reference('nnunetv2.utilities.crossval_split')
    _, out = toy
    ids = sorted(f'toy_{i:03d}' for i in range(6))  # nnUNetTrainer.do_split: np.sort of the identifiers
    theirs = [{'train': [str(c) for c in f['train']], 'val': [str(c) for c in f['val']]}
              for f in crossval.generate_crossval_split(ids, seed=12345, n_splits=5)]
    assert json.loads((out / 'splits' / 'folds.json').read_text()) == theirs


def test_splits_file_unreadable_or_naming_other_cases(release, tmp_path, capsys):
    got, err = prepare(capsys, '--src', release, '--out', tmp_path / 'out', '--nnunet-splits', tmp_path / 'nope.json')
    assert got == 2 and len(err) == 1 and 'nope.json: cannot read the splits file' in err[0]
    (tmp_path / 'splits.json').write_text(json.dumps([{'train': ['toy_000', 'toy_001'], 'val': ['toy_077']}]))
    got, err = prepare(capsys, '--src', release, '--out', tmp_path / 'out', '--nnunet-splits', tmp_path / 'splits.json')
    assert got == 2 and len(err) == 1 and 'fold 0 names cases that are not training cases' in err[0]
    assert 'toy_077' in err[0] and not (tmp_path / 'out').exists()


def test_one_fold_splits_file(release, tmp_path, capsys):
    (tmp_path / 'splits.json').write_text(json.dumps([{'train': ['toy_000', 'toy_001'], 'val': ['toy_002']}]))
    got, _ = prepare(capsys, '--src', release, '--out', tmp_path / 'out', '--nnunet-splits', tmp_path / 'splits.json')
    assert got == 0
    lists = json.loads((tmp_path / 'out' / 'splits.json').read_text())
    assert lists['fold0_train'] == ['toy_000', 'toy_001'] and lists['fold0_val'] == ['toy_002']
