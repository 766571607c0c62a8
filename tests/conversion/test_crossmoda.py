"""CrossMoDA converter on the synthetic release: both namings, float labels, geometry check, image-only
target splits, files stored in other voxel orders than L,P,S (slices checked against SimpleITK's LPS
orientation of the file), and the resample/crop round trip back onto the source files (read with nibabel)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import read_case_geometry, read_manifest
from mmseg_medical.restacking import iter_case_volumes, to_source_grid
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

SLICES = 6


def _convert(raw: Path, out: Path, **options) -> dict:
    return prepare(CONVERTERS['crossmoda'](**options), raw, out, workers=1, previews=0)


def _nifti_zhw(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)  # L,P,S files: display order


@pytest.fixture(scope='module')
def releases(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('crossmoda')
    return {naming: write_crossmoda_release(root / naming / 'download', naming=naming, num_source=5,
                                            num_target=2, num_val=2, size=48, num_slices=SLICES)
            for naming in ('2021', '2022')}


def test_2021_layout(releases, tmp_path):
    raw, out = releases['2021'], tmp_path / 'out'
    _convert(raw, out)
    splits = json.loads((out / 'splits.json').read_text())
    assert sorted(splits['train'] + splits['val']) == [f'crossmoda_{n}' for n in (1, 2, 3, 4, 5)]
    assert splits['target'] == ['crossmoda_6', 'crossmoda_7']
    assert splits['target_val'] == ['crossmoda_8', 'crossmoda_9']
    rows = {r.stem: r for r in read_manifest(out)}
    for case in splits['target'] + splits['target_val']:                  # image-only: no masks anywhere
        for k in range(SLICES):
            assert rows[f'{case}_{k:04d}'].mask == '' and (out / 'images' / f'{case}_{k:04d}.png').is_file()
            assert not (out / 'masks' / f'{case}_{k:04d}.png').exists()
    lists = {p.stem: p.read_text().split() for p in (out / 'splits').glob('*.txt')}
    assert lists['target'] == [f'{c}_{k:04d}' for c in splits['target'] for k in range(SLICES)]
    # masks = the float64 label file's values; images = 0.5/99.5 percentiles of the volume onto 0..255
    src = raw / 'crossmoda_training' / 'source_training'
    label = _nifti_zhw(src / 'crossmoda_3_Label.nii.gz')
    image = _nifti_zhw(src / 'crossmoda_3_ceT1.nii.gz').astype(np.float64)
    lo, hi = np.percentile(image, [0.5, 99.5])
    for k in range(SLICES):
        mask = cv2.imread(str(out / 'masks' / f'crossmoda_3_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, label[k].astype(np.uint8))
        png = cv2.imread(str(out / 'images' / f'crossmoda_3_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        expected = np.clip(np.rint((image[k] - lo) * 255 / (hi - lo)), 0, 255)
        assert np.abs(png.astype(int) - expected).max() <= 1
    assert set(np.unique(label)) == {0.0, 1.0, 2.0} and label.dtype == np.float64
    meta = json.loads((out / 'splits' / 'crossmoda_cases.json').read_text())
    assert meta['crossmoda_3'] == {'domain': 'source', 'modality': 'ceT1', 'site': None, 'year': None}
    assert meta['crossmoda_8']['domain'] == 'target'


def test_2022_naming_sites_and_label_pairing(releases, tmp_path):
    raw, out = releases['2022'], tmp_path / 'out'
    assert (raw / 'crossmoda2022_training' / 'crossmoda2021_ldn_2_Label.nii.gz').is_file()
    _convert(raw, out, percentiles=[1.0, 99.0])
    splits = json.loads((out / 'splits.json').read_text())
    source = ['crossmoda2022_etz_1', 'crossmoda2022_ldn_2', 'crossmoda2022_etz_3', 'crossmoda2022_ldn_4',
              'crossmoda2022_etz_5']
    assert sorted(splits['train'] + splits['val']) == sorted(source)
    assert splits['target'] == ['crossmoda2022_etz_7', 'crossmoda2022_ldn_6']
    assert splits['target_val'] == ['crossmoda2022_etz_9', 'crossmoda2022_ldn_8']
    # the London label (crossmoda2021_ldn_2_Label) went with crossmoda2022_ldn_2_ceT1
    label = _nifti_zhw(raw / 'crossmoda2022_training' / 'crossmoda2021_ldn_2_Label.nii.gz')
    mask = cv2.imread(str(out / 'masks' / 'crossmoda2022_ldn_2_0002.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, label[2])
    meta = json.loads((out / 'splits' / 'crossmoda_cases.json').read_text())
    assert {c: meta[c]['site'] for c in source} == {c: c.split('_')[1] for c in source}
    assert {meta[c]['site'] for c in splits['val']} <= {'ldn', 'etz'}
    card = json.loads((out / 'dataset.json').read_text())
    assert card['classes'] == ['background', 'vestibular_schwannoma', 'cochlea']
    assert card['settings'] == {'percentiles': [1.0, 99.0], 'spacing': None, 'crop': None}


def _copy_release(raw: Path, dst: Path) -> Path:
    shutil.copytree(raw, dst)
    return dst


@pytest.mark.parametrize('value, problem', [
    (1.5, 'label values must be whole numbers, found e.g. 1.5'),
    (np.nan, 'label volume contains NaN or infinite values'),
    (3.0, r'label values \[3\] are outside the label map \[0, 1, 2\]'),
])
def test_bad_label_values_are_one_error_line(releases, tmp_path, capsys, value, problem):
    raw = _copy_release(releases['2021'], tmp_path / 'raw')
    path = raw / 'crossmoda_training' / 'source_training' / 'crossmoda_2_Label.nii.gz'
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float64)
    data[0, 0, 0] = value                       # a corner voxel: a --crop would cut it, validation must not
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    code = prepare_main(['crossmoda', '--src', str(raw), '--out', str(tmp_path / 'out'), '--workers', '1',
                         '--crop', '32'])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1
    assert re.match(rf'^error: {re.escape(str(path))}: {problem}$', err.strip())
    assert not (tmp_path / 'out').exists()


def test_whole_number_float_labels_are_accepted_in_any_float_type(releases, tmp_path):
    raw = _copy_release(releases['2021'], tmp_path / 'raw')
    path = raw / 'crossmoda_training' / 'source_training' / 'crossmoda_2_Label.nii.gz'
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float32) + np.float32(1e-5)   # float noise of a resampler
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    _convert(raw, tmp_path / 'out')
    mask = cv2.imread(str(tmp_path / 'out' / 'masks' / 'crossmoda_2_0003.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.rint(data[:, :, 3].T).astype(np.uint8))


def test_image_label_mismatch_and_orphan_label(releases, tmp_path):
    raw = _copy_release(releases['2021'], tmp_path / 'raw')
    folder = raw / 'crossmoda_training' / 'source_training'
    label = folder / 'crossmoda_4_Label.nii.gz'
    img = nib.load(str(label))
    shifted = img.affine.copy()
    shifted[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), str(label))
    with pytest.raises(MedSegError) as info:
        _convert(raw, tmp_path / 'out')
    assert str(info.value).startswith(f'{label}: label does not match image {folder / "crossmoda_4_ceT1.nii.gz"}')
    assert 'origin' in str(info.value)
    (folder / 'crossmoda_4_ceT1.nii.gz').unlink()
    with pytest.raises(MedSegError, match=r'crossmoda_4_Label.nii.gz: no ceT1 scan for this label'):
        _convert(raw, tmp_path / 'out')
    (folder / 'crossmoda_5_Label.nii.gz').unlink()
    label.unlink()
    with pytest.raises(MedSegError, match=r'crossmoda_5_ceT1.nii.gz: no label crossmoda_5_Label.nii.gz'):
        _convert(raw, tmp_path / 'out')


AXIS = {'L': 0, 'R': 0, 'P': 1, 'A': 1, 'S': 2, 'I': 2}


def _store_as(path: Path, axcodes: str) -> None:
    """Rewrite an L,P,S file of the synthetic release with its voxels in ``axcodes`` order, by hand: axis k
    of the new array is the old axis of the same body direction, reversed where the letter differs; the
    affine's columns follow (negated for a reversed axis, whose first voxel is the old last one), so every
    voxel keeps its world position."""
    img = nib.load(str(path))
    data, affine = np.asanyarray(img.dataobj), img.affine
    assert ''.join(nib.aff2axcodes(affine)) == 'LPS'
    perm = [AXIS[c] for c in axcodes]
    flip = [c not in 'LPS' for c in axcodes]
    new_data = data.transpose(perm)
    new_affine = np.eye(4)
    new_affine[:3, 3] = affine[:3, 3]
    for k, (old, reverse) in enumerate(zip(perm, flip)):
        column = affine[:3, old]
        if reverse:
            new_data = np.flip(new_data, axis=k)
            new_affine[:3, 3] += (data.shape[old] - 1) * column
            column = -column
        new_affine[:3, k] = column
    nib.save(nib.Nifti1Image(np.ascontiguousarray(new_data), new_affine), str(path))
    assert ''.join(nib.aff2axcodes(nib.load(str(path)).affine)) == axcodes


def _sitk_display(path: Path) -> np.ndarray:
    """The file as SimpleITK reads it, reoriented to LPS: GetArrayFromImage is (z, y, x) = display slices."""
    img = sitk.DICOMOrient(sitk.ReadImage(str(path)), 'LPS')
    assert img.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    return sitk.GetArrayFromImage(img)


@pytest.mark.parametrize('axcodes', ['RAS', 'LAS', 'PLS', 'SRA'])
def test_files_not_stored_lps_give_the_slices_of_their_lps_orientation(releases, tmp_path, axcodes):
    """Real crossMoDA files are L,P,S (as the synthetic release writes them), other NIfTI releases are not
    (MosMed masks are LAS): the scans and labels rewritten in another voxel order give the PNG slices of
    SimpleITK's LPS orientation of the same files (masks exact, images up to rounding)."""
    raw = _copy_release(releases['2021'], tmp_path / 'raw')
    source = raw / 'crossmoda_training' / 'source_training'
    target = raw / 'crossmoda_training' / 'target_training'
    files = sorted(source.glob('*.nii.gz')) + [target / 'crossmoda_6_hrT2.nii.gz']   # with an image-only scan
    for path in files:
        _store_as(path, axcodes)
    out = tmp_path / 'out'
    _convert(raw, out)
    for path in files:
        case, kind = path.name[:-len('.nii.gz')].rsplit('_', 1)
        expected = _sitk_display(path)
        assert expected.shape == (SLICES, 48, 48)
        if kind == 'Label':
            assert set(np.unique(expected)) == {0.0, 1.0, 2.0}
            # not symmetric: a flipped or transposed slice would not pass
            assert all(not np.array_equal(expected, other) for other in
                       (expected[:, ::-1], expected[:, :, ::-1], expected.transpose(0, 2, 1), expected[::-1]))
            for k in range(SLICES):
                mask = cv2.imread(str(out / 'masks' / f'{case}_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
                np.testing.assert_array_equal(mask, expected[k].astype(np.uint8))
        else:
            image = expected.astype(np.float64)
            lo, hi = np.percentile(image, [0.5, 99.5])
            for k in range(SLICES):
                png = cv2.imread(str(out / 'images' / f'{case}_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
                assert np.abs(png.astype(int) - np.clip(np.rint((image[k] - lo) * 255 / (hi - lo)), 0, 255)).max() <= 1
    assert len(files) == 11


@pytest.mark.parametrize('spacing, crop, exact', [(2.5, 64, True), (6.0, 40, False), (None, 40, True)])
def test_resampled_and_cropped_labels_restack_onto_the_source_files(releases, tmp_path, spacing, crop, exact):
    """A perfect prediction on the prepared grid (its own mask slices) goes back onto the source label file:
    same shape and affine as nibabel reads them; upsampling + a crop holding the head is exact (Dice 1)."""
    raw, out = releases['2021'], tmp_path / 'out'
    _convert(raw, out, spacing=spacing, crop=crop)
    folder = raw / 'crossmoda_training' / 'source_training'
    seen = 0
    for case_id, gt, _ in iter_case_volumes(out):
        geometry = read_case_geometry(out, case_id)
        assert list(gt.array.shape) == [SLICES, crop, crop] == geometry['shape_zhw']
        back = to_source_grid(gt.array, geometry)
        source = nib.load(str(folder / f'{case_id}_Label.nii.gz'))
        assert back.array.shape == source.shape[::-1]
        np.testing.assert_allclose(back.affine, source.affine, atol=1e-5)
        truth = np.asanyarray(source.dataobj).transpose(2, 1, 0).astype(np.uint8)
        for c in (1, 2):
            dice = 2 * np.sum((back.array == c) & (truth == c)) / (np.sum(back.array == c) + np.sum(truth == c))
            if exact:
                assert dice == 1.0
            elif c == 1:                     # downsampled: the tumour survives, the cochlea may not
                assert dice > 0.7
        if exact:
            np.testing.assert_array_equal(back.array, truth)
        seen += 1
    assert seen == 5
    if spacing:
        sx = read_case_geometry(out, 'crossmoda_1')['spacing']
        assert sx[:2] == pytest.approx([spacing, spacing])


def test_option_errors(releases, tmp_path, capsys):
    for args in (['--crop', '0'], ['--spacing', '-1'], ['--percentiles', '5', '101'], ['--label-values', '0', '1', '2'],
                 ['--edition', '2020']):
        with pytest.raises(SystemExit) as info:
            prepare_main(['crossmoda', '--src', str(releases['2021']), '--out', str(tmp_path / 'o'), *args])
        assert info.value.code == 2
    code = prepare_main(['crossmoda', '--src', str(releases['2021']), '--out', str(tmp_path / 'o'),
                         '--percentiles', '99', '1'])
    assert code == 1 and 'LOW must be below HIGH' in capsys.readouterr().err
    code = prepare_main(['crossmoda', '--src', str(releases['2021']), '--out', str(tmp_path / 'o'),
                         '--label-values', '1', '1', '2'])
    assert code == 1 and 'expected three distinct positive values' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()



# ---------------------------------------------------------------------------------------------- crossMoDA 2023
SOURCE_2023 = 'crossmoda23_training/TrainingSource'


@pytest.fixture(scope='module')
def release_2023(tmp_path_factory) -> Path:
    """6 labelled ceT1 (two per site etz / ldn / ukm), 3 T2 TrainingTarget, 2 T2 validation scans."""
    return write_crossmoda_release(tmp_path_factory.mktemp('crossmoda2023') / 'download', naming='2023',
                                   num_source=6, num_target=3, num_val=2, size=48, num_slices=SLICES)


def test_2023_three_classes_every_voxel_kept(release_2023, tmp_path):
    """The 2023 layout prepares with background + 3 classes; every mask slice equals the raw label volume as
    nibabel and SimpleITK read it (labels 1 intra, 2 extra, 3 cochlea), and the source-grid label store equals
    the raw file; T2 scans are image-only target / target_val."""
    raw, out = release_2023, tmp_path / 'out'
    _convert(raw, out, crop=56)                  # pads 48 → 56: a spatial step that must drop no voxel
    card = json.loads((out / 'dataset.json').read_text())
    assert card['classes'] == ['background', 'vs_intrameatal', 'vs_extrameatal', 'cochlea']
    assert card['settings'] == {'percentiles': [0.5, 99.5], 'spacing': None, 'crop': 56, 'edition': '2023',
                                'label_values': [1, 2, 3]}
    assert card['removed_label_voxels'] == {}
    labels = sorted((raw / SOURCE_2023).glob('*_Label.nii.gz'))
    assert len(labels) == 6
    for path in labels:
        case = path.name[:-len('_Label.nii.gz')]
        truth = _nifti_zhw(path)
        assert set(np.unique(truth)) == {0.0, 1.0, 2.0, 3.0} and truth.dtype == np.float64
        np.testing.assert_array_equal(_sitk_display(path), truth)   # L,P,S file: both readers agree
        masks = np.stack([cv2.imread(str(out / 'masks' / f'{case}_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
                          for k in range(SLICES)])
        np.testing.assert_array_equal(masks[:, 4:52, 4:52], truth.astype(np.uint8))   # the padded window
        assert not masks[:, :4].any() and not masks[:, 52:].any()
        stored = nib.load(str(out / 'labels' / f'{case}.nii.gz'))
        source = nib.load(str(path))
        np.testing.assert_array_equal(np.asanyarray(stored.dataobj), np.asanyarray(source.dataobj).astype(np.uint8))
        np.testing.assert_allclose(stored.affine, source.affine, atol=1e-6)
    splits = json.loads((out / 'splits.json').read_text())
    assert splits['target'] == sorted(p.name[:-len('_T2.nii.gz')]
                                      for p in (raw / 'crossmoda23_training/TrainingTarget').glob('*_T2.nii.gz'))
    assert splits['target_val'] == sorted(p.name[:-len('_T2.nii.gz')]
                                          for p in (raw / 'crossmoda23_validation').glob('*_T2.nii.gz'))
    assert len(splits['target']) == 3 and len(splits['target_val']) == 2
    assert not any((out / 'masks').glob('crossmoda2023_*_9_*.png'))       # target scans: no masks
    meta = json.loads((out / 'splits' / 'crossmoda_cases.json').read_text())
    assert {meta[c]['site'] for c in splits['train']} == {meta[c]['site'] for c in splits['val']} \
        == {'etz', 'ldn', 'ukm'}                                           # one hold-out per site
    assert meta['crossmoda2023_etz_9'] == {'domain': 'target', 'modality': 'T2', 'site': 'etz', 'year': '2023'}


def test_2023_label_values_option(release_2023, tmp_path, capsys):
    """Other raw values of the three structures: refused without --label-values (one error line, nothing
    written), mapped to 1, 2, 3 with it."""
    raw = write_crossmoda_release(tmp_path / 'raw', naming='2023', num_source=3, num_target=1, num_val=1,
                                  size=32, num_slices=3, label_values=(10, 20, 30))
    out = tmp_path / 'out'
    code = prepare_main(['crossmoda', '--src', str(raw), '--out', str(out), '--workers', '1'])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and not out.exists()
    assert 'label values [10, 20, 30] are outside the label map [0, 1, 2, 3]' in err
    assert prepare_main(['crossmoda', '--src', str(raw), '--out', str(out), '--workers', '1', '--previews', '0',
                         '--label-values', '10', '20', '30']) == 0
    path = raw / SOURCE_2023 / 'crossmoda2023_ldn_1_Label.nii.gz'
    truth = _nifti_zhw(path)
    assert set(np.unique(truth)) == {0.0, 10.0, 20.0, 30.0}
    expected = np.select([truth == 10, truth == 20, truth == 30], [1, 2, 3], 0)
    for k in range(3):
        mask = cv2.imread(str(out / 'masks' / f'crossmoda2023_ldn_1_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, expected[k])
    assert json.loads((out / 'dataset.json').read_text())['raw_label_values'] == {'0': 0, '10': 1, '20': 2, '30': 3}


def test_2023_beside_2022_files_needs_an_edition(release_2023, releases, tmp_path, capsys):
    """2023 files (3 structures) and 2022 ones (2) under one --src: auto refuses naming both; --edition reads
    only that edition's files; --label-values with 2021/2022 files is refused."""
    src = tmp_path / 'downloads'
    shutil.copytree(release_2023, src / '2023')
    shutil.copytree(releases['2022'], src / '2022')
    code = prepare_main(['crossmoda', '--src', str(src), '--out', str(tmp_path / 'o'), '--workers', '1'])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and 'pass --edition 2023 or --edition 2021-2022' in err
    assert 'crossmoda2023_' in err and 'crossmoda202' in err.split('and 2021/2022 ones')[1]
    stats = _convert(src, tmp_path / 'a', edition='2023')
    cases = json.loads((tmp_path / 'a' / 'splits' / 'crossmoda_cases.json').read_text())
    assert len(cases) == 11 and all(c.startswith('crossmoda2023_') for c in cases), stats
    _convert(src, tmp_path / 'b', edition='2021-2022')
    cases = json.loads((tmp_path / 'b' / 'splits' / 'crossmoda_cases.json').read_text())
    assert len(cases) == 9 and not any(c.startswith('crossmoda2023_') for c in cases)
    assert json.loads((tmp_path / 'b' / 'dataset.json').read_text())['classes'] == list(
        ('background', 'vestibular_schwannoma', 'cochlea'))
    code = prepare_main(['crossmoda', '--src', str(releases['2022']), '--out', str(tmp_path / 'c'),
                         '--label-values', '1', '2', '3'])
    assert code == 1 and 'applies to the 2023 edition only' in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        prepare_main(['crossmoda', '--src', str(src), '--out', str(tmp_path / 'd'), '--edition', '2024'])
    assert info.value.code == 2
