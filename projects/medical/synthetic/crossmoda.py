"""A synthetic CrossMoDA release: head MRI phantoms in ceT1-like and hrT2-like contrast.

:func:`write_crossmoda_release` writes the on-disk layout of the real release (crossMoDA 2021 and its
2022 re-release, as the challenge distributes them)::

    2021:  crossmoda_training/source_training/crossmoda_<n>_ceT1.nii.gz + crossmoda_<n>_Label.nii.gz
           crossmoda_training/target_training/crossmoda_<n>_hrT2.nii.gz
           crossmoda_validation/target_validation/crossmoda_<n>_hrT2.nii.gz
    2022:  crossmoda2022_training/crossmoda2022_<site>_<n>_ceT1.nii.gz + its label (London cases:
           crossmoda2021_ldn_<n>_Label.nii.gz, Tilburg: crossmoda2022_etz_<n>_Label.nii.gz),
           crossmoda2022_training/crossmoda2022_<site>_<n>_hrT2.nii.gz,
           crossmoda2022_validation/crossmoda2022_<site>_<n>_hrT2.nii.gz
    2023:  crossmoda23_training/TrainingSource/crossmoda2023_<site>_<n>_ceT1.nii.gz + _Label.nii.gz
           crossmoda23_training/TrainingTarget/crossmoda2023_<site>_<n>_T2.nii.gz
           crossmoda23_validation/crossmoda2023_<site>_<n>_T2.nii.gz      (sites etz, ldn, ukm)

Volumes are stored as the real ones are: orientation codes L,P,S (affine ``diag(-s, -s, 1.5)``), float32
images and float64 labels (0.0 background, 1.0 vestibular schwannoma, 2.0 cochlea; 2023: 1.0 intra-meatal
VS, the part of the tumour on the ear's side of its centre, inside the internal auditory canal, 2.0
extra-meatal VS, 3.0 cochlea, or the raw values ``label_values`` gives). ceT1: the tumour is
the brightest tissue (enhancing), CSF as brain, cochleas dark. hrT2, as on real hrT2 (CISS/FIESTA): CSF
(a crescent of the cerebellopontine cistern on the tumour's midline side) and the fluid-filled cochleas
are the brightest, the tumour intermediate (brighter than brain, darker than CSF). The domain gap is thus
bridgeable as the real one: a ceT1-trained model finds part of the tumour on hrT2 (and the bright cistern
beside it), not nothing, so pseudo labels carry signal (tools/benchmarks/crossmoda_self_training.py
measures source-only vs self-trained Dice; configs/crossmoda/README.md). ``target_label_dir`` also writes labels for the hrT2 cases (which the real release does
not have), as a labelled target hold-out for benchmarks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import nibabel as nib
import numpy as np

from ..volume import Volume

SLICE_MM = 1.5
FOV_MM = 210.0  # 512 x 0.41 mm
#: Tissue intensities (background, head, brain, fluid around the nerve, tumour, cochlea) per modality.
CONTRAST = {'ceT1': (0.0, 400.0, 600.0, 600.0, 1400.0, 150.0),
            'hrT2': (0.0, 300.0, 500.0, 1500.0, 1000.0, 1500.0)}
CONTRAST['T2'] = CONTRAST['hrT2']      # crossMoDA 2023's name of the same high-resolution T2 scans
NAMINGS = ('2021', '2022', '2023')
SITES_2023 = ('etz', 'ldn', 'ukm')


def crossmoda_case(index: int, modality: str, size: int = 64, num_slices: int = 8, seed: int = 0,
                   label_values: Optional[Tuple[int, int, int]] = None) -> Tuple[Volume, Volume]:
    """``(image, label)`` of phantom ``index`` (depends only on ``seed``, ``index`` and the sizes).

    ``label_values``: crossMoDA 2023 labels, the raw values of (intra-meatal VS, extra-meatal VS, cochlea);
    default the 2021 labels (1 VS, 2 cochlea)."""
    if modality not in CONTRAST:
        raise ValueError(f'modality must be one of {sorted(CONTRAST)}, got {modality!r}')
    gen = np.random.default_rng([seed, index])
    z, y, x = np.mgrid[:num_slices, :size, :size].astype(np.float32)
    c = (size - 1) / 2.0
    head = ((y - c) / (0.46 * size)) ** 2 + ((x - c) / (0.40 * size)) ** 2 < 1
    brain = ((y - c) / (0.40 * size)) ** 2 + ((x - c) / (0.34 * size)) ** 2 < 1
    side = 1 if gen.random() < 0.5 else -1
    zc = (num_slices - 1) / 2.0 + gen.uniform(-1, 1)
    ty, tx = c + gen.uniform(0.05, 0.15) * size, c + side * gen.uniform(0.12, 0.2) * size
    radius = gen.uniform(0.06, 0.1) * size
    tumour = ((y - ty) / radius) ** 2 + ((x - tx) / radius) ** 2 + ((z - zc) * SLICE_MM * size / FOV_MM
                                                                    / (radius * 0.8)) ** 2 < 1
    fluid = ((y - ty) / (radius + 2)) ** 2 + ((x - tx) / (radius + 2)) ** 2 < 1
    fluid &= side * (x - tx) < 0  # CSF of the cerebellopontine cistern: a crescent on the tumour's midline side
    fluid &= np.abs(z - zc) <= radius * FOV_MM / size / SLICE_MM
    cochlea = np.zeros_like(tumour)
    r_cochlea = max(1.2, 0.03 * size)
    for s in (-1, 1):
        cy, cx = c + 0.12 * size, c + s * 0.3 * size
        cochlea |= ((y - cy) ** 2 + (x - cx) ** 2 < r_cochlea ** 2) & (np.abs(z - round(zc)) <= 1)
    values = CONTRAST[modality]
    image = np.full(z.shape, values[0], np.float32)
    for mask, value in zip((head, brain, fluid, tumour, cochlea), values[1:]):
        image[mask] = value
    bias = 1 + 0.15 * np.sin(x / size * np.pi + gen.uniform(0, np.pi)) * np.cos(y / size * np.pi)
    image = image * bias + gen.normal(0, 30, size=image.shape).astype(np.float32)
    image[~head] = np.abs(gen.normal(0, 5, size=int((~head).sum())))
    label = np.zeros(z.shape, np.float64)
    if label_values is None:
        label[tumour] = 1.0
        label[cochlea] = 2.0
    else:   # the tumour's part on the ear's side of its centre lies in the internal auditory canal
        intra = tumour & (side * (x - tx) > 0)
        label[tumour & ~intra], label[intra], label[cochlea] = (float(label_values[1]), float(label_values[0]),
                                                                 float(label_values[2]))
    spacing = (FOV_MM / size, FOV_MM / size, SLICE_MM)
    source = f'synthetic crossmoda {modality} {index}'
    return (Volume(array=image.astype(np.float32), spacing=spacing, source=source),
            Volume(array=label, spacing=spacing, source=source))


def _save(volume_array: np.ndarray, spacing, path: Path) -> None:
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # L,P,S as the real files
    affine[:3, 3] = (100.0, 120.0, -40.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume_array.transpose(2, 1, 0)), affine), str(path))


def write_crossmoda_release(root: Union[str, Path], naming: str = '2021', num_source: int = 4,
                            num_target: int = 3, num_val: int = 2, size: int = 64, num_slices: int = 8,
                            seed: int = 0, target_label_dir: Optional[Union[str, Path]] = None,
                            label_values: Tuple[int, int, int] = (1, 2, 3)) -> Path:
    """Write a synthetic CrossMoDA release (``naming`` '2021', '2022' or '2023') under ``root``; returns ``root``.

    Source cases are numbered from 1, target cases after them, validation cases last (as in 2021); with
    the 2022 naming even cases are London (``ldn``), odd ones Tilburg (``etz``); with 2023 case ``n`` is at
    site ``('etz', 'ldn', 'ukm')[n % 3]`` and its labels have the three structures, raw values ``label_values``.
    """
    if naming not in NAMINGS:
        raise ValueError(f'naming must be one of {NAMINGS}, got {naming!r}')
    root = Path(root)
    plan = ([(n, 'ceT1', 'source') for n in range(1, num_source + 1)]
            + [(n, 'hrT2', 'target') for n in range(num_source + 1, num_source + num_target + 1)]
            + [(n, 'hrT2', 'val') for n in range(num_source + num_target + 1,
                                                 num_source + num_target + num_val + 1)])
    for n, modality, role in plan:
        if naming == '2023':
            modality = 'T2' if modality == 'hrT2' else modality
        image, label = crossmoda_case(n, modality, size, num_slices, seed,
                                      tuple(label_values) if naming == '2023' else None)
        if naming == '2021':
            folder = {'source': 'crossmoda_training/source_training', 'target': 'crossmoda_training/target_training',
                      'val': 'crossmoda_validation/target_validation'}[role]
            case = f'crossmoda_{n}'
            label_name = f'{case}_Label.nii.gz'
        elif naming == '2023':
            folder = {'source': 'crossmoda23_training/TrainingSource', 'target': 'crossmoda23_training/TrainingTarget',
                      'val': 'crossmoda23_validation'}[role]
            case = f'crossmoda2023_{SITES_2023[n % 3]}_{n}'
            label_name = f'{case}_Label.nii.gz'
        else:
            site = 'ldn' if n % 2 == 0 else 'etz'
            folder = 'crossmoda2022_validation' if role == 'val' else 'crossmoda2022_training'
            case = f'crossmoda2022_{site}_{n}'
            label_name = f'crossmoda2021_ldn_{n}_Label.nii.gz' if site == 'ldn' else f'{case}_Label.nii.gz'
        _save(image.array, image.spacing, root / folder / f'{case}_{modality}.nii.gz')
        if role == 'source':
            _save(label.array, label.spacing, root / folder / label_name)
        elif target_label_dir is not None:
            _save(label.array, label.spacing, Path(target_label_dir) / f'{case}_Label.nii.gz')
    return root
