"""HemSeg converter on a synthetic RSNA-like release, checked against SimpleITK, the input files and
hand-computed windows; every bad input is one error naming scan and file, and ``--skip-bad`` reports it."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cli import main as prepare_main
from mmseg_medical.errors import MedSegError
from mmseg_medical.synthetic.hemseg import TILTED_SCAN, hemseg_scan_layout, write_hemseg_release

LAYOUT = hemseg_scan_layout(6)
SCANS = [s['scan'] for s in LAYOUT]


def hemseg(**options):
    return CONVERTERS['hemseg'](**options)


def _sitk_series(raw: Path, scan: str):
    """The scan's series read by SimpleITK (files from the jsonl, ordered by GDCM's IPP sorter)."""
    line = next(json.loads(t) for t in (raw / 'annotion_file_info.jsonl').read_text().splitlines()
                if json.loads(t)['scan_'] == scan)
    files = [str(raw / 'stage_2_train' / f'ID_{s}.dcm') for s in line['slice_list']]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(raw / 'stage_2_train'),
                                                                      sitk.ReadImage(files[0]).GetMetaData('0020|000e').strip()))
    return reader.Execute()


@pytest.fixture(scope='module')
def raw(tmp_path_factory) -> Path:
    return write_hemseg_release(tmp_path_factory.mktemp('hemseg') / 'raw')


@pytest.fixture(scope='module')
def out(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('hemseg_out') / 'data'
    prepare(hemseg(), raw, out, workers=2, previews=0)
    return out


def _copy(raw: Path, tmp_path: Path) -> Path:
    dst = tmp_path / 'raw'
    shutil.copytree(raw, dst)
    return dst


def _jsonl(raw: Path) -> list:
    return [json.loads(t) for t in (raw / 'annotion_file_info.jsonl').read_text().splitlines()]


def _write_jsonl(raw: Path, lines: list) -> None:
    (raw / 'annotion_file_info.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))


def test_official_split_patient_groups_and_card(raw, out):
    splits = json.loads((out / 'splits.json').read_text())
    for split in ('train', 'val', 'test'):   # = the split CSVs of the release
        listed = [r.split(',')[0] for r in (raw / f'{split}_set.csv').read_text().split()[1:]]
        assert splits[split] == sorted(listed)
    card = json.loads((out / 'dataset.json').read_text())
    assert card['official_split_shared_patients'] == [LAYOUT[0]['patient']]  # scans 0 (train), 3 (test)
    assert card['settings']['windows'] == 'brain'
    for s in LAYOUT:
        assert json.loads((out / 'cases' / f"{s['scan']}.json").read_text())['group'] == s['patient']
    # the label zip is read in place, nothing extracted: the only NIfTIs are the engine's labels/<case>.nii.gz
    niftis = sorted(p.relative_to(out).as_posix() for p in out.rglob('*.nii*'))
    assert niftis == sorted(f'labels/{s}.nii.gz' for s in SCANS)


def test_volumes_match_simpleitk_and_labels(raw, out):
    """Built geometry = SimpleITK's series reader = the label's affine, tilted scan included; slices = brain window."""
    conv = hemseg()
    cases = {c.case_id: c for c in conv.find_cases(raw)}
    for i in (0, 1):
        scan = SCANS[i]
        volume = conv.build_volume(cases[scan])
        ref = _sitk_series(raw, scan)
        np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(ref))
        np.testing.assert_allclose(volume.affine, read_label_affine(cases[scan]), atol=1e-4)
        direction = np.array(ref.GetDirection()).reshape(3, 3)
        if i == TILTED_SCAN:
            assert abs(direction[2, 1]) > 0.3   # the column axis leaves the axial plane
        if i == 0:   # standard axial: display = storage order; PNG = round((HU - 0) * 255 / 80) clipped
            hu = sitk.GetArrayFromImage(ref).astype(np.float64)
            for k in (0, 4):
                png = cv2.imread(str(out / 'images' / f'{scan}_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
                np.testing.assert_array_equal(png, np.clip(np.rint(hu[k] * 255 / 80), 0, 255))


def test_mask_pngs_equal_the_label_volume_slice_by_slice(raw, out, tmp_path):
    """Every mask PNG of every scan, the gantry-tilted one included, against the label file read from the zip
    with nibabel and put in display orientation by hand: the labels are stored L,P,S (by nearest axes, the tilted
    one too), so display slice k (rows anterior to posterior, columns patient right to left) is
    ``data[:, :, k].T``; one PNG per label slice, none other."""
    archive = zipfile.ZipFile(raw / 'IPH_IVH_label.zip')
    members = {Path(m).name[:-len('.nii.gz')]: m for m in archive.namelist() if m.endswith('.nii.gz')}
    assert sorted(members) == sorted(SCANS)
    for scan in SCANS:
        path = tmp_path / f'{scan}.nii.gz'
        path.write_bytes(archive.read(members[scan]))
        label = nib.load(str(path))
        assert nib.aff2axcodes(label.affine) == ('L', 'P', 'S'), scan
        data = np.asanyarray(label.dataobj)
        pngs = sorted((out / 'masks').glob(f'{scan}_*.png'))
        assert [p.name for p in pngs] == [f'{scan}_{k:04d}.png' for k in range(data.shape[2])]
        for k, png in enumerate(pngs):
            mask = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(mask, data[:, :, k].T.astype(np.uint8), err_msg=png.name)
    assert any(np.asanyarray(nib.load(str(tmp_path / f'{s}.nii.gz')).dataobj).any() for s in SCANS)
    tilted = nib.load(str(tmp_path / f'{SCANS[TILTED_SCAN]}.nii.gz')).affine
    assert abs(tilted[2, 1]) > 0.1                        # the tilted label really is oblique


def test_header_variants_are_both_present(raw):
    import pydicom

    seen = set()
    for p in sorted((raw / 'stage_2_train').iterdir())[:48]:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        seen.add((int(ds.PixelRepresentation), int(ds.BitsStored), ds['WindowCenter'].VM))
    assert seen == {(1, 16, 1), (0, 12, 2)}


def test_three_windows_png(raw, tmp_path):
    out = tmp_path / 'out'
    prepare(hemseg(windows='brain,subdural,bone'), raw, out, workers=1, previews=0)
    hu = sitk.GetArrayFromImage(_sitk_series(raw, SCANS[0])).astype(np.float64)
    png = cv2.imread(str(out / 'images' / f'{SCANS[0]}_0003.png'), cv2.IMREAD_UNCHANGED)
    assert png.shape == hu.shape[1:] + (3,)
    for c, (lo, hi) in enumerate([(0, 80), (-20, 180), (-800, 2000)]):   # brain, subdural, bone
        np.testing.assert_array_equal(png[..., c], np.clip(np.rint((hu[3] - lo) * 255 / (hi - lo)), 0, 255))


def test_500_scan_list_and_label_folder_give_the_same_cases(tmp_path):
    raw = write_hemseg_release(tmp_path / 'raw500', scan_list='500', archives='500', labels='folder')
    cases = hemseg().find_cases(raw)
    assert sorted(c.case_id for c in cases) == sorted(SCANS)
    assert {c.case_id: c.split for c in cases} == {s['scan']: s['split'] for s in LAYOUT}


def _csv_splits(raw: Path) -> dict:
    return {r.split(',')[0]: split for split in ('train', 'val', 'test')
            for r in (raw / f'{split}_set.csv').read_text().split()[1:]}


@pytest.mark.parametrize('labels', ['zip', 'folder'])
def test_hemseg500_release_with_both_archives_prepares_every_scan_in_its_split(tmp_path, labels, capsys):
    """Both archives and both lists: the 500 list decides, HemSeg-500 is read, every listed scan is converted
    in the split CSVs' split (IPH_IVH_label's folders differ for scan 2: not used), dataset.json says so."""
    raw = write_hemseg_release(tmp_path / 'raw', num_scans=7, num_slices=3, size=32, scan_list='both',
                               archives='both', labels=labels)
    out = tmp_path / 'out'
    prepare(hemseg(), raw, out, workers=1, previews=0)
    listed = [json.loads(t)['scan_name'] for t in (raw / 'annotion_file_info_500.jsonl').read_text().splitlines()]
    splits = json.loads((out / 'splits.json').read_text())
    expected = _csv_splits(raw)
    assert len(listed) == 7 and sorted(listed) == sorted(expected)
    for split in ('train', 'val', 'test'):
        assert splits[split] == sorted(s for s in listed if expected[s] == split)
    card = json.loads((out / 'dataset.json').read_text())
    assert card['scan_list'] == 'annotion_file_info_500.jsonl'
    assert card['label_archive'] == ('HemSeg-500.zip' if labels == 'zip' else 'HemSeg-500')
    assert card['scans_without_label'] == {'count': 0, 'scans': []}
    assert 'no label' not in capsys.readouterr().err


def test_200_list_with_both_archives_reads_iph_ivh_label(tmp_path, capsys):
    """The 200 list (only) with both archives: IPH_IVH_label.zip, its folder split (scan 2 in test, not val as
    the CSVs), HemSeg-500's other scans not listed and not converted."""
    raw = write_hemseg_release(tmp_path / 'raw', num_scans=7, num_slices=3, size=32, scan_list='200',
                               archives='both')
    cases = hemseg().find_cases(raw)
    layout = hemseg_scan_layout(7)
    assert {c.case_id: c.split for c in cases} == {s['scan']: 'test' if i == 2 else s['split']
                                                   for i, s in enumerate(layout[:3])}
    assert 'split CSVs than in the label archive' in capsys.readouterr().err
    conv = hemseg(labels=raw / 'HemSeg-500.zip')   # the 500 archive with the 200 list: its 222 scans only
    assert {c.case_id: c.split for c in conv.find_cases(raw)} == {s['scan']: s['split'] for s in layout[:3]}


def test_listed_scans_without_label_are_one_warning_and_counted(tmp_path, capsys):
    """The 500 list with only IPH_IVH_label (the HemSeg-200 subset): the others are named in one warning
    (how many, the first few) and counted in dataset.json, never dropped silently."""
    raw = write_hemseg_release(tmp_path / 'raw', num_scans=10, num_slices=3, size=32, scan_list='500')
    out = tmp_path / 'out'
    prepare(hemseg(), raw, out, workers=1, previews=0)
    layout = hemseg_scan_layout(10)
    missing = sorted(s['scan'] for s in layout[5:])    # ceil(10 * 222 / 525) = 5 labelled
    lines = [t for t in capsys.readouterr().err.splitlines() if 'no label' in t]
    assert len(lines) == 1 and lines[0].startswith('warning: 5 of the 10 scans of annotion_file_info_500.jsonl')
    assert ', '.join(missing) in lines[0]
    card = json.loads((out / 'dataset.json').read_text())
    assert card['scans_without_label'] == {'count': 5, 'scans': missing}
    assert card['label_archive'] == 'IPH_IVH_label.zip'
    assert sorted(p.stem for p in (out / 'cases').glob('*.json')) == sorted(s['scan'] for s in layout[:5])


def test_patient_split_never_separates_a_patient(raw, tmp_path):
    out = tmp_path / 'out'
    prepare(hemseg(split='patient', val_fraction=0.4), raw, out, workers=1, previews=0)
    splits = json.loads((out / 'splits.json').read_text())
    assert set(splits) == {'train', 'val', 'test'}
    assert splits['test'] == sorted([SCANS[0], SCANS[3]])   # the test scan 3 and scan 0 of its patient
    patient = {s['scan']: s['patient'] for s in LAYOUT}
    assert not {patient[c] for c in splits['train']} & {patient[c] for c in splits['val']}


def test_nifti_out_keeps_the_label_geometry(raw, tmp_path):
    conv = hemseg(nifti_out=tmp_path / 'nii')
    prepare(conv, raw, tmp_path / 'out', workers=2, previews=0)
    case = next(c for c in conv.find_cases(raw) if c.case_id == SCANS[TILTED_SCAN])
    assert sorted(p.name for p in (tmp_path / 'nii').iterdir()) == sorted(f'{s}.nii.gz' for s in SCANS)
    written = nib.load(str(tmp_path / 'nii' / f'{case.case_id}.nii.gz'))
    ref = _sitk_series(raw, case.case_id)
    np.testing.assert_array_equal(np.asarray(written.dataobj).transpose(2, 1, 0), sitk.GetArrayFromImage(ref))
    lab = read_label_affine(case)
    np.testing.assert_allclose(written.affine, lab, atol=1e-4)


def read_label_affine(case) -> np.ndarray:
    import gzip
    with zipfile.ZipFile(case.label.archive) as zf:
        return nib.Nifti1Image.from_bytes(gzip.decompress(zf.read(case.label.member))).affine


# ---- bad inputs: one error naming scan and file, nothing written ------------------------------------
def _break(raw: Path, kind: str) -> tuple:
    """Make scan ``SCANS[k]`` bad in one way; returns (scan, text the error must contain)."""
    lines = _jsonl(raw)
    if kind == 'missing_file':
        scan, sid = SCANS[0], lines[0]['slice_list'][2]
        (raw / 'stage_2_train' / f'ID_{sid}.dcm').unlink()
        return scan, f'ID_{sid}.dcm'
    if kind == 'gap':  # a middle slice removed from disk and list: the label no longer fits either
        scan = SCANS[2]
        ds = sorted(lines[2]['slice_list'], key=lambda s: float(
            sitk.ReadImage(str(raw / 'stage_2_train' / f'ID_{s}.dcm')).GetOrigin()[2]))
        lines[2]['slice_list'].remove(ds[3])
        (raw / 'stage_2_train' / f'ID_{ds[3]}.dcm').unlink()
        _write_jsonl(raw, lines)
        return scan, 'missing slice'
    if kind == 'duplicate':
        scan, sid = SCANS[4], lines[4]['slice_list'][0]
        shutil.copyfile(raw / 'stage_2_train' / f'ID_{sid}.dcm', raw / 'stage_2_train' / 'ID_dddddddd0.dcm')
        lines[4]['slice_list'].append('dddddddd0')
        _write_jsonl(raw, lines)
        return scan, 'duplicate slice position'
    if kind == 'mixed':
        scan = SCANS[5]
        lines[5]['slice_list'][0] = lines[4]['slice_list'][0]
        _write_jsonl(raw, lines)
        return scan, 'SeriesInstanceUID'
    if kind == 'not_in_jsonl':
        _write_jsonl(raw, lines[:3] + lines[4:])
        return SCANS[3], 'not in'
    if kind == 'label_affine':
        import gzip
        zpath = raw / 'IPH_IVH_label.zip'
        with zipfile.ZipFile(zpath) as zf:
            items = {n: zf.read(n) for n in zf.namelist()}
        name = next(n for n in items if SCANS[1] in n)
        img = nib.Nifti1Image.from_bytes(gzip.decompress(items[name]))
        moved = img.affine.copy()
        moved[:3, 3] += 7.0
        items[name] = gzip.compress(nib.Nifti1Image(np.asarray(img.dataobj), moved).to_bytes())
        with zipfile.ZipFile(zpath, 'w') as zf:
            for n, data in items.items():
                zf.writestr(n, data)
        return SCANS[1], 'origin'
    raise ValueError(kind)


@pytest.mark.parametrize('kind', ['missing_file', 'gap', 'duplicate', 'mixed', 'not_in_jsonl', 'label_affine'])
def test_bad_input_is_one_error_naming_scan_and_file(raw, tmp_path, kind, capsys):
    src = _copy(raw, tmp_path)
    scan, what = _break(src, kind)
    out = tmp_path / 'out'
    code = prepare_main(['hemseg', '--src', str(src), '--out', str(out), '--workers', '1', '--previews', '0'])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and err.startswith('error: ') and scan in err and what in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith('.out')]


def test_skip_bad_converts_the_rest_and_reports_every_skipped_scan(raw, tmp_path):
    src = _copy(raw, tmp_path)
    bad = dict(_break(src, k) for k in ('missing_file', 'gap', 'label_affine'))
    out = tmp_path / 'out'
    prepare(hemseg(skip_bad=True), src, out, workers=2, previews=0)
    report = json.loads((out / 'skipped.json').read_text())
    assert sorted(report) == sorted(bad)
    for scan, what in bad.items():
        assert scan in report[scan] and what in report[scan]
    assert json.loads((out / 'dataset.json').read_text())['skipped'] == report
    converted = sorted(p.stem for p in (out / 'cases').glob('*.json'))
    assert converted == sorted(set(SCANS) - set(bad))


def test_zip_slip_is_refused_and_nothing_written(raw, tmp_path):
    src = _copy(raw, tmp_path / 'in')
    with zipfile.ZipFile(src / 'IPH_IVH_label.zip', 'a') as zf:
        zf.writestr('../../evil/train/label/0000000000.nii.gz', b'x')
    out = tmp_path / 'out'
    with pytest.raises(MedSegError, match='escape'):
        prepare(hemseg(), src, out, workers=1, previews=0)
    assert not out.exists() and not (tmp_path / 'evil').exists() and not (tmp_path / 'in' / 'evil').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in']


def test_usage_errors(raw, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        prepare_main(['hemseg', '--src', str(raw), '--out', str(tmp_path / 'o'), '--windows', 'brain,bone'])
    assert exc.value.code == 2 and 'three' in capsys.readouterr().err
