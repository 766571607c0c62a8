"""NIfTI reading (nibabel) into the slice-major :class:`~mmseg_medical.volume.Volume`."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np

from ..errors import MedSegError
from ..volume import Volume, from_nifti_array
from .sources import ZipMember, gunzip_if_needed, read_bytes

NIFTI_SUFFIXES = ('.nii.gz', '.nii')


def nifti_stem(path: Union[str, Path]) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return Path(name).stem


def _load_member(member: ZipMember):
    """A NIfTI image from a zip member, decoded in memory (nothing is extracted to disk)."""
    import nibabel as nib

    data = gunzip_if_needed(member, read_bytes(member))
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            return cls.from_bytes(data)
        except Exception:  # wrong magic for this class: try the next
            continue
    raise MedSegError(member, 'cannot read NIfTI (not a NIfTI-1/2 single file)')


def read_nifti(path: Union[str, Path, ZipMember]) -> Volume:
    """Read a 3D NIfTI file (or a zip member holding one), keeping its affine, spacing and header.

    The on-disk dtype is kept unless the header scales the data (``scl_slope``), in which case the
    scaled values are returned. Truncated or corrupt files raise :class:`MedSegError`.
    """
    import nibabel as nib

    if not isinstance(path, ZipMember):
        path = Path(path)
        if not path.is_file():
            raise MedSegError(path, 'file not found')
    try:
        img = _load_member(path) if isinstance(path, ZipMember) else nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except MedSegError:
        raise
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


def nifti_display_spacing(path: Union[str, Path]) -> Tuple[float, float, float]:
    """Voxel spacing (column, row, slice) in mm that ``path``'s scan has in the display slice convention.

    Reads the header only: the zooms of the source axes, permuted as the display reorientation
    (:mod:`mmseg_medical.orientation`) permutes the axes.
    """
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    from ..orientation import DISPLAY_AXCODES

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise MedSegError(path, f'cannot read NIfTI header ({type(exc).__name__}: {exc})') from None
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(DISPLAY_AXCODES))
    spacing = [0.0, 0.0, 0.0]
    for source_axis, (target_axis, _flip) in enumerate(ornt):
        spacing[int(target_axis)] = zooms[source_axis]
    return spacing[0], spacing[1], spacing[2]
