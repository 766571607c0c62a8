"""Tiny synthetic releases in nnU-Net v2's raw layout and the Medical Segmentation Decathlon's (tests, README).

* :func:`write_nnunet_release`: ``DatasetXXX_Name/`` with nnU-Net v2's ``dataset.json`` (``channel_names``,
  ``labels``, ``numTraining``, ``file_ending``), ``imagesTr/<case>_<XXXX><ending>``, ``labelsTr/``,
  ``imagesTs/`` and ``labelsTs/``, written by SimpleITK in any of its file endings. Defaults: a 2-channel MR set
  (T2, ADC) with 3 labels; ``channels=('CT',)`` with several organs gives a multi-organ CT set.
* :func:`write_msd_release`: ``TaskXX_Name/`` with the Decathlon's ``dataset.json`` (``modality``, ``labels``,
  ``training``, ``test``) and 4D images ``(i, j, k, modality)``, as Task01 BrainTumour ships them.

Each case: a box-shaped body (intensities nonzero everywhere) holding one ellipsoid per foreground label, whose
intensity differs per channel; geometry per case: spacing and origin vary, direction a fixed oblique-free LPS.
"""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

MR_CHANNELS = ('T2', 'ADC')
MR_LABELS = ('background', 'peripheral', 'transition')
CT_LABELS = ('background', 'liver', 'spleen', 'kidney')


def synthetic_case(index: int, num_channels: int, num_labels: int, shape: Tuple[int, int, int] = (6, 20, 24),
                   seed: int = 0, ct: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(channels (C, Z, H, W) float32, label (Z, H, W) uint8)`` of case ``index``: labels 1..n-1 as blobs."""
    rng = np.random.default_rng(seed * 1000 + index)
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing='ij')
    label = np.zeros(shape, np.uint8)
    for value in range(1, num_labels):
        cz, cy, cx = (rng.uniform(0.3, 0.7) * s for s in shape)
        cx = cx + (value - num_labels / 2) * shape[2] / (num_labels + 1)
        radius = rng.uniform(0.15, 0.22, 3) * np.asarray(shape)
        inside = ((z - cz) / max(radius[0], 1.1)) ** 2 + ((y - cy) / radius[1]) ** 2 + ((x - cx) / radius[2]) ** 2 <= 1
        label[inside & (label == 0)] = value
    channels = np.empty((num_channels, *shape), np.float32)
    for c in range(num_channels):
        base = -50.0 if ct else 100.0 + 40 * c
        levels = (np.arange(num_labels) * (60.0 if ct else 80.0 - 30 * c)).astype(np.float32)
        channels[c] = base + levels[label] + rng.normal(0, 12, shape).astype(np.float32)
        if not ct:
            channels[c] = np.maximum(channels[c], 1.0)  # MR: positive everywhere (no crop)
    return channels, label


def _sitk_write(array_zhw: np.ndarray, spacing: Sequence[float], origin: Sequence[float], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array_zhw)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _case_geometry(index: int) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    spacing = (0.8 + 0.1 * (index % 3), 0.8 + 0.1 * (index % 3), 2.5 + 0.5 * (index % 2))  # (x, y, z) mm
    return spacing, (-10.0 * index, 5.0, 20.0 + index)


def write_nnunet_release(root: PathLike, name: str = 'Dataset901_Toy', num_training: int = 6, num_test: int = 2,
                         channels: Sequence[str] = MR_CHANNELS, labels: Sequence[str] = MR_LABELS,
                         file_ending: str = '.nii.gz', test_labels: bool = True, seed: int = 0,
                         shape: Tuple[int, int, int] = (6, 20, 24)) -> Path:
    """``root/<name>``: an nnU-Net v2 raw dataset (see the module); returns its folder."""
    release = Path(root) / name
    ct = tuple(c.casefold() for c in channels) == ('ct',)
    cases = [(f'toy_{i:03d}', 'Tr') for i in range(num_training)] + \
            [(f'toy_{100 + i:03d}', 'Ts') for i in range(num_test)]
    for i, (case, part) in enumerate(cases):
        images, label = synthetic_case(i, len(channels), len(labels), shape, seed, ct)
        spacing, origin = _case_geometry(i)
        for c in range(len(channels)):
            data = images[c].astype(np.int16) if ct else images[c]
            _sitk_write(data, spacing, origin, release / f'images{part}' / f'{case}_{c:04d}{file_ending}')
        if part == 'Tr' or test_labels:
            _sitk_write(label, spacing, origin, release / f'labels{part}' / f'{case}{file_ending}')
    card = {'channel_names': {str(c): n for c, n in enumerate(channels)},
            'labels': {n: v for v, n in enumerate(labels)}, 'numTraining': num_training, 'file_ending': file_ending,
            'name': name.split('_', 1)[-1], 'description': 'synthetic (mmseg_medical.synthetic.nnunet)'}
    (release / 'dataset.json').write_text(json.dumps(card, indent=2))
    return release


def write_msd_release(root: PathLike, name: str = 'Task01_BrainTumour', num_training: int = 5, num_test: int = 1,
                      modality: Sequence[str] = ('FLAIR', 'T1w', 'T1gd', 'T2w'),
                      labels: Sequence[str] = ('background', 'edema', 'non-enhancing tumor', 'enhancing tumour'),
                      seed: int = 1, shape: Tuple[int, int, int] = (6, 20, 24)) -> Path:
    """``root/<name>``: a Decathlon task with 4D ``(i, j, k, modality)`` NIfTI images (nibabel), 3D labels."""
    import nibabel as nib

    task = Path(root) / name
    prefix = name.split('_', 1)[-1].lower()
    training, test = [], []
    for i in range(num_training + num_test):
        case = f'{prefix}_{i + 1:03d}'
        images, label = synthetic_case(i, len(modality), len(labels), shape, seed)
        spacing, origin = _case_geometry(i)
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # LPS+ voxel axes, RAS+ world
        affine[:3, 3] = [-origin[0], -origin[1], origin[2]]
        data = images.transpose(3, 2, 1, 0)  # (C, Z, H, W) → (i, j, k, C)
        part = 'Tr' if i < num_training else 'Ts'
        (task / f'images{part}').mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), str(task / f'images{part}' / f'{case}.nii.gz'))
        if part == 'Tr':
            (task / 'labelsTr').mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.ascontiguousarray(label.transpose(2, 1, 0)), affine),
                     str(task / 'labelsTr' / f'{case}.nii.gz'))
            training.append({'image': f'./imagesTr/{case}.nii.gz', 'label': f'./labelsTr/{case}.nii.gz'})
        else:
            test.append(f'./imagesTs/{case}.nii.gz')
    card: Dict[str, object] = {
        'name': name.split('_', 1)[-1], 'tensorImageSize': '4D',
        'modality': {str(c): m for c, m in enumerate(modality)}, 'labels': {str(v): n for v, n in enumerate(labels)},
        'numTraining': num_training, 'numTest': num_test, 'training': training, 'test': test}
    (task / 'dataset.json').write_text(json.dumps(card, indent=2))
    return task
