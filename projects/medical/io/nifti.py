"""NIfTI reading (nibabel) into the slice-major :class:`~mmseg_medical.volume.Volume`."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from ..errors import MedSegError
from ..volume import Volume, from_nifti_array

NIFTI_SUFFIXES = ('.nii.gz', '.nii')


def nifti_stem(path: Union[str, Path]) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return Path(name).stem


def read_nifti(path: Union[str, Path]) -> Volume:
    """Read a 3D NIfTI file, keeping its affine, spacing (header zooms) and header.

    The on-disk dtype is kept unless the header scales the data (``scl_slope``), in which case the
    scaled values are returned. Truncated or corrupt files raise :class:`MedSegError`.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise MedSegError(path, 'file not found')
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for truncated/corrupt files
        raise MedSegError(path, f'cannot read NIfTI ({type(exc).__name__}: {exc})') from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MedSegError(path, f'expected a 3D volume, got shape {data.shape}')
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    volume = from_nifti_array(data, img.affine, source=str(path), spacing=zooms)
    volume.meta['header'] = img.header
    return volume
