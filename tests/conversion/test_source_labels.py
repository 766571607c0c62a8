"""``labels/<case>.nii.gz``: the label in class indices on the source scan's grid, checked against the source
file read with nibabel; and the per-case, per-class warnings when --crop / --spacing remove labelled voxels,
checked against counts made by hand."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.conversion.nifti_pairs import NiftiPairSpec, nifti_pair_converter
from mmseg_medical.manifest import read_case_geometry, read_source_label, source_label_path
from mmseg_medical.restacking import iter_case_volumes, to_source_grid
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

SLICES = 4
SOURCE = Path('crossmoda_training') / 'source_training'


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    return write_crossmoda_release(tmp_path_factory.mktemp('crossmoda') / 'raw', num_source=3, num_target=1,
                                   num_val=0, size=32, num_slices=SLICES)


def _reorient(path: Path, axcodes: str) -> None:
    """Rewrite ``path`` with its voxels stored in ``axcodes`` order (same world positions)."""
    img = nib.load(str(path))
    ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(axcodes)))
    nib.save(img.as_reoriented(ornt), str(path))


def _by_hand(data: np.ndarray, mapping: dict) -> np.ndarray:
    out = np.zeros(data.shape, np.uint8)
    for raw, index in mapping.items():
        out[data == raw] = index
    return out


@pytest.mark.parametrize('axcodes', ['LPS', 'RAS', 'LAS', 'PLS', 'SRA'])
def test_source_label_is_the_source_file_in_class_indices(release, tmp_path, axcodes):
    """Whatever the voxel order of the files, ``labels/<case>.nii.gz`` holds the source label's voxels in
    their own order with their own affine; a restacked prediction goes back onto exactly that grid."""
    raw = Path(shutil.copytree(release, tmp_path / 'raw'))
    for name in ('crossmoda_2_ceT1.nii.gz', 'crossmoda_2_Label.nii.gz'):
        _reorient(raw / SOURCE / name, axcodes)
    source = nib.load(str(raw / SOURCE / 'crossmoda_2_Label.nii.gz'))
    assert ''.join(nib.aff2axcodes(source.affine)) == axcodes
    out = tmp_path / 'out'
    prepare(CONVERTERS['crossmoda'](spacing=2.5, crop=40), raw, out, workers=1, previews=0)
    for case_id, gt, _ in iter_case_volumes(out):
        source = nib.load(str(raw / SOURCE / f'{case_id}_Label.nii.gz'))
        truth = _by_hand(np.asanyarray(source.dataobj), {0.0: 0, 1.0: 1, 2.0: 2})
        written = nib.load(str(source_label_path(out, case_id)))
        assert written.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asanyarray(written.dataobj), truth)
        assert np.allclose(written.affine, source.affine, atol=1e-5)
        volume = read_source_label(out, case_id)
        np.testing.assert_array_equal(volume.nifti_array(), truth)
        assert np.allclose(volume.affine, source.affine, atol=1e-5)
        back = to_source_grid(gt.array, read_case_geometry(out, case_id))   # the prepared masks, restacked
        assert back.array.shape == volume.array.shape and np.allclose(back.affine, volume.affine, atol=1e-5)
        assert read_case_geometry(out, case_id)['source_label'] == f'labels/{case_id}.nii.gz'
    assert sorted(p.name for p in (out / 'labels').iterdir()) == [f'crossmoda_{n}.nii.gz' for n in (1, 2, 3)]
    assert read_source_label(out, 'crossmoda_4') is None                  # the hrT2 target: no label


def test_raw_values_are_remapped_to_class_indices(tmp_path):
    """A release whose label file stores 0 / 7 / 255 (LAS voxel order): the file holds 0 / 1 / 2."""
    spec = NiftiPairSpec(name='remap-test', description='remap test', image='{case}_img.nii.gz',
                         label='{case}_seg.nii.gz', classes=('background', 'a', 'b'), dataset_type='CraniumDataset',
                         raw_values={0: 0, 7: 1, 255: 2})
    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 0.8, 2.5, 1.0])                                 # R, A, S ...
    affine[0, 0] = -1.0                                                    # ... L, A, S
    affine[:3, 3] = (20.0, -30.0, 4.0)
    raw = tmp_path / 'raw'
    raw.mkdir()
    for case in ('c1', 'c2', 'c3'):
        label = rng.choice(np.array([0, 7, 255], np.int16), size=(12, 10, 5))
        nib.save(nib.Nifti1Image(rng.normal(0, 100, size=label.shape).astype(np.float32), affine),
                 str(raw / f'{case}_img.nii.gz'))
        nib.save(nib.Nifti1Image(label, affine), str(raw / f'{case}_seg.nii.gz'))
    out = tmp_path / 'out'
    prepare(nifti_pair_converter(spec)(), raw, out, workers=1, previews=0)
    for case in ('c1', 'c2', 'c3'):
        source = nib.load(str(raw / f'{case}_seg.nii.gz'))
        written = nib.load(str(out / 'labels' / f'{case}.nii.gz'))
        np.testing.assert_array_equal(np.asanyarray(written.dataobj),
                                      _by_hand(np.asanyarray(source.dataobj), {0: 0, 7: 1, 255: 2}))
        assert np.allclose(written.affine, source.affine)


def _write_labels(raw: Path, labels: dict) -> None:
    """Replace each case's label by a display-order (Z, H, W) array (L,P,S files: NIfTI = its transpose)."""
    for case_id, display in labels.items():
        path = raw / SOURCE / f'{case_id}_Label.nii.gz'
        affine = nib.load(str(path)).affine
        nib.save(nib.Nifti1Image(display.transpose(2, 1, 0).astype(np.float64), affine), str(path))


def test_crop_warns_with_the_count_outside_the_window(release, tmp_path, capsys):
    raw = Path(shutil.copytree(release, tmp_path / 'raw'))
    size, crop = 32, 16
    lo = (size - crop) // 2                      # centred window: rows and columns lo .. lo + crop - 1
    hi = lo + crop
    one = np.zeros((SLICES, size, size), np.uint8)
    one[:, lo + 2:lo + 6, lo + 2:lo + 6] = 1     # tumour inside the window
    one[1, 0:3, 0:4] = 2                         # 12 cochlea voxels in the top-left corner: outside
    one[2, hi:hi + 2, lo:lo + 5] = 2             # 10 below the window
    one[2, lo:lo + 2, lo + 8:lo + 11] = 2        # 6 inside
    two = np.zeros_like(one)
    two[:, lo:hi, lo:hi] = 1                     # the tumour fills the window exactly: nothing removed
    two[3, 1, 1] = 2                             # the only cochlea voxel, outside: the class vanishes
    three = np.zeros_like(one)
    three[0, lo, lo] = 1
    _write_labels(raw, {'crossmoda_1': one, 'crossmoda_2': two, 'crossmoda_3': three})
    out = tmp_path / 'out'
    code = prepare_main(['crossmoda', '--src', str(raw), '--out', str(out), '--workers', '1', '--crop', str(crop),
                         '--previews', '0'])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith('warning:')]
    assert warnings == [
        'warning: crossmoda_1: --crop 16 removes 22 of 28 labelled voxels of cochlea (outside the crop window)',
        'warning: crossmoda_2: --crop 16 removes 1 of 1 labelled voxels of cochlea (outside the crop window); '
        'none left on the prepared slices']
    removed = json.loads((out / 'dataset.json').read_text())['removed_label_voxels']
    assert removed == {'crossmoda_1': {'cochlea': {'source_voxels': 28, 'outside_crop': 22, 'resampling': 0}},
                       'crossmoda_2': {'cochlea': {'source_voxels': 1, 'outside_crop': 1, 'resampling': 0}}}
    assert read_case_geometry(out, 'crossmoda_3')['removed_label_voxels'] == {}
    # the source-grid label keeps what the crop cut
    np.testing.assert_array_equal(read_source_label(out, 'crossmoda_1').array, one)


def test_resampling_warns_only_past_the_fraction_or_when_a_class_vanishes(release, tmp_path, capsys):
    """Downsampling by exactly 2 (6.5625 → 13.125 mm): resampled pixel i sits on source pixel 2i and the
    inverse gives source pixel j the value of resampled pixel floor(j / 2 + 0.5), i.e. of source pixel
    2 * floor(j / 2 + 0.5). A block starting on an even pixel thus loses its last row and column when it
    ends on an odd one, nothing when it ends on an even one; a one-pixel line on odd columns is never
    sampled."""
    raw = Path(shutil.copytree(release, tmp_path / 'raw'))
    one = np.zeros((SLICES, 32, 32), np.uint8)
    one[0, 2:24, 2:24] = 1          # 22 x 22 = 484, ends on 23: loses row 23 and column 23 = 43 (8.9 %): no warning
    one[1, 4:14, 27] = 2            # 10 voxels on column 27: all lost, the class vanishes: warning
    two = np.zeros_like(one)
    two[2, 10:20, 10:20] = 1        # 10 x 10 = 100, loses 19 (19 %): warning
    three = np.zeros_like(one)
    three[1, 10:21, 10:21] = 1      # ends on 20: nothing lost
    _write_labels(raw, {'crossmoda_1': one, 'crossmoda_2': two, 'crossmoda_3': three})
    out = tmp_path / 'out'
    spacing = 2 * 210.0 / 32
    stats = prepare(CONVERTERS['crossmoda'](spacing=spacing), raw, out, workers=1, previews=0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith('warning:')]
    assert warnings == [
        'warning: crossmoda_1: --spacing 13.125 removes 10 of 10 labelled voxels of cochlea (by resampling); '
        'none left on the prepared slices',
        'warning: crossmoda_2: --spacing 13.125 removes 19 of 100 labelled voxels of vestibular_schwannoma '
        '(by resampling)']
    expected = {'crossmoda_1': {'vestibular_schwannoma': {'source_voxels': 484, 'outside_crop': 0, 'resampling': 43},
                                'cochlea': {'source_voxels': 10, 'outside_crop': 0, 'resampling': 10}},
                'crossmoda_2': {'vestibular_schwannoma': {'source_voxels': 100, 'outside_crop': 0, 'resampling': 19}}}
    assert json.loads((out / 'dataset.json').read_text())['removed_label_voxels'] == expected
    assert stats['removed_label_voxels'] == expected


def test_no_warning_when_nothing_is_removed(release, tmp_path, capsys):
    """Upsampling and a crop (here a pad) holding the whole slice: the round trip is exact."""
    out = tmp_path / 'out'
    assert prepare_main(['crossmoda', '--src', str(release), '--out', str(out), '--workers', '1', '--spacing', '2.5',
                         '--crop', '300', '--previews', '0']) == 0
    assert 'warning' not in capsys.readouterr().err
    assert json.loads((out / 'dataset.json').read_text())['removed_label_voxels'] == {}


def test_a_resplit_keeps_labels_untouched(release, tmp_path):
    out = tmp_path / 'out'
    prepare(CONVERTERS['crossmoda'](), release, out, workers=1, previews=0)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / 'labels').iterdir()}
    assert len(before) == 3
    stats = prepare(CONVERTERS['crossmoda'](seed=5, val_fraction=0.5), release, out, workers=1, previews=0)
    assert stats.get('resplit')
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / 'labels').iterdir()} == before
    assert json.loads((out / 'dataset.json').read_text())['removed_label_voxels'] == {}


@pytest.mark.parametrize('layouts', [('jpg',), ('jpg', 'nifti')])
def test_jpg_frames_get_a_source_label_too(tmp_path, layouts):
    """Cranium's JPG layout: frames already in display order, no affine. The file holds the binarised masks
    in frame order; its grid is the scans' display spacing when the NIfTI files are there, else none."""
    from mmseg_medical.synthetic import write_cranium_release

    src = tmp_path / 'raw'
    write_cranium_release(src, num_patients=3, num_slices=4, size=32, seed=0, layouts=layouts)
    out = tmp_path / 'out'
    prepare(CONVERTERS['cranium'](layout='jpg'), src, out, workers=1, previews=0)
    import cv2

    cases = sorted(p.name[:-len('.nii.gz')] for p in (out / 'labels').glob('*.nii.gz'))
    assert len(cases) == 3
    bleeding = 0
    for case_id in cases:
        volume = read_source_label(out, case_id)
        # the release's JPEG masks read with OpenCV and thresholded here (> 127), frame n = slice n - 1, a frame
        # without a mask file all background: no reorientation, no spatial step
        brain = next(src.rglob(f'Patients_CT/{case_id}/brain'))
        frames = sorted(int(f.stem) for f in brain.glob('*.jpg') if f.stem.isdigit())
        assert frames == list(range(1, len(frames) + 1))
        expected = []
        for n in frames:
            mask = brain / f'{n}_HGE_Seg.jpg'
            image = cv2.imread(str(brain / f'{n}.jpg'), cv2.IMREAD_GRAYSCALE)
            expected.append(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127 if mask.is_file()
                            else np.zeros(image.shape, bool))
        np.testing.assert_array_equal(volume.array, np.stack(expected).astype(volume.array.dtype), err_msg=case_id)
        bleeding += int(volume.array.any())
        geometry = read_case_geometry(out, case_id)
        if 'nifti' in layouts:
            assert volume.spacing == pytest.approx(geometry['spacing'])
        else:
            assert volume.affine is None and volume.spacing is None and geometry['spacing'] is None
    assert bleeding >= 1                                  # some frame has a mask: the comparison is not all zeros


def test_outputs_of_another_version_are_stale(release, tmp_path, monkeypatch):
    """The package version is part of the fingerprint: an output of 0.1.0 (no labels/) is not taken as up
    to date by this version, and --overwrite redoes it."""
    from mmseg_medical.conversion import engine
    from mmseg_medical.errors import MedSegError

    out = tmp_path / 'out'
    monkeypatch.setattr(engine, '__version__', '0.1.0')
    prepare(CONVERTERS['crossmoda'](), release, out, workers=1, previews=0)
    monkeypatch.undo()
    with pytest.raises(MedSegError, match='prepared from other inputs or options; pass --overwrite'):
        prepare(CONVERTERS['crossmoda'](), release, out, workers=1, previews=0)
    prepare(CONVERTERS['crossmoda'](), release, out, workers=1, previews=0, overwrite=True)
    assert json.loads((out / 'dataset.json').read_text())['version'] != '0.1.0'
