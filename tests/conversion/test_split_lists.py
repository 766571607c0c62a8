"""Dataset framework v2: one slice store, split lists, patient groups, pinned and image-only cases,
multi-file and zipped sources, geometry checks, re-splitting without re-conversion."""
from __future__ import annotations

import gzip
import json
import os
import zipfile
from pathlib import Path
from typing import List, Optional

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import prepare
from mmseg_medical.conversion.base import CaseSource, DatasetConverter
from mmseg_medical.errors import MedSegError
from mmseg_medical.io.nifti import nifti_stem, read_nifti
from mmseg_medical.io.sources import ZipMember, zip_members
from mmseg_medical.labels import LabelMap
from mmseg_medical.manifest import read_manifest
from mmseg_medical.volume import Volume

SLICES, SIZE = 3, 16
AFFINE = np.diag([-0.8, -0.8, 2.5, 1.0])  # LPS storage: already in display orientation


def _write_case(folder: Path, case: str, fg: bool, labelled: bool = True, affine=AFFINE) -> None:
    """An int16 'HU' scan (values encode case and voxel) and, when labelled, a 0/1 label."""
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    data = rng.integers(-50, 120, size=(SIZE, SIZE, SLICES)).astype(np.int16)  # (i, j, k)
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(folder / 'images' / f'{case}.nii.gz'))
    if labelled:
        label = np.zeros((SIZE, SIZE, SLICES), np.uint8)
        if fg:
            label[4:8, 5:9, 1] = 1
        (folder / 'labels').mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(label, affine), str(folder / 'labels' / f'{case}.nii.gz'))


class PairSpec(DatasetConverter):
    """A minimal NIfTI-pair spec: ``images/<case>.nii.gz`` + optional ``labels/<case>.nii.gz`` (or a zip)."""

    name = 'pairs'
    label_map = LabelMap(('background', 'thing'))
    expected_layout = 'images/*.nii.gz'

    def __init__(self, group_of=None, pinned=None, labels_zip: Optional[Path] = None, **kw):
        super().__init__(**kw)
        self.group_of, self.pinned, self.labels_zip = group_of or {}, pinned or {}, labels_zip

    def find_cases(self, src: Path) -> List[CaseSource]:
        members = {nifti_stem(m.member): m for m in zip_members(self.labels_zip, ('.nii.gz',))} \
            if self.labels_zip else {}
        cases = []
        for image in sorted((src / 'images').glob('*.nii.gz')):
            case = nifti_stem(image)
            label = members.get(case) if self.labels_zip else src / 'labels' / f'{case}.nii.gz'
            if not isinstance(label, ZipMember) and (label is None or not label.is_file()):
                label = None
            cases.append(CaseSource(case, image, label, split=self.pinned.get(case), group=self.group_of.get(case)))
        return cases

    def read_image(self, case):
        return read_nifti(case.image)

    def read_label(self, case):
        return None if case.label is None else read_nifti(case.label)

    def to_uint8(self, case, image: Volume) -> np.ndarray:
        return np.clip(image.array + 50, 0, 255).astype(np.uint8)


CASES = [f'c{i:02d}' for i in range(12)]
FG = {c: i % 3 != 0 for i, c in enumerate(CASES)}
GROUPS = {c: f'p{i // 2}' for i, c in enumerate(CASES)}  # two scans per patient


@pytest.fixture(scope='module')
def src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('pairs')
    for c in CASES:
        _write_case(root, c, FG[c])
    return root


def lists_of(out: Path) -> dict:
    return {p.stem: p.read_text().split() for p in sorted((out / 'splits').glob('*.txt'))}


def test_one_slice_store_and_split_lists(src, tmp_path):
    out = tmp_path / 'out'
    prepare(PairSpec(group_of=GROUPS, folds=3), src, out, workers=1, previews=0)
    stems = sorted(p.stem for p in (out / 'images').iterdir())
    assert stems == sorted(f'{c}_{k:04d}' for c in CASES for k in range(SLICES))     # every slice once
    assert sorted(p.stem for p in (out / 'masks').iterdir()) == stems
    lists = lists_of(out)
    assert set(lists) == {'train', 'val'} | {f'fold{k}_{s}' for k in range(3) for s in ('train', 'val')}
    assert sorted(lists['train'] + lists['val']) == stems and not set(lists['train']) & set(lists['val'])
    vals = [set(lists[f'fold{k}_val']) for k in range(3)]
    assert sorted(s for v in vals for s in v) == stems                                 # each slice in one fold val
    for k in range(3):
        assert set(lists[f'fold{k}_train']) == set(stems) - vals[k]
    splits = json.loads((out / 'splits.json').read_text())
    for name, slice_stems in lists.items():                                            # splits.json = case lists
        assert sorted({s.rsplit('_', 1)[0] for s in slice_stems}) == splits[name]
    folds = json.loads((out / 'splits' / 'folds.json').read_text())                    # nnU-Net splits_final form
    assert [f['val'] for f in folds] == [splits[f'fold{k}_val'] for k in range(3)]
    rows = read_manifest(out)
    assert {r.case_id: r.split for r in rows} == {c: ('val' if c in splits['val'] else 'train') for c in CASES}
    assert all(r.image == f'images/{r.stem}.png' and r.mask == f'masks/{r.stem}.png' for r in rows)


def test_no_patient_group_in_two_splits_ever(src, tmp_path):
    """Property over many seeds: a patient's scans never straddle train/val or a fold pair."""
    for seed in range(8):
        spec = PairSpec(group_of=GROUPS, seed=seed, folds=3, val_fraction=0.3)
        _, lists = spec.split_lists({c: _info(c) for c in CASES})
        for pair in [('train', 'val')] + [(f'fold{k}_train', f'fold{k}_val') for k in range(3)]:
            a, b = ({GROUPS[c] for c in lists[n]} for n in pair)
            assert not a & b, (seed, pair)
            assert sorted(lists[pair[0]] + lists[pair[1]]) == CASES
        assert any(FG[c] for c in lists['val']) and any(not FG[c] for c in lists['val'])   # stratified
        assert spec.split_lists({c: _info(c) for c in CASES}) == (_, lists)                 # deterministic


def _info(case):
    from mmseg_medical.conversion.base import CaseInfo
    return CaseInfo(case, True, FG[case], GROUPS[case])


def test_resplit_rewrites_lists_not_slices(src, tmp_path):
    out = tmp_path / 'out'
    prepare(PairSpec(group_of=GROUPS, seed=0), src, out, workers=1, previews=0)
    pngs = sorted((out / 'images').iterdir()) + sorted((out / 'masks').iterdir())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pngs}
    lists0 = lists_of(out)
    stats = prepare(PairSpec(group_of=GROUPS, seed=5, folds=2), src, out, workers=1, previews=0)
    assert stats.get('resplit') is True
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pngs} == before      # no PNG touched
    lists5 = lists_of(out)
    assert lists5['train'] != lists0['train'] and 'fold1_val' in lists5
    assert json.loads((out / 'dataset.json').read_text())['split_settings'] == {'seed': 5, 'val_fraction': 0.2,
                                                                               'folds': 2}
    assert {r.case_id: r.split for r in read_manifest(out)}['c00'] == \
        ('val' if 'c00_0000' in lists5['val'] else 'train')
    assert prepare(PairSpec(group_of=GROUPS, seed=5, folds=2), src, out, workers=1).get('up_to_date')
    assert not [p for p in out.iterdir() if p.name.startswith('.resplit')]


def test_pinned_and_image_only_cases(tmp_path):
    src = tmp_path / 'src'
    for c in CASES[:6]:
        _write_case(src, c, FG[c])
    for c in ('t0', 't1'):
        _write_case(src, c, False, labelled=False)
    out = tmp_path / 'out'
    prepare(PairSpec(pinned={'t0': 'target', 't1': 'target', 'c05': 'test'}), src, out, workers=1, previews=0)
    lists = lists_of(out)
    assert lists['target'] == [f't{i}_{k:04d}' for i in range(2) for k in range(SLICES)]
    assert lists['test'] == [f'c05_{k:04d}' for k in range(SLICES)]
    for name in ('train', 'val'):
        assert not {s.rsplit('_', 1)[0] for s in lists[name]} & {'t0', 't1', 'c05'}
    rows = {r.stem: r for r in read_manifest(out)}
    assert rows['t0_0000'].mask == '' and rows['t0_0000'].split == 'target' and rows['c05_0001'].split == 'test'
    assert not (out / 'masks' / 't0_0000.png').exists()
    assert 'target' in json.loads((out / 'splits.json').read_text())


def test_image_only_split_loads_without_masks_and_never_as_training_data(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    import mmseg_medical  # noqa: F401
    src = tmp_path / 'src'
    _write_case(src, 'c00', True)
    _write_case(src, 'c01', True)
    _write_case(src, 't0', False, labelled=False)
    out = tmp_path / 'out'
    prepare(PairSpec(pinned={'t0': 'target'}), src, out, workers=1, previews=0)
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(type='CraniumDataset', data_root=str(out), ann_file='splits/target.txt',
                             data_prefix=dict(img_path='images/'), pipeline=[dict(type='LoadImageFromFile')]))
    assert len(ds) == SLICES and 'seg_map_path' not in ds.get_data_info(0)
    assert ds[0]['img'].shape == (SIZE, SIZE, 3)
    with pytest.raises(MedSegError, match=r't0_0000\.png.*no mask for slice t0_0000\.png listed by .*target\.txt'):
        DATASETS.build(dict(type='CraniumDataset', data_root=str(out), ann_file='splits/target.txt',
                            data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=[]))
    train = DATASETS.build(dict(type='CraniumDataset', data_root=str(out), ann_file='splits/train.txt',
                                data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=[]))
    assert all('t0_' not in train.get_data_info(i)['img_path'] for i in range(len(train)))


def test_labels_read_from_a_zip_equal_the_extracted_files(src, tmp_path):
    archive = tmp_path / 'labels.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        for c in CASES:
            zf.write(src / 'labels' / f'{c}.nii.gz', f'train/label/{c}.nii.gz')
    a, b = tmp_path / 'files', tmp_path / 'zip'
    prepare(PairSpec(), src, a, workers=1, previews=0)
    prepare(PairSpec(labels_zip=archive), src, b, workers=1, previews=0)
    for mask in sorted((a / 'masks').iterdir()):
        np.testing.assert_array_equal(cv2.imread(str(mask), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(str(b / 'masks' / mask.name), cv2.IMREAD_UNCHANGED))
    # nothing extracted: the only NIfTI files in the output are prepare's labels/<case>.nii.gz, one per case,
    # equal (the decompressed NIfTI bytes: header and voxels) to those prepared from the extracted files
    assert sorted(p.relative_to(b).as_posix() for p in b.rglob('*.nii*')) == [f'labels/{c}.nii.gz' for c in CASES]
    for c in CASES:
        assert gzip.decompress((b / 'labels' / f'{c}.nii.gz').read_bytes()) == \
            gzip.decompress((a / 'labels' / f'{c}.nii.gz').read_bytes())
    # The fingerprint covers the archive: a changed member makes the output stale.
    with zipfile.ZipFile(archive, 'a') as zf:
        zf.writestr('train/label/extra.txt', 'x')
    os.utime(archive, ns=(1, 1))
    with pytest.raises(MedSegError, match='pass --overwrite'):
        prepare(PairSpec(labels_zip=archive), src, b, workers=1, previews=0)


@pytest.mark.parametrize('member', ['../evil.nii.gz', '/abs/evil.nii.gz', 'a/../../evil.nii.gz'])
def test_zip_member_escaping_the_archive_is_refused(src, tmp_path, member):
    archive = tmp_path / 'labels.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr(member, b'x')
    with pytest.raises(MedSegError) as err:
        prepare(PairSpec(labels_zip=archive), src, tmp_path / 'out', workers=1)
    assert str(err.value).startswith(f'{archive}: zip member {member!r} would escape')
    assert not (tmp_path / 'out').exists()


def test_named_multi_file_sources_are_all_fingerprinted(tmp_path):
    from mmseg_medical.conversion.engine import fingerprint
    a, b = tmp_path / 'lung.nii', tmp_path / 'infection.nii'
    a.write_bytes(b'1')
    b.write_bytes(b'2')
    case = CaseSource('x', tmp_path / 'lung.nii', {'lung': a, 'infection': b})
    assert [p.name for p in case.files()] == ['lung.nii', 'infection.nii', 'lung.nii']
    first = fingerprint(PairSpec(), [case])
    os.utime(b, ns=(5, 5))
    assert fingerprint(PairSpec(), [case]) != first


@pytest.mark.parametrize('change, problem', [
    (lambda a: a @ np.diag([1, -1, 1, 1]), 'orientation'),        # label flipped along rows
    (lambda a: a + np.array([[0, 0, 0, 0.8]] * 3 + [[0, 0, 0, 0]]), 'origin'),  # shifted by one voxel
    (lambda a: a @ np.diag([1.1, 1, 1, 1]), 'spacing'),
])
def test_label_off_the_image_grid_is_refused(tmp_path, change, problem):
    src = tmp_path / 'src'
    for c in ('c00', 'c01'):
        _write_case(src, c, True)
    label = src / 'labels' / 'c01.nii.gz'
    img = nib.load(str(label))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), change(AFFINE)), str(label))
    with pytest.raises(MedSegError) as err:
        prepare(PairSpec(), src, tmp_path / 'out', workers=1)
    message = str(err.value)
    assert message.startswith(f'{label}: label does not match image {src / "images" / "c01.nii.gz"}')
    assert problem in message and '\n' not in message
    assert not (tmp_path / 'out').exists()


def test_more_folds_than_patient_groups_is_refused_before_converting(src, tmp_path):
    with pytest.raises(MedSegError, match='6 patient groups cannot fill 7 folds'):
        prepare(PairSpec(group_of=GROUPS, folds=7), src, tmp_path / 'out', workers=1)
    assert not (tmp_path / 'out').exists() and list(tmp_path.iterdir()) == []


def test_skip_bad_leaves_out_failing_cases_and_reports_them(src, tmp_path):
    raw = tmp_path / 'raw'
    import shutil
    shutil.copytree(src, raw)
    bad = raw / 'labels' / 'c03.nii.gz'
    nib.save(nib.Nifti1Image(np.zeros((SIZE, SIZE, SLICES + 1), np.uint8), AFFINE), str(bad))   # wrong shape
    with pytest.raises(MedSegError, match='c03.nii.gz: label does not match image'):
        prepare(PairSpec(), raw, tmp_path / 'strict', workers=1)
    out = tmp_path / 'out'
    stats = prepare(PairSpec(skip_bad=True), raw, out, workers=2, previews=0)
    report = json.loads((out / 'skipped.json').read_text())
    assert list(report) == ['c03'] and str(bad) in report['c03'] and stats['skipped'] == report
    assert json.loads((out / 'dataset.json').read_text())['skipped'] == report
    assert not list((out / 'images').glob('c03_*')) and 'c03' not in json.loads((out / 'splits.json').read_text())['train']
    assert len(read_manifest(out)) == (len(CASES) - 1) * SLICES


def test_nifti_out_is_written_only_when_the_run_succeeds(src, tmp_path):
    import shutil
    prepare(PairSpec(nifti_out=tmp_path / 'nii'), src, tmp_path / 'out', workers=2, previews=0)
    for case in CASES:  # the volumes as read: the source files' data and affine
        written, source = nib.load(str(tmp_path / 'nii' / f'{case}.nii.gz')), nib.load(str(src / 'images' / f'{case}.nii.gz'))
        np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(source.dataobj))
        np.testing.assert_allclose(written.affine, source.affine)
    raw = tmp_path / 'raw'
    shutil.copytree(src, raw)
    (raw / 'labels' / 'c11.nii.gz').write_bytes(b'not a nifti')
    with pytest.raises(MedSegError, match='cannot read NIfTI'):
        prepare(PairSpec(nifti_out=tmp_path / 'nii2'), raw, tmp_path / 'out2', workers=2, previews=0)
    assert not (tmp_path / 'nii2').exists() and not (tmp_path / 'out2').exists()


def test_src_is_required_unless_the_spec_names_its_inputs(tmp_path):
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(repo / 'tools/prepare_dataset.py'), 'cranium', '--out', str(tmp_path / 'o')],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'required: --src' in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_resplit_keeps_lists_written_by_other_tools_and_case_meta_is_stored(src, tmp_path):
    out = tmp_path / 'out'
    prepare(PairSpec(), src, out, workers=1, previews=0)
    (out / 'splits' / 'target_pseudo.txt').write_text('c00_0000\n')        # e.g. tools/pseudo_label.py
    prepare(PairSpec(seed=3), src, out, workers=1, previews=0)
    assert (out / 'splits' / 'target_pseudo.txt').read_text() == 'c00_0000\n'
    assert 'target_pseudo' not in json.loads((out / 'splits.json').read_text())
    info = json.loads((out / 'cases' / 'c00.json').read_text())
    assert info['meta'] == {} and info['group'] == 'c00' and info['labelled'] is True
