"""One slice convention for every NIfTI and DICOM source ("display orientation"), and its inverse.

Axial slices in radiological display orientation: image top = anterior, image left = the patient's right.
In :class:`~mmseg_medical.volume.Volume` terms the NIfTI ``(i, j, k)`` axes (column, row, slice) point
to the patient's left, posterior and superior: nibabel axcodes ``('L', 'P', 'S')``. That is what
SimpleITK gives for a standard axial DICOM series (identity LPS direction) and what viewers show.

The source orientation is nibabel's ``io_orientation`` of the source affine (nearest axes, so oblique
and gantry-tilted scans get the permutation/flips of their closest axes; no resampling). The whole
transform is recorded as a JSON-serialisable dict (``display_transform``) so that predictions made on
display slices can be put back into the source's own voxel order and affine (``to_source``,
``source_volume``). Volumes without an affine (folders of JPGs) are kept as they are.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from .errors import MedSegError
from .volume import Volume, spacing_from_affine

DISPLAY_AXCODES = ('L', 'P', 'S')
DISPLAY_CONVENTION = ("axial slices in radiological display orientation: image top = anterior, image left = "
                      "the patient's right (columns run right to left, rows anterior to posterior, slices "
                      "inferior to superior: NIfTI axis codes L, P, S, as SimpleITK reads a standard axial "
                      "DICOM series), taken from the nearest axes of the source affine without resampling; "
                      "sources without an affine keep their stored order")

_IDENTITY = np.array([[0, 1], [1, 1], [2, 1]])


def _ijk_shape(shape_zhw: Sequence[int]) -> tuple:
    """``(Z, H, W)`` → the NIfTI ``(i, j, k)`` shape ``(W, H, Z)``."""
    return tuple(int(s) for s in shape_zhw)[::-1]


def display_transform(volume: Volume) -> Optional[dict]:
    """How ``volume`` (source voxel order) becomes display order, as a JSON-serialisable record.

    ``None`` when the volume has no affine. Keys: ``source_axcodes`` (nibabel ``aff2axcodes`` of the
    source affine), ``ornt`` (``ornt_transform`` from the source's ``io_orientation`` to
    :data:`DISPLAY_AXCODES`, as ``[axis, flip]`` pairs), ``source_shape_zhw``, ``source_affine`` (4x4).
    A degenerate affine (a zero or non-finite column) is a :class:`MedSegError` naming the source.
    """
    if volume.affine is None:
        return None
    affine = np.asarray(volume.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise MedSegError(volume.source, f'affine is not a finite 4x4 matrix: {affine.tolist()}')
    source_ornt = io_orientation(affine)
    if np.isnan(source_ornt).any():
        raise MedSegError(volume.source, f'degenerate affine (an axis without direction): {affine.tolist()}')
    ornt = ornt_transform(source_ornt, axcodes2ornt(DISPLAY_AXCODES))
    return {
        'source_axcodes': [str(c) for c in nib.aff2axcodes(affine)],
        'ornt': [[int(axis), int(flip)] for axis, flip in ornt],
        'source_shape_zhw': [int(s) for s in volume.array.shape],
        'source_affine': affine.tolist(),
    }


def to_display(volume: Volume, record: Optional[dict] = None) -> Volume:
    """``volume`` in display order: array, affine and spacing reoriented; ``source`` and ``meta`` kept.

    With ``record`` given (e.g. the image's record applied to its label) that record's ``ornt`` is used
    and the volume's shape must equal ``record['source_shape_zhw']`` (:class:`MedSegError` otherwise);
    the volume's own affine is carried along (the record's ``source_affine`` when it has none). Without
    a record the volume's own :func:`display_transform` is used; no affine and no record: returned as is.
    """
    if record is None:
        record = display_transform(volume)
        if record is None:
            return volume
    if list(volume.array.shape) != list(record['source_shape_zhw']):
        raise MedSegError(volume.source, f'shape (Z, H, W) {list(volume.array.shape)} differs from '
                                         f'{list(record["source_shape_zhw"])} of the volume whose orientation '
                                         f'it should share')
    ornt = np.asarray(record['ornt'], dtype=np.float64)
    data = volume.nifti_array()
    affine = volume.affine if volume.affine is not None else np.asarray(record['source_affine'], np.float64)
    display_affine = affine @ inv_ornt_aff(ornt, data.shape)
    spacing = None
    if volume.spacing is not None:
        permuted = [0.0, 0.0, 0.0]
        for in_axis, (out_axis, _) in enumerate(ornt):
            permuted[int(out_axis)] = float(volume.spacing[in_axis])
        spacing = tuple(permuted)
    # A view (flips and axis swaps, no copy): windowing and label mapping write new arrays anyway.
    array = apply_orientation(data, ornt).transpose(2, 1, 0)
    return Volume(array=array, spacing=spacing, affine=display_affine, source=volume.source,
                  meta=dict(volume.meta))


def display_slice_sources(record: Optional[dict], num_slices: int) -> List[int]:
    """Display slice index → the source slice (Volume axis 0 = NIfTI axis k) it comes from, for per-slice
    values read with the source (``record`` None: the identity). A reorientation that takes the display
    slices from another source axis (a sagittal or coronal source) is a :class:`MedSegError`."""
    if record is None:
        return list(range(num_slices))
    axis, flip = (int(v) for v in record['ornt'][2])
    if axis != 2:
        raise MedSegError(None, 'per-slice values cannot follow a source whose slices are not axial '
                                f'(display axis {axis} from source slices)')
    return list(range(num_slices))[::-1] if flip < 0 else list(range(num_slices))


def to_source(array_zhw: np.ndarray, record: Optional[dict]) -> np.ndarray:
    """Inverse of :func:`to_display` for a display-order ``(Z, H, W)`` array (e.g. a restacked prediction).

    Gives the array in the source's own voxel order and shape; ``record`` None: returned unchanged. A
    shape that does not match the record is a :class:`MedSegError`.
    """
    if record is None:
        return array_zhw
    ornt = np.asarray(record['ornt'], dtype=np.float64)
    source_shape = _ijk_shape(record['source_shape_zhw'])
    expected = [0, 0, 0]
    for in_axis, (out_axis, _) in enumerate(ornt):
        expected[int(out_axis)] = source_shape[in_axis]
    if tuple(array_zhw.shape) != tuple(expected[::-1]):
        raise MedSegError(None, f'display array shape (Z, H, W) {list(array_zhw.shape)} does not match '
                                f'{expected[::-1]} of the recorded source {record["source_shape_zhw"]}')
    # ornt_transform(identity, ornt) is the inverse permutation/flips of ``ornt``.
    inverse = ornt_transform(_IDENTITY, ornt)
    source = apply_orientation(np.asarray(array_zhw).transpose(2, 1, 0), inverse)
    return np.ascontiguousarray(source.transpose(2, 1, 0))


def source_volume(array_zhw: np.ndarray, record: Optional[dict], fallback_affine=None) -> Volume:
    """A :class:`Volume` in the source's voxel order with exactly the source's affine.

    ``record`` None: the array is kept as it is, with ``fallback_affine`` (may be None).
    """
    affine = fallback_affine if record is None else record['source_affine']
    affine = None if affine is None else np.asarray(affine, dtype=np.float64)
    spacing = None if affine is None else spacing_from_affine(affine)
    return Volume(array=to_source(array_zhw, record), spacing=spacing, affine=affine)
