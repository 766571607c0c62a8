"""Read a 3D medical image of any common file ending into a :class:`~mmseg_medical.volume.Volume`.

``.nii.gz`` / ``.nii`` are read by nibabel (:func:`~mmseg_medical.io.nifti.read_nifti`); ``.nrrd``, ``.nhdr``,
``.mha``, ``.mhd`` by SimpleITK, whose LPS geometry (direction, spacing, origin) is turned into the RAS+ affine
of the ``(i, j, k)`` grid the package uses (:mod:`mmseg_medical.volume`), so a scan has the same affine whichever
format holds it. :func:`read_channels_4d` splits a 4D NIfTI (the Decathlon's multi-modality images) into one
volume per channel.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Union

import numpy as np

from ..errors import MedSegError
from ..volume import Volume, from_nifti_array
from .nifti import read_nifti

#: File endings :func:`read_image` reads (nnU-Net v2's ``file_ending`` values for 3D images).
SITK_ENDINGS = ('.nrrd', '.nhdr', '.mha', '.mhd')
NIFTI_ENDINGS = ('.nii.gz', '.nii')
ENDINGS = NIFTI_ENDINGS + SITK_ENDINGS

#: LPS (ITK) → RAS (NIfTI) world coordinates.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def sitk_affine(image) -> np.ndarray:
    """The RAS+ voxel-to-world affine of a SimpleITK image's ``(i, j, k)`` = (x, y, z) index grid."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(image.GetOrigin(), dtype=np.float64)
    return affine


def read_image(path: Union[str, Path]) -> Volume:
    """A 3D image or label file (:data:`ENDINGS`) as a slice-major volume with its RAS+ affine."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(NIFTI_ENDINGS):
        return read_nifti(path)
    if not name.endswith(SITK_ENDINGS):
        raise MedSegError(path, f'unknown image file ending; expected one of {", ".join(ENDINGS)}')
    if not path.is_file():
        raise MedSegError(path, 'file not found')
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except Exception as exc:  # SimpleITK raises RuntimeError with a multi-line message
        raise MedSegError(path, f'cannot read image ({type(exc).__name__}: {exc})') from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MedSegError(path, f'expected a 3D single-component image, got {image.GetDimension()}D with '
                                f'{image.GetNumberOfComponentsPerPixel()} component(s)')
    array = sitk.GetArrayFromImage(image)  # (z, y, x) = (Z, H, W)
    return Volume(array=np.ascontiguousarray(array), spacing=tuple(float(s) for s in image.GetSpacing()),
                  affine=sitk_affine(image), source=str(path))


def read_channels_4d(path: Union[str, Path]) -> List[Volume]:
    """A 4D NIfTI ``(i, j, k, c)`` (a 3D one is one channel) as one volume per channel ``c``."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise MedSegError(path, 'file not found')
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise MedSegError(path, f'cannot read NIfTI ({type(exc).__name__}: {exc})') from None
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise MedSegError(path, f'expected a 3D or 4D (i, j, k, channel) image, got shape {data.shape}')
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return [from_nifti_array(np.asarray(data[..., c]), img.affine, source=str(path), spacing=zooms)
            for c in range(data.shape[3])]
