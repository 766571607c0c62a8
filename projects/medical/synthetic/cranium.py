"""A synthetic CT-ICH release (Kaggle "computed-tomography-ct-images" = physionet ct-ich 1.0.0).

:func:`write_cranium_release` writes phantom head CTs in the on-disk layout of the real release::

    <root>/<nest>/computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0/
        hemorrhage_diagnosis.csv                one row per slice, 1-based SliceNumber (UTF-8 with BOM)
        Patients_CT/<049..>/brain/<n>.jpg       brain window (level 40 / width 120), 8-bit grayscale JPEG
        Patients_CT/<049..>/brain/<n>_HGE_Seg.jpg   mask 0/255 as JPEG, only slices with hemorrhage
        Patients_CT/<049..>/bone/<n>.jpg        bone window (700/3200)
        ct_scans/<049..>.nii                    HU, int16
        masks/<049..>.nii                       0/1, uint8

As in the real release (its README on physionet ct-ich 1.0.0: the JPGs are frames of the scanner
software's video export), the JPGs are frames in radiological display orientation
(image top = anterior, image left = the patient's right) at the scanner export's windows, and the
NIfTI files hold the same scan in their own voxel order: here RAS storage (affine ``diag(spacing)``,
i.e. columns run to the patient's right and rows to anterior), so the JPG of slice ``n - 1`` is the NIfTI
slice flipped in both in-plane axes. :func:`cranium_patient` returns the volumes in NIfTI storage order.

``hemorrhage_diagnosis.csv`` is written as the real one is stored (a UTF-8 byte-order mark before the
header): per slice, the patient's subtype (:func:`cranium_subtype`) on the slices with a mask, every third
bleeding patient's first bleeding slice also flagged with the next subtype (mixed bleeds), ``No_Hemorrhage``
on the others, ``Fracture_Yes_No`` on the last slice of every fifth patient.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

from ..errors import MedSegError
from ..volume import Volume, save_nifti
from .phantom import _window, head_ct_phantom, phantom_spacing

RELEASE_DIR = 'computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0'
CSV_NAME = 'hemorrhage_diagnosis.csv'
CSV_COLUMNS = ('PatientNumber', 'SliceNumber', 'Intraventricular', 'Intraparenchymal', 'Subarachnoid',
               'Epidural', 'Subdural', 'No_Hemorrhage', 'Fracture_Yes_No')
SUBTYPES = CSV_COLUMNS[2:7]
LAYOUTS = ('jpg', 'nifti')
FIRST_PATIENT = 49
BRAIN_WINDOW = (40.0, 120.0)  # level, width of the release's syngo video export
BONE_WINDOW = (700.0, 3200.0)
JPEG_QUALITY = 90


def cranium_patient_id(index: int) -> str:
    """Folder / file name of the ``index``-th (0-based) patient: ``'049'``, ``'050'``, ..."""
    return f'{FIRST_PATIENT + index:03d}'


def cranium_has_hemorrhage(index: int, no_bleed_every: int = 4) -> bool:
    """Whether patient ``index`` bleeds: every ``no_bleed_every``-th patient does not (0: all bleed)."""
    return no_bleed_every <= 0 or (index + 1) % no_bleed_every != 0


def cranium_subtype(index: int, no_bleed_every: int = 4) -> Union[str, None]:
    """Patient ``index``'s hemorrhage subtype (cycling through the five by index), None when it does not bleed."""
    return SUBTYPES[index % len(SUBTYPES)] if cranium_has_hemorrhage(index, no_bleed_every) else None


def cranium_patient(index: int, num_slices: int = 24, size: int = 128, seed: int = 0,
                    no_bleed_every: int = 4) -> Tuple[Volume, Volume]:
    """The ``(ct, mask)`` volumes of patient ``index`` as its NIfTI files store them (RAS, see above).

    A patient depends only on ``(seed, index)`` and the sizes, not on how many patients are written.
    """
    if seed < 0 or index < 0:
        raise ValueError(f'seed and index must be >= 0, got {seed}, {index}')
    gen = np.random.default_rng([seed, index])
    num_bleeds = 1 + int(gen.random() < 0.25) if cranium_has_hemorrhage(index, no_bleed_every) else 0
    hu, label = head_ct_phantom(num_slices, size, gen, num_bleeds)
    spacing = phantom_spacing(size)
    source = f'synthetic cranium patient {cranium_patient_id(index)}'
    # The phantom is drawn in display orientation; RAS storage reverses rows (P->A) and columns (L->R).
    hu, label = np.ascontiguousarray(hu[:, ::-1, ::-1]), np.ascontiguousarray(label[:, ::-1, ::-1])
    return Volume(array=hu, spacing=spacing, source=source), Volume(array=label, spacing=spacing, source=source)


def _parse_layouts(layouts: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    names = layouts.split(',') if isinstance(layouts, str) else list(layouts)
    names = [name.strip().lower() for name in names if name.strip()]
    unknown = sorted(set(names) - set(LAYOUTS))
    if unknown:
        raise ValueError(f'unknown layout(s) {unknown}; choose from {list(LAYOUTS)}')
    return tuple(name for name in LAYOUTS if name in names)


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
        raise MedSegError(path, 'cannot write JPEG')


def _write_jpg_patient(folder: Path, hu: np.ndarray, label: np.ndarray, quality: int) -> None:
    """``brain/<n>.jpg``, ``bone/<n>.jpg`` and, for slices with hemorrhage, ``brain/<n>_HGE_Seg.jpg``.

    ``hu``/``label`` in RAS storage order (as :func:`cranium_patient` gives them); frames in display order.
    """
    hu, label = hu[:, ::-1, ::-1], label[:, ::-1, ::-1]
    brain, bone = folder / 'brain', folder / 'bone'
    brain.mkdir(parents=True, exist_ok=True)
    bone.mkdir(parents=True, exist_ok=True)
    brain_8bit, bone_8bit = _window(hu, *BRAIN_WINDOW), _window(hu, *BONE_WINDOW)
    masks = (label > 0).astype(np.uint8) * 255
    for z in range(hu.shape[0]):
        n = z + 1
        _write_jpeg(brain / f'{n}.jpg', brain_8bit[z], quality)
        _write_jpeg(bone / f'{n}.jpg', bone_8bit[z], quality)
        if masks[z].any():
            _write_jpeg(brain / f'{n}_HGE_Seg.jpg', masks[z], quality)


def _csv_rows(index: int, label: np.ndarray, no_bleed_every: int) -> List[Dict[str, int]]:
    """The diagnosis rows of patient ``index`` (see the module docstring)."""
    subtype = cranium_subtype(index, no_bleed_every)
    bleeding = [z for z in range(label.shape[0]) if label[z].any()]
    rows = []
    for z in range(label.shape[0]):
        row = dict.fromkeys(CSV_COLUMNS, 0)
        row.update(PatientNumber=int(cranium_patient_id(index)), SliceNumber=z + 1)
        if subtype is not None and z in bleeding:
            row[subtype] = 1
            if index % 3 == 0 and z == bleeding[0]:
                row[SUBTYPES[(SUBTYPES.index(subtype) + 1) % len(SUBTYPES)]] = 1
        row['No_Hemorrhage'] = int(not any(row[t] for t in SUBTYPES))
        row['Fracture_Yes_No'] = int(index % 5 == 4 and z == label.shape[0] - 1)
        rows.append(row)
    return rows


def write_cranium_release(root: Union[str, Path], num_patients: int = 6, num_slices: int = 24,
                          size: int = 128, seed: int = 0,
                          layouts: Union[str, Sequence[str]] = LAYOUTS, nest: Union[str, None] = 'Cranium',
                          no_bleed_every: int = 4, jpeg_quality: int = JPEG_QUALITY) -> Path:
    """Write a synthetic CT-ICH release under ``root`` and return its release folder.

    Args:
        root: where to write; the release folder is ``root/<nest>/<RELEASE_DIR>`` (``nest=None``:
            ``root/<RELEASE_DIR>``).
        num_patients: patients ``049`` onwards (at most 951, ids have three digits).
        num_slices, size: slices per patient and rows = columns per slice.
        seed: the same seed writes the same files.
        layouts: ``'jpg'`` and/or ``'nifti'`` (a sequence or a comma-separated string); the csv is
            always written.
        nest: the folder users often unzip the release into.
        no_bleed_every: every ``no_bleed_every``-th patient (4th, 8th, ...) has no hemorrhage.
        jpeg_quality: JPEG quality of the slices and masks.
    """
    chosen = _parse_layouts(layouts)
    if not 1 <= num_patients <= 1000 - FIRST_PATIENT:
        raise ValueError(f'num_patients must be in 1..{1000 - FIRST_PATIENT}, got {num_patients}')
    release = Path(root) / nest / RELEASE_DIR if nest else Path(root) / RELEASE_DIR
    release.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, int]] = []
    for index in range(num_patients):
        patient = cranium_patient_id(index)
        ct, mask = cranium_patient(index, num_slices, size, seed, no_bleed_every)
        if 'jpg' in chosen:
            _write_jpg_patient(release / 'Patients_CT' / patient, ct.array, mask.array, jpeg_quality)
        if 'nifti' in chosen:
            save_nifti(ct, release / 'ct_scans' / f'{patient}.nii', np.int16)
            save_nifti(mask, release / 'masks' / f'{patient}.nii', np.uint8)
        rows.extend(_csv_rows(index, mask.array, no_bleed_every))
    with open(release / CSV_NAME, 'w', newline='', encoding='utf-8-sig') as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return release
