"""Cranium end to end through the shared engine, on the synthetic release in both real layouts."""
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.intensity import WINDOWS
from mmseg_medical.io.nifti import read_nifti
from mmseg_medical.manifest import MANIFEST_COLUMNS, read_case_geometry, read_manifest
from mmseg_medical.synthetic import write_cranium_release

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
    assert header == list(MANIFEST_COLUMNS)
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
        assert r.image == f'images/{r.split}/{r.case_id}_{r.slice_index:04d}.png'
    assert stats['splits']['train']['cases'] + stats['splits']['val']['cases'] == PATIENTS
    hem_slices = sum(s['class_slices'][1] for s in stats['splits'].values())
    assert 0 < hem_slices < PATIENTS * SLICES
    json.loads((out / 'splits.json').read_text())
    assert (out / 'previews').is_dir() and any((out / 'previews').iterdir())


def test_nifti_layout_keeps_geometry_and_windows_hu(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, layout='nifti')
    rows = read_manifest(out)
    scan = read_nifti(release / 'Cranium' / RELEASE / 'ct_scans' / '049.nii')
    assert (rows[0].spacing_x, rows[0].spacing_y, rows[0].spacing_z) == pytest.approx(scan.spacing, rel=1e-5)
    geometry = read_case_geometry(out, '049')
    assert geometry['shape_zhw'] == [SLICES, SIZE, SIZE]
    np.testing.assert_allclose(geometry['affine'], scan.affine)
    r = next(r for r in rows if r.case_id == '049' and r.slice_index == 3)
    np.testing.assert_array_equal(cv2.imread(str(out / r.image), cv2.IMREAD_UNCHANGED),
                                  WINDOWS['brain'](scan.array)[3])
    mask = read_nifti(release / 'Cranium' / RELEASE / 'masks' / '049.nii').array[3]
    np.testing.assert_array_equal(cv2.imread(str(out / r.mask), cv2.IMREAD_UNCHANGED), mask)


def test_jpg_masks_agree_with_nifti_masks(release, tmp_path):
    convert(release, tmp_path / 'j', layout='jpg')
    convert(release, tmp_path / 'n', layout='nifti')
    jpg, nii = read_manifest(tmp_path / 'j'), read_manifest(tmp_path / 'n')
    assert [r.image for r in jpg] == [r.image for r in nii]
    assert all(r.spacing_x is None for r in jpg)  # JPG slices carry no spacing
    inter = total = 0
    for a, b in zip(jpg, nii):
        ma = cv2.imread(str(tmp_path / 'j' / a.mask), cv2.IMREAD_UNCHANGED)
        mb = cv2.imread(str(tmp_path / 'n' / b.mask), cv2.IMREAD_UNCHANGED)
        inter += int(np.logical_and(ma, mb).sum())
        total += int(ma.sum() + mb.sum())
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


def test_changed_options_need_overwrite(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, seed=0)
    with pytest.raises(Exception, match='pass --overwrite'):
        convert(release, out, seed=1)


def test_kfold_splits(release, tmp_path):
    out = tmp_path / 'cranium'
    convert(release, out, folds=5)
    rows = read_manifest(out)
    assert sorted({r.split for r in rows}) == [f'fold{k}' for k in range(5)]
    folds = json.loads((out / 'splits.json').read_text())
    assert len(folds) == 5
    assert sorted(c for f in folds for c in f['val']) == sorted({r.case_id for r in rows})
    with open(out / 'manifest.csv') as f:
        for row in csv.DictReader(f):
            assert row['case_id'] in folds[int(row['split'][4:])]['val']
