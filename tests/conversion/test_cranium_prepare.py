"""Cranium end to end through the shared engine, on the synthetic release in both real layouts."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.manifest import MANIFEST_COLUMNS, read_case_geometry, read_manifest
from mmseg_medical.synthetic import CSV_COLUMNS, write_cranium_release

PATIENTS, SLICES, SIZE = 10, 8, 64


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('raw')
    write_cranium_release(root, num_patients=PATIENTS, num_slices=SLICES, size=SIZE, seed=1)
    return root


def convert(src, out, **options):
    settings = {k: options.pop(k) for k in ('seed', 'val_fraction', 'folds') if k in options}
    return prepare(CONVERTERS['cranium'](**settings, **options), src, out, workers=2)


@pytest.mark.parametrize('layout', ['jpg', 'nifti'])
def test_both_layouts_give_the_same_dataset_shape(release, tmp_path, layout):
    out = tmp_path / 'cranium'
    stats = convert(release, out, layout=layout)
    rows = read_manifest(out)
    header = (out / 'manifest.csv').read_text().splitlines()[0].split(',')
    assert header == list(MANIFEST_COLUMNS) + list(CSV_COLUMNS[2:])   # + the diagnosis CSV's flags
    assert len(rows) == PATIENTS * SLICES
    assert {r.case_id for r in rows} == {f'{i:03d}' for i in range(49, 49 + PATIENTS)}
    # patient-level split: a case never appears in two splits, and val is ~20% of the patients
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r.case_id, r.split) == r.split
    assert sorted(set(split_of.values())) == ['train', 'val']
    assert sum(s == 'val' for s in split_of.values()) == 2
    for r in rows:
        image = cv2.imread(str(out / r.image), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out / r.mask), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE)  # native size, single channel
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= {0, 1}
        assert r.image == f'images/{r.case_id}_{r.slice_index:04d}.png' and r.mask == r.image.replace('images', 'masks')
        # the flags follow their slice: the synthetic CSV flags exactly the slices with a mask
        assert dict(r.extra)['No_Hemorrhage'] == ('0' if mask.any() else '1')
    lists = {n: (out / 'splits' / f'{n}.txt').read_text().split() for n in ('train', 'val')}
    for name, stems in lists.items():
        assert stems == [r.stem for r in rows if r.split == name]
    assert stats['splits']['train']['cases'] + stats['splits']['val']['cases'] == PATIENTS
    hem_slices = sum(s['class_slices'][1] for s in stats['splits'].values())
    assert 0 < hem_slices < PATIENTS * SLICES
    json.loads((out / 'splits.json').read_text())
    assert (out / 'previews').is_dir() and any((out / 'previews').iterdir())


def _sitk_display(path: Path):
    """SimpleITK's reading of a NIfTI, reoriented to LPS: (z, y, x) array = the display slice convention
    stated in dataset.json (image top = anterior, image left = patient's right), and its RAS affine."""
    import SimpleITK as sitk
    img = sitk.DICOMOrient(sitk.ReadImage(str(path)), 'LPS')
    direction = np.array(img.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(img.GetSpacing())
    affine[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img), np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine, img.GetSpacing()


def _window_40_120(hu: np.ndarray) -> np.ndarray:
    """Level 40 / width 120 written out: [-20, 100] HU -> [0, 255]."""
    return np.clip(np.rint((hu.astype(np.float64) + 20.0) * 255.0 / 120.0), 0, 255).astype(np.uint8)


def test_nifti_layout_gives_display_slices_at_the_export_window(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, layout='nifti')
    card = json.loads((out / 'dataset.json').read_text())
    assert 'image top = anterior' in card['slice_convention'] and card['settings']['window'] == 'ctich-brain'
    rows = read_manifest(out)
    hu, affine, spacing = _sitk_display(release / 'Cranium' / RELEASE / 'ct_scans' / '049.nii')
    labels, _, _ = _sitk_display(release / 'Cranium' / RELEASE / 'masks' / '049.nii')
    assert (rows[0].spacing_x, rows[0].spacing_y, rows[0].spacing_z) == pytest.approx(spacing, rel=1e-5)
    geometry = read_case_geometry(out, '049')
    assert geometry['shape_zhw'] == [SLICES, SIZE, SIZE]
    np.testing.assert_allclose(geometry['affine'], affine, atol=1e-5)
    for r in (r for r in rows if r.case_id == '049'):
        np.testing.assert_array_equal(cv2.imread(str(out / r.image), cv2.IMREAD_UNCHANGED),
                                      _window_40_120(hu[r.slice_index]))
        np.testing.assert_array_equal(cv2.imread(str(out / r.mask), cv2.IMREAD_UNCHANGED), labels[r.slice_index])


def test_both_layouts_give_the_same_slices(release, tmp_path):
    """The JPGs are display frames at 40/120; the NIfTI layout must give the same slices and masks."""
    convert(release, tmp_path / 'j', layout='jpg')
    convert(release, tmp_path / 'n', layout='nifti')
    jpg, nii = read_manifest(tmp_path / 'j'), read_manifest(tmp_path / 'n')
    assert [r.image for r in jpg] == [r.image for r in nii]
    # JPG slices take their spacing from the same patient's NIfTI (display order).
    assert [(r.spacing_x, r.spacing_y, r.spacing_z) for r in jpg] == [(r.spacing_x, r.spacing_y, r.spacing_z) for r in nii]
    inter = total = 0
    diffs = []
    for a, b in zip(jpg, nii):
        ia = cv2.imread(str(tmp_path / 'j' / a.image), cv2.IMREAD_UNCHANGED).astype(int)
        ib = cv2.imread(str(tmp_path / 'n' / b.image), cv2.IMREAD_UNCHANGED).astype(int)
        diffs.append(np.abs(ia - ib).mean())
        ma = cv2.imread(str(tmp_path / 'j' / a.mask), cv2.IMREAD_UNCHANGED)
        mb = cv2.imread(str(tmp_path / 'n' / b.mask), cv2.IMREAD_UNCHANGED)
        inter += int(np.logical_and(ma, mb).sum())
        total += int(ma.sum() + mb.sum())
    assert max(diffs) < 4.0          # JPEG artefacts only (a flipped or re-windowed slice differs by tens)
    assert total > 0 and 2 * inter / total > 0.95


def test_rerun_is_a_no_op_and_overwrite_redoes(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out)
    manifest = out / 'manifest.csv'
    before = manifest.stat().st_mtime_ns
    assert convert(release, out).get('up_to_date') is True
    assert manifest.stat().st_mtime_ns == before
    stats = prepare(CONVERTERS['cranium'](), release, out, workers=1, overwrite=True)
    assert not stats.get('up_to_date') and manifest.stat().st_mtime_ns != before
    assert [p.name for p in tmp_path.iterdir()] == ['cranium']  # no temporary folders left


def test_changed_slice_options_need_overwrite_split_options_do_not(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, seed=0)
    assert convert(release, out, seed=1).get('resplit') is True
    with pytest.raises(Exception, match='pass --overwrite'):
        convert(release, out, seed=1, window='bone')


def test_kfold_split_lists(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, folds=5)
    rows = read_manifest(out)
    assert sorted({r.split for r in rows}) == ['train', 'val']       # the default hold-out stays
    lists = json.loads((out / 'splits.json').read_text())
    vals = [lists[f'fold{k}_val'] for k in range(5)]
    assert sorted(c for v in vals for c in v) == sorted({r.case_id for r in rows})
    for k in range(5):
        assert sorted(lists[f'fold{k}_train'] + vals[k]) == sorted({r.case_id for r in rows})
        stems = (out / 'splits' / f'fold{k}_val.txt').read_text().split()
        assert stems == [r.stem for r in rows if r.case_id in vals[k]]
