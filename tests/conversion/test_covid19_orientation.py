"""COVID-19-CT-Seg (Zenodo, Kaggle), MosMed and the Task 2/3 sources (MSD Task06 lung, StructSeg lungs and GTV,
NSCLC lungs and effusion) written in voxel orders other than L, P, S: the prepared PNGs are checked against
SimpleITK's reading of the raw files reoriented with ``DICOMOrient(img, 'LPS')`` (whose (z, y, x) array is the
display slice stack), and ``labels/<case>.nii.gz`` against the raw mask read by nibabel, remapped by hand.

Intensity rules by hand (../shared/NOTES.md, the converters' windows): HU files (``coronacases_*``, MosMed, MSD,
StructSeg, NSCLC: every spec's window is ``lung``) go through [-1250, 250] → [0, 255]; the ``radiopaedia_*`` are
already 0..255 and are kept.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.synthetic.covid19 import (write_covid19_release, write_mosmed_release, write_msd_lung_release,
                                             write_nsclc_release, write_structseg_gtv_release,
                                             write_structseg_lung_release)

SLICES, SIZE = 3, 16


def _sitk(path: Path) -> sitk.Image:
    return sitk.DICOMOrient(sitk.ReadImage(str(path)), 'LPS')


def _lps(path: Path) -> np.ndarray:
    """(Z, H, W) display stack of a NIfTI file: SimpleITK's array after reorienting to L, P, S."""
    return sitk.GetArrayFromImage(_sitk(path))


def _lung_window(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((hu.astype(np.float64) + 1250.0) * 255.0 / 1500.0), 0, 255)


def _png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _raw(path: Path) -> nib.Nifti1Image:
    return nib.load(str(path))


def _remap(data: np.ndarray, mapping: dict) -> np.ndarray:
    out = np.zeros(data.shape, np.uint8)
    for raw, index in mapping.items():
        out[data == raw] = index
    return out


def _check_geometry(path: Path, orientation: str, reference: Path) -> None:
    """``path`` is stored in ``orientation`` and, reoriented to L, P, S, lies where the L, P, S copy lies."""
    assert ''.join(nib.aff2axcodes(_raw(path).affine)) == orientation
    a, b = _sitk(path), _sitk(reference)
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4) and np.allclose(a.GetDirection(), b.GetDirection())
    assert np.allclose(a.GetSpacing(), b.GetSpacing()) and np.array_equal(_lps(path), _lps(reference))


def _check_reordered(path: Path) -> None:
    """The stored voxel order differs from the display stack, so reading it unreoriented would fail the test."""
    stored = np.asanyarray(_raw(path).dataobj).transpose(2, 1, 0)
    assert not np.array_equal(stored, _lps(path))


def _check_slices(out: Path, case: str, image: np.ndarray, mask: np.ndarray) -> None:
    assert image.shape == mask.shape and image.shape[0] == SLICES
    for k in range(SLICES):
        assert np.array_equal(_png(out / 'images' / f'{case}_{k:04d}.png'), image[k]), (case, k)
        assert np.array_equal(_png(out / 'masks' / f'{case}_{k:04d}.png'), mask[k]), (case, k)


def _check_source_label(out: Path, case: str, raw_mask: Path, expected: np.ndarray) -> None:
    written = _raw(out / 'labels' / f'{case}.nii.gz')
    assert np.array_equal(np.asanyarray(written.dataobj), expected)
    assert np.allclose(written.affine, _raw(raw_mask).affine, atol=1e-5)


# --- COVID-19-CT-Seg ----------------------------------------------------------------------------------------
# ../shared/NOTES.md: Zenodo <folder>/<case>.nii.gz; Kaggle ct_scans/<kaggle name>.nii, masks <case>.nii.
ZENODO = {'image': 'COVID-19-CT-Seg_20cases/{}.nii.gz', 'lung': 'Lung_Mask/{}.nii.gz',
          'infection': 'Infection_Mask/{}.nii.gz', 'joint': 'Lung_and_Infection_Mask/{}.nii.gz'}
KAGGLE_SCANS = {'coronacases_004': 'coronacases_org_004',
                'radiopaedia_14_85914_0': 'radiopaedia_org_covid-19-pneumonia-14_85914_0-dcm'}
KAGGLE = {'image': 'ct_scans/{}.nii', 'lung': 'lung_mask/{}.nii', 'infection': 'infection_mask/{}.nii',
          'joint': 'lung_and_infection_mask/{}.nii'}


@pytest.mark.parametrize('layout,orientation', [('zenodo', 'RAS'), ('zenodo', 'LPI'), ('kaggle', 'LAS'),
                                                ('kaggle', 'RAS')])
def test_covid19_release_in_other_voxel_orders(tmp_path, layout, orientation):
    release = write_covid19_release(tmp_path / 'raw', layout, num_slices=SLICES, size=SIZE, orientation=orientation)
    write_covid19_release(tmp_path / 'lps', layout, num_slices=SLICES, size=SIZE)
    out = tmp_path / 'out'
    prepare(CONVERTERS['covid19'](), tmp_path / 'raw', out, workers=1, previews=0)
    paths = ZENODO if layout == 'zenodo' else KAGGLE
    for case in ('coronacases_004', 'radiopaedia_14_85914_0'):
        image = paths['image'].format(case if layout == 'zenodo' else KAGGLE_SCANS[case])
        files = {part: release / (image if part == 'image' else paths[part].format(case)) for part in paths}
        for path in files.values():
            _check_geometry(path, orientation, tmp_path / 'lps' / path.relative_to(tmp_path / 'raw'))
        _check_reordered(files['image'])
        stored = _lps(files['image'])
        if case.startswith('coronacases_'):
            assert stored.min() <= -1000                              # Hounsfield units: the lung window
            image_png = _lung_window(stored)
        else:
            assert 0 <= stored.min() and stored.max() <= 255          # already windowed: kept
            image_png = np.rint(stored)
        lung, infection, joint = (_lps(files[p]) for p in ('lung', 'infection', 'joint'))
        # the 'all' store (conversion/covid19.py docstring): lung label + 3 where infected; 0..3 = the joint mask
        codes = lung + 3 * (infection == 1)
        assert np.array_equal(np.where(codes > 3, 3, codes), joint) and set(np.unique(codes)) >= {1, 2}
        assert codes.max() >= 4
        _check_slices(out, case, image_png, codes)
        raw_lung = np.asanyarray(_raw(files['lung']).dataobj)
        raw_infection = np.asanyarray(_raw(files['infection']).dataobj)
        _check_source_label(out, case, files['lung'], (raw_lung + 3 * (raw_infection == 1)).astype(np.uint8))


# --- MosMed and the Task 2/3 sources (NIfTI pairs) ----------------------------------------------------------
def _msd(root, orientation):
    write_msd_lung_release(root, num_cases=2, num_slices=SLICES, size=SIZE, orientation=orientation)
    return 'lung_001', 'Task06_Lung/imagesTr/lung_001.nii.gz', 'Task06_Lung/labelsTr/lung_001.nii.gz', {0: 0, 1: 1}


def _structseg_lung(root, orientation):
    write_structseg_lung_release(root, num_cases=2, num_slices=SLICES, size=SIZE, orientation=orientation)
    # conversion/structseg.py: 1 left, 2 right lung; the other organs 3..6 become background
    return '2', 'Thoracic_OAR/2/data.nii.gz', 'Thoracic_OAR/2/label.nii.gz', {0: 0, 1: 1, 2: 2}


def _structseg_gtv(root, orientation):
    write_structseg_gtv_release(root, num_cases=2, num_slices=SLICES, size=SIZE, orientation=orientation)
    return '2', 'Lung_GTV/2/data.nii.gz', 'Lung_GTV/2/label.nii.gz', {0: 0, 1: 1}


def _nsclc_lung(root, orientation):
    write_nsclc_release(root, 'lung', num_cases=2, num_slices=SLICES, size=SIZE, orientation=orientation)
    return 'LUNG1-002', 'NSCLC_Lung/imagesTr/LUNG1-002_0000.nii.gz', 'NSCLC_Lung/labelsTr/LUNG1-002.nii.gz', \
        {0: 0, 1: 1, 2: 2}


def _nsclc_pe(root, orientation):
    write_nsclc_release(root, 'pe', num_cases=2, num_slices=SLICES, size=SIZE, orientation=orientation)
    return 'LUNG1-001', 'NSCLC_PE/imagesTr/LUNG1-001_0000.nii.gz', 'NSCLC_PE/labelsTr/LUNG1-001.nii.gz', {0: 0, 1: 1}


def _mosmed(root, orientation):
    write_mosmed_release(root / 'COVID19_1110', num_labelled=2, num_unlabelled=1, num_slices=SLICES, size=SIZE,
                         orientation=orientation)
    return 'study_0256', 'COVID19_1110/studies/CT-1/study_0256.nii.gz', \
        'COVID19_1110/masks/study_0256_mask.nii.gz', {0: 0, 1: 1}


SOURCES = {'msd-lung': _msd, 'structseg-lung': _structseg_lung, 'structseg-gtv': _structseg_gtv,
           'nsclc-lung': _nsclc_lung, 'nsclc-pe': _nsclc_pe, 'mosmed': _mosmed}
PAIRS = [('msd-lung', 'RAS'), ('msd-lung', 'LPI'), ('structseg-lung', 'LAS'), ('structseg-lung', 'RAS'),
         ('structseg-gtv', 'RAS'), ('structseg-gtv', 'LPI'), ('nsclc-lung', 'LAS'), ('nsclc-lung', 'LPI'),
         ('nsclc-pe', 'RAS'), ('nsclc-pe', 'LAS'), ('mosmed', 'RAS'), ('mosmed', 'LPI')]


@pytest.mark.parametrize('source,orientation', PAIRS)
def test_nifti_pair_sources_in_other_voxel_orders(tmp_path, source, orientation):
    case, image, mask, mapping = SOURCES[source](tmp_path / 'raw', orientation)
    SOURCES[source](tmp_path / 'lps', 'LPS')
    out = tmp_path / 'out'
    prepare(CONVERTERS[source](), tmp_path / 'raw', out, workers=1, previews=0)
    for rel in (image, mask):
        _check_geometry(tmp_path / 'raw' / rel, orientation, tmp_path / 'lps' / rel)
    _check_reordered(tmp_path / 'raw' / image)
    hu, raw_mask = _lps(tmp_path / 'raw' / image), _lps(tmp_path / 'raw' / mask)
    assert hu.min() <= -1000 and raw_mask.max() >= 1
    if source == 'structseg-lung':
        assert set(np.unique(raw_mask)) == {0, 1, 2, 3, 4, 5, 6}              # the other organs are in the file
    _check_slices(out, case, _lung_window(hu), _remap(raw_mask, mapping))
    _check_source_label(out, case, tmp_path / 'raw' / mask,
                        _remap(np.asanyarray(_raw(tmp_path / 'raw' / mask).dataobj), mapping))
