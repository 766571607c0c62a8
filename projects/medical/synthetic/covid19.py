"""Synthetic chest CTs in the on-disk layouts of COVID-19-CT-Seg (Zenodo and Kaggle), MosMed and the benchmark's
Task 2/3 sources: MSD Task06 Lung, StructSeg 2019 lung OARs and lung GTV, NSCLC lungs and pleural effusion (tiny
volumes, for tests and demos). :func:`benchmark_case_names` gives a source's official case names, so a release
written with them takes ``prepare_dataset.py <source> --split covid19-task2 covid19-task3``.

:func:`chest_phantom` draws a body, two lungs and an infection blob in HU with its combined label map
(1 left lung, 2 right lung, 3 infection) in display order (L, P, S: column index grows to the patient's
left, so the left lung lies at high columns; rows to posterior; slices to superior). Every writer takes an
``orientation`` (:data:`ORIENTATIONS`: ``'LPS'``, ``'LAS'``, ``'RAS'``, ``'LPI'``) and stores the voxels in that
order with the matching affine, each voxel keeping its world position (:func:`_save`), so a reader that
reorients to L, P, S (SimpleITK ``DICOMOrient(img, 'LPS')``) sees the same display stack whatever the order.
Defaults: MosMed L, A, S, as the real MosMed masks; for COVID-19-CT-Seg, MSD Task06, StructSeg and NSCLC the
real files' voxel order is not documented (unknown here), so they default to L, P, S (affine
``diag(-sx, -sy, sz)``, stored order = display order). As in the real release (Zenodo 3757476), the
``coronacases_*`` are int16 HU and the ``radiopaedia_*`` are already windowed to [-1250, 250] and scaled to
[0, 255] (float32).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..conversion.covid19 import CASES, SUBTASKS, ZENODO_IMAGES, KAGGLE_IMAGES
from ..intensity import WINDOWS
from ..volume import Volume, save_nifti

PathLike = Union[str, Path]
AIR_HU, BODY_HU, LUNG_HU, INFECTION_HU = -1024, 40, -850, -250
LAYOUTS = ('zenodo', 'kaggle')
#: StructSeg 2019 Thoracic OAR raw labels besides the lungs (1 left, 2 right): mapped to background.
STRUCTSEG_OTHERS = {3: 'heart', 4: 'esophagus', 5: 'trachea', 6: 'spinal cord'}


def case_spacing(index: int) -> Tuple[float, float, float]:
    """(sx, sy, sz) in mm of the ``index``-th phantom: differs per case so that distances use it."""
    return 0.7 + 0.05 * (index % 4), 0.7 + 0.05 * (index % 4), 2.5 + 2.5 * (index % 2)


def chest_phantom(index: int, num_slices: int = 4, size: int = 32, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(hu, labels)``, both (Z, H, W) in LPS storage: int16 HU and uint8 0 / 1 left / 2 right / 3 infection.

    Every case has infection in the right lung on its middle slices; the case depends on (seed, index) only.
    """
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.35) ** 2 <= 1
    dx = 0.18 + 0.02 * rng.random()
    left = ((xx - 0.5 - dx) / 0.14) ** 2 + ((yy - 0.5) / 0.22) ** 2 <= 1    # high columns = patient's left
    right = ((xx - 0.5 + dx) / 0.14) ** 2 + ((yy - 0.5) / 0.22) ** 2 <= 1
    cy, cx = 0.45 + 0.1 * rng.random(), 0.5 - dx
    blob = ((xx - cx) / 0.07) ** 2 + ((yy - cy) / 0.08) ** 2 <= 1
    hu = np.full((num_slices, size, size), AIR_HU, np.int16)
    labels = np.zeros((num_slices, size, size), np.uint8)
    for z in range(num_slices):
        noise = rng.integers(-20, 21, size=(size, size))
        hu[z][body] = BODY_HU + noise[body]
        for value, mask in ((1, left), (2, right)):
            hu[z][mask] = LUNG_HU + noise[mask]
            labels[z][mask] = value
        if 0 < z < num_slices - 1 or num_slices < 3:
            infected = blob & right
            hu[z][infected] = INFECTION_HU + noise[infected]
            labels[z][infected] = 3
    return hu, labels


def subtask_masks(labels: np.ndarray) -> Dict[str, np.ndarray]:
    """The release's three masks of one combined label map, keyed by subtask."""
    lung = np.where(labels == 3, 2, labels).astype(np.uint8)  # the blob lies in the right lung
    return {'lung_infection': labels.astype(np.uint8), 'lung': lung, 'infection': (labels == 3).astype(np.uint8)}


#: Voxel orders the writers store: axis codes of (column, row, slice) → flips of the display-order (L, P, S) array.
ORIENTATIONS = {'LPS': (False, False, False), 'LAS': (False, True, False), 'RAS': (True, True, False),
                'LPI': (False, False, True)}


def _save(array: np.ndarray, spacing: Tuple[float, float, float], path: Path, dtype, orientation: str = 'LPS') -> None:
    """Write a display-order (Z, H, W) array (columns to the patient's left, rows to posterior, slices to superior)
    in the voxel order ``orientation`` (e.g. ``'LAS'``: rows run to anterior), with the matching affine."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f'unknown orientation {orientation!r}; choose from {sorted(ORIENTATIONS)}')
    flip_x, flip_y, flip_z = ORIENTATIONS[orientation]
    sx, sy, sz = spacing
    z, h, w = array.shape
    affine = np.diag([sx if flip_x else -sx, sy if flip_y else -sy, -sz if flip_z else sz, 1.0])
    # keep the world position of every voxel: a flipped axis starts at the other end
    affine[:3, 3] = [-(w - 1) * sx if flip_x else 0.0, -(h - 1) * sy if flip_y else 0.0,
                     (z - 1) * sz if flip_z else 0.0]
    stored = array[::-1 if flip_z else 1, ::-1 if flip_y else 1, ::-1 if flip_x else 1]
    save_nifti(Volume(np.ascontiguousarray(stored), affine=affine), path, dtype)


def kaggle_scan_name(case_id: str) -> str:
    """The Kaggle file stem of a case id (the inverse of the converter's name mapping)."""
    if case_id.startswith('coronacases_'):
        return 'coronacases_org_' + case_id.split('_')[1]
    return 'radiopaedia_org_covid-19-pneumonia-' + case_id[len('radiopaedia_'):] + '-dcm'


def covid19_case(case_id: str, num_slices: int = 4, size: int = 32, seed: int = 0
                 ) -> Tuple[np.ndarray, Dict[str, np.ndarray], Tuple[float, float, float]]:
    """``(stored image, masks by subtask, spacing)`` of a case as both layouts store it (Z, H, W)."""
    index = CASES.index(case_id)
    hu, labels = chest_phantom(index, num_slices, size, seed)
    image = hu if case_id.startswith('coronacases_') else WINDOWS['lung'](hu).astype(np.float32)
    return image, subtask_masks(labels), case_spacing(index)


def write_covid19_release(root: PathLike, layout: str = 'zenodo', num_slices: int = 4, size: int = 32,
                          seed: int = 0, nest: str = 'downloads', orientation: str = 'LPS') -> Path:
    """Write the 20 cases in ``layout`` (``zenodo``: ``.nii.gz``; ``kaggle``: ``.nii`` + ``metadata.csv``)
    under ``root/nest``, scans and masks in the voxel order ``orientation`` (:data:`ORIENTATIONS`; default
    L, P, S: the real release's order is unknown here); returns the folder holding the image and mask folders."""
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose from {LAYOUTS}')
    release = Path(root) / nest
    rows = []
    for case_id in CASES:
        image, masks, spacing = covid19_case(case_id, num_slices, size, seed)
        if layout == 'zenodo':
            _save(image, spacing, release / ZENODO_IMAGES / f'{case_id}.nii.gz', image.dtype, orientation)
            for subtask, (_, folder, _) in SUBTASKS.items():
                _save(masks[subtask], spacing, release / folder / f'{case_id}.nii.gz', np.uint8, orientation)
            continue
        scan = release / KAGGLE_IMAGES / f'{kaggle_scan_name(case_id)}.nii'
        _save(image, spacing, scan, image.dtype, orientation)
        row = [f'../input/covid19-ct-scans/{KAGGLE_IMAGES}/{scan.name}']
        for subtask in ('lung', 'infection', 'lung_infection'):
            folder = SUBTASKS[subtask][2]
            _save(masks[subtask], spacing, release / folder / f'{case_id}.nii', np.uint8, orientation)
            row.append(f'../input/covid19-ct-scans/{folder}/{case_id}.nii')
        rows.append(row)
    if layout == 'kaggle':
        with open(release / 'metadata.csv', 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['ct_scan', 'lung_mask', 'infection_mask', 'lung_and_infection_mask'])
            writer.writerows(rows)
    return release


def write_mosmed_release(root: PathLike, num_labelled: int = 3, num_unlabelled: int = 2, num_slices: int = 4,
                         size: int = 32, seed: int = 1, orientation: str = 'LAS') -> Path:
    """MosMed: ``studies/CT-1/study_<n>.nii.gz`` (HU) with ``masks/study_<n>_mask.nii.gz`` (1 = infection)
    for the first ``num_labelled`` studies (from 0255 on), plus unlabelled ``studies/CT-0`` studies; stored in
    the voxel order ``orientation`` (default L, A, S as the real MosMed masks; :data:`ORIENTATIONS`)."""
    root = Path(root)
    for i in range(num_labelled + num_unlabelled):
        hu, labels = chest_phantom(i, num_slices, size, seed)
        spacing = case_spacing(i)
        if i < num_labelled:
            study = f'study_{255 + i:04d}'
            _save(hu, spacing, root / 'studies' / 'CT-1' / f'{study}.nii.gz', np.int16, orientation)
            _save((labels == 3).astype(np.uint8), spacing, root / 'masks' / f'{study}_mask.nii.gz', np.uint8,
                  orientation)
        else:
            _save(hu, spacing, root / 'studies' / 'CT-0' / f'study_{i + 1:04d}.nii.gz', np.int16, orientation)
    return root


def benchmark_case_names(source: str) -> List[str]:
    """Every case a COVID-19-CT-Seg benchmark source's Task 2 split file names (train then val), as the
    release names them: ``'msd-lung'`` → ``lung_001`` …; ``'structseg'`` → ``1`` … (the file's ``train_<n>``);
    ``'nsclc-lung'`` / ``'nsclc-pe'`` → ``LUNG1-001`` …."""
    from ..conversion.covid19 import benchmark_split

    files = {'msd-lung': 'Task202_MSD_LungTumor_datasplit', 'structseg': 'Task200_StructSegLung_datasplit',
             'nsclc-lung': 'Task201_NSCLCLung_datasplit', 'nsclc-pe': 'Task204_NSCLCPE_datasplit'}
    fold = benchmark_split(files[source])[0]
    names = fold['train'] + fold['val']
    return [n[len('train_'):] for n in names] if source == 'structseg' else names


def write_msd_lung_release(root: PathLike, num_cases: int = 3, num_slices: int = 4, size: int = 32,
                           seed: int = 2, names: Optional[Sequence[str]] = None, orientation: str = 'LPS') -> Path:
    """MSD Task06 Lung: ``Task06_Lung/imagesTr/lung_<nnn>.nii.gz`` (HU) + ``labelsTr/`` (1 = tumour, here
    the phantom's infection blob), unlabelled ``imagesTs/`` and the ``._`` resource forks of the tarball.
    Cases ``lung_001``, ``lung_003``, … (``num_cases``), or the given ``names``; voxel order ``orientation``
    (default L, P, S: the real release's order is unknown here)."""
    task = Path(root) / 'Task06_Lung'
    names = list(names) if names is not None else [f'lung_{2 * i + 1:03d}' for i in range(num_cases)]
    for i, case in enumerate(names):
        hu, labels = chest_phantom(i, num_slices, size, seed)
        name = f'{case}.nii.gz'
        _save(hu, case_spacing(i), task / 'imagesTr' / name, np.int16, orientation)
        _save((labels == 3).astype(np.uint8), case_spacing(i), task / 'labelsTr' / name, np.uint8, orientation)
        (task / 'imagesTr' / f'._{name}').write_bytes(b'\x00\x05\x16\x07')
    hu, _ = chest_phantom(len(names), num_slices, size, seed)
    _save(hu, case_spacing(0), task / 'imagesTs' / 'lung_100.nii.gz', np.int16, orientation)
    return task


def write_structseg_lung_release(root: PathLike, num_cases: int = 3, num_slices: int = 4, size: int = 32,
                                 seed: int = 3, names: Optional[Sequence[str]] = None,
                                 orientation: str = 'LPS') -> Path:
    """StructSeg 2019 Thoracic OAR: ``Thoracic_OAR/<n>/data.nii.gz`` (HU) + ``<n>/label.nii.gz`` with
    1 left lung, 2 right lung and the other organs 3..6 (:data:`STRUCTSEG_OTHERS`); folders ``1`` …
    ``num_cases`` or the given ``names``; voxel order ``orientation`` (default L, P, S: the real release's
    order is unknown here)."""
    release = Path(root) / 'Thoracic_OAR'
    names = list(names) if names is not None else [str(i + 1) for i in range(num_cases)]
    for i, case in enumerate(names):
        hu, labels = chest_phantom(i, num_slices, size, seed)
        oars = np.where(labels == 3, 2, labels).astype(np.uint8)
        half = size // 2
        for value in STRUCTSEG_OTHERS:  # small squares of the other organs, in the mediastinum
            r = 2 + 2 * (value - 3)
            oars[:, r:r + 2, half - 1:half + 1] = value
        _save(hu, case_spacing(i), release / case / 'data.nii.gz', np.int16, orientation)
        _save(oars, case_spacing(i), release / case / 'label.nii.gz', np.uint8, orientation)
    return release


def write_structseg_gtv_release(root: PathLike, num_cases: int = 3, num_slices: int = 4, size: int = 32,
                                seed: int = 4, names: Optional[Sequence[str]] = None,
                                orientation: str = 'LPS') -> Path:
    """StructSeg 2019 Lung GTV: ``Lung_GTV/<n>/data.nii.gz`` (HU) + ``<n>/label.nii.gz`` (1 = gross target
    volume, here the phantom's blob); folders ``1`` … ``num_cases`` or the given ``names``; voxel order
    ``orientation`` (default L, P, S: the real release's order is unknown here)."""
    release = Path(root) / 'Lung_GTV'
    names = list(names) if names is not None else [str(i + 1) for i in range(num_cases)]
    for i, case in enumerate(names):
        hu, labels = chest_phantom(i, num_slices, size, seed)
        _save(hu, case_spacing(i), release / case / 'data.nii.gz', np.int16, orientation)
        _save((labels == 3).astype(np.uint8), case_spacing(i), release / case / 'label.nii.gz', np.uint8,
              orientation)
    return release


def write_nsclc_release(root: PathLike, kind: str = 'lung', num_cases: int = 3, num_slices: int = 4, size: int = 32,
                        seed: int = 5, names: Optional[Sequence[str]] = None, orientation: str = 'LPS') -> Path:
    """NSCLC in nnU-Net's raw layout (the defaults of ``nsclc-lung`` / ``nsclc-pe``): ``imagesTr/<case>_0000.nii.gz``
    (HU) + ``labelsTr/<case>.nii.gz``: ``kind='lung'`` 1 left lung, 2 right lung; ``kind='pe'`` 1 pleural effusion
    (here the phantom's blob). Cases ``LUNG1-001`` … or the given ``names``; voxel order ``orientation`` (default
    L, P, S: the benchmark's NIfTI release is undocumented, its order unknown)."""
    if kind not in ('lung', 'pe'):
        raise ValueError(f"kind must be 'lung' or 'pe', got {kind!r}")
    release = Path(root) / ('NSCLC_Lung' if kind == 'lung' else 'NSCLC_PE')
    names = list(names) if names is not None else [f'LUNG1-{i + 1:03d}' for i in range(num_cases)]
    for i, case in enumerate(names):
        hu, labels = chest_phantom(i, num_slices, size, seed)
        label = np.where(labels == 3, 2, labels) if kind == 'lung' else (labels == 3)
        _save(hu, case_spacing(i), release / 'imagesTr' / f'{case}_0000.nii.gz', np.int16, orientation)
        _save(label.astype(np.uint8), case_spacing(i), release / 'labelsTr' / f'{case}.nii.gz', np.uint8,
              orientation)
    return release
