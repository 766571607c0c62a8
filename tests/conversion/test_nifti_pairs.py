"""The generic NIfTI-pair converter with the shipped MSD Task06 Lung and StructSeg lung specs, and a spec
declared in the test (as the README's NSCLC example). Expected values: nibabel reads and hand-computed
windows."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.nifti_pairs import NiftiPairSpec, nifti_pair_converter
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.covid19 import write_msd_lung_release, write_structseg_lung_release

SLICES = 4


def _slices(path: Path) -> np.ndarray:
    img = nib.load(str(path))
    assert nib.aff2axcodes(img.affine) == ('L', 'P', 'S')  # synthetic files: stored order = display order
    return np.asarray(img.dataobj).transpose(2, 1, 0)


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_msd_lung_spec(tmp_path):
    task = write_msd_lung_release(tmp_path / 'raw' / 'decathlon', num_cases=3, num_slices=SLICES)
    out = tmp_path / 'out'
    prepare(CONVERTERS['msd-lung'](), tmp_path / 'raw', out, workers=1, previews=0)
    rows = read_manifest(out)
    # imagesTs (no labels) and the ._lung_*.nii.gz resource forks are not cases
    assert sorted({r.case_id for r in rows}) == ['lung_001', 'lung_003', 'lung_005']
    card = json.loads((out / 'dataset.json').read_text())
    assert card['classes'] == ['background', 'tumour'] and 'mirror_pairs' not in card    # no left/right class
    hu = _slices(task / 'imagesTr' / 'lung_003.nii.gz').astype(np.float64)
    label = _slices(task / 'labelsTr' / 'lung_003.nii.gz')
    window = np.clip(np.rint((hu + 1250.0) * 255.0 / 1500.0), 0, 255)
    for k in range(SLICES):
        assert np.array_equal(_png(out / 'images' / f'lung_003_{k:04d}.png'), window[k])
        assert np.array_equal(_png(out / 'masks' / f'lung_003_{k:04d}.png'), label[k])
    assert label.max() == 1


def test_structseg_spec_maps_other_organs_to_background(tmp_path):
    release = write_structseg_lung_release(tmp_path / 'raw', num_cases=3, num_slices=SLICES)
    out = tmp_path / 'out'
    prepare(CONVERTERS['structseg-lung'](), tmp_path / 'raw', out, workers=1, previews=0)
    assert sorted({r.case_id for r in read_manifest(out)}) == ['1', '2', '3']
    raw = _slices(release / '2' / 'label.nii.gz')
    assert set(np.unique(raw)) == {0, 1, 2, 3, 4, 5, 6}
    expected = np.where(raw <= 2, raw, 0)
    for k in range(SLICES):
        assert np.array_equal(_png(out / 'masks' / f'2_{k:04d}.png'), expected[k])
    assert json.loads((out / 'dataset.json').read_text())['mirror_pairs'] == [['left_lung', 'right_lung']]


def test_spec_without_others_rule_refuses_unknown_labels(tmp_path):
    write_structseg_lung_release(tmp_path / 'raw', num_cases=1, num_slices=SLICES)
    strict = NiftiPairSpec(name='strict', description='lungs, no others rule', image='{case}/data.nii.gz',
                           label='{case}/label.nii.gz', classes=('background', 'left_lung', 'right_lung'),
                           dataset_type='StrictDataset')
    with pytest.raises(MedSegError, match=r'label\.nii\.gz: label values \[3, 4, 5, 6\] are outside the label map'):
        prepare(nifti_pair_converter(strict)(), tmp_path / 'raw', tmp_path / 'out', workers=1)


def test_a_new_spec_is_only_a_spec(tmp_path):
    """The README's recipe: an NSCLC-like layout ``<case>/image.nii.gz`` + ``<case>/GTV-1.nii.gz``."""
    write_structseg_lung_release(tmp_path / 'src', num_cases=2, num_slices=SLICES)
    for case in ('1', '2'):
        folder = tmp_path / 'src' / 'Thoracic_OAR' / case
        (folder / 'data.nii.gz').rename(folder / 'image.nii.gz')
        img = nib.load(str(folder / 'label.nii.gz'))
        nib.save(nib.Nifti1Image((np.asarray(img.dataobj) == 1).astype(np.uint8), img.affine),
                 str(folder / 'GTV-1.nii.gz'))
    spec = NiftiPairSpec(name='nsclc', description='NSCLC-Radiomics GTV-1', image='{case}/image.nii.gz',
                         label='{case}/GTV-1.nii.gz', classes=('background', 'tumour'), dataset_type='NsclcDataset',
                         window='lung', split='test')
    out = tmp_path / 'out'
    prepare(nifti_pair_converter(spec)(), tmp_path / 'src', out, workers=1, previews=0)
    assert {r.split for r in read_manifest(out)} == {'test'}
    assert len((out / 'splits' / 'test.txt').read_text().split()) == 2 * SLICES


def test_image_without_label_is_an_error(tmp_path):
    task = write_msd_lung_release(tmp_path / 'raw', num_cases=2, num_slices=SLICES)
    (task / 'labelsTr' / 'lung_003.nii.gz').unlink()
    with pytest.raises(MedSegError, match=r'imagesTr/lung_003\.nii\.gz: no label labelsTr/lung_003\.nii\.gz'):
        prepare(CONVERTERS['msd-lung'](), tmp_path / 'raw', tmp_path / 'out', workers=1)


@pytest.mark.parametrize('change,problem', [
    (dict(image='imagesTr/x.nii.gz'), 'exactly one {case}'),
    (dict(label='labels*/{case}.nii.gz'), 'no wildcards'),
    (dict(others='ignore'), 'others must be'),
    (dict(window='liver'), 'unknown window'),
    (dict(mirror_pairs=(('x', 'right_x'),)), 'mirror_pairs name classes it does not have'),
])
def test_spec_validation(change, problem):
    fields = dict(name='x', description='x', image='imagesTr/{case}.nii.gz', label='labelsTr/{case}.nii.gz',
                  classes=('background', 'x'), dataset_type='XDataset')
    with pytest.raises(ValueError, match=problem.replace('{', r'\{').replace('*', r'\*')):
        NiftiPairSpec(**{**fields, **change})


def test_spec_datasets_are_registered():
    from mmseg.registry import DATASETS

    import mmseg_medical  # noqa: F401
    for name, classes in (('MsdLungDataset', ('background', 'tumour')),
                          ('StructSegLungDataset', ('background', 'left_lung', 'right_lung')),
                          ('MosMedDataset', ('background', 'infection'))):
        assert DATASETS.get(name).METAINFO['classes'] == classes
