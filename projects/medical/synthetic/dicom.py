"""Synthetic single-frame CT DICOM series in the RSNA layout (tests and demos download nothing).

Read them back with :func:`mmseg_medical.io.read_dicom_folder`; the geometry conventions are those of
:mod:`mmseg_medical.io.dicom`.
"""
from __future__ import annotations

import zlib
from os import PathLike
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import MedSegError

PathLikeT = Union[str, PathLike]

CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'


def _ds(value: float):
    """A DS value that fits the 16-character limit."""
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _save(ds, path: Path) -> None:
    import pydicom

    if int(pydicom.__version__.split('.')[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        ds.save_as(str(path), write_like_original=False)


def _random_names(n: int, rng: np.random.Generator, in_order: bool) -> List[str]:
    """``n`` distinct RSNA-style names ``ID_<9 hex>.dcm``; sorted when ``in_order``."""
    names: List[str] = []
    seen = set()
    while len(names) < n:
        name = f'ID_{int(rng.integers(0, 16 ** 9)):09x}.dcm'
        if name not in seen:
            seen.add(name)
            names.append(name)
    return sorted(names) if in_order else names


def write_dicom_series(hu: np.ndarray, folder: PathLikeT,
                       spacing: Tuple[float, float, float] = (0.45, 0.45, 5.0),
                       origin: Tuple[float, float, float] = (-115.0, -115.0, 0.0),
                       orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                       signed: bool = True, rescale_intercept: int = -1024, shuffle_names: bool = True,
                       seed: int = 0, series_uid: Optional[str] = None, *,
                       bits_stored: Optional[int] = None,
                       slice_step: Optional[Sequence[float]] = None,
                       patient_id: str = 'SYNTHETIC') -> List[Path]:
    """Write ``hu`` (Z, H, W) as a synthetic single-frame CT series; return the paths in slice order.

    ``spacing`` = (column, row, slice) mm as in :class:`Volume`; ``origin`` = ImagePositionPatient of
    slice 0 in DICOM LPS mm; ``orientation`` = ImageOrientationPatient (row cosines, column cosines), e.g.
    a gantry tilt ``(1, 0, 0, 0, cos t, -sin t)``. Slice ``k`` sits at ``origin + k * slice_step``;
    ``slice_step`` defaults to ``spacing[2]`` times the slice normal (row x column); pass e.g.
    ``(0, 0, 5)`` for a tilted series whose positions move along z only.

    Stored value = HU - ``rescale_intercept`` (slope 1), 16 bits allocated; ``signed`` gives
    PixelRepresentation 1 and ``bits_stored`` defaults to 16 for signed data, 12 for unsigned (the two
    RSNA variants). WindowCenter/WindowWidth are multi-valued (brain and bone windows). File names are
    ``ID_<9 hex>.dcm`` drawn from ``seed`` (and ``series_uid``); with ``shuffle_names`` they say nothing
    of the order, else they sort in slice order. UIDs derive from ``seed`` unless ``series_uid`` is given.
    Existing files are never overwritten (:class:`MedSegError`).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    hu = np.asarray(hu)
    if hu.ndim != 3 or 0 in hu.shape:
        raise ValueError(f'hu must be a non-empty (Z, H, W) array, got shape {hu.shape}')
    if not np.issubdtype(hu.dtype, np.integer):
        raise ValueError(f'hu must be an integer array, got {hu.dtype}')
    bits = bits_stored if bits_stored is not None else (16 if signed else 12)
    if not 8 < bits <= 16:
        raise ValueError(f'bits_stored must be in 9..16, got {bits}')
    stored = hu.astype(np.int64) - int(rescale_intercept)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if stored.min() < lo or stored.max() > hi:
        raise ValueError(f'HU {hu.min()}..{hu.max()} with intercept {rescale_intercept} does not fit '
                         f'{"signed" if signed else "unsigned"} {bits}-bit storage')
    iop = np.asarray(orientation, dtype=np.float64)
    if iop.shape != (6,):
        raise ValueError(f'orientation must have 6 values, got {orientation}')
    normal = np.cross(iop[:3], iop[3:])
    step = normal * float(spacing[2]) if slice_step is None else np.asarray(slice_step, dtype=np.float64)

    series_uid = series_uid or generate_uid(entropy_srcs=['mmseg_medical synthetic series', str(seed)])
    study_uid = generate_uid(entropy_srcs=[series_uid, 'study'])
    frame_uid = generate_uid(entropy_srcs=[series_uid, 'frame of reference'])
    rng = np.random.default_rng([int(seed), zlib.crc32(series_uid.encode())])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = _random_names(hu.shape[0], rng, in_order=not shuffle_names)
    paths = [folder / name for name in names]
    for p in paths:
        if p.exists():
            raise MedSegError(p, 'already exists; refusing to overwrite')

    pixel_dtype = np.dtype('<i2') if signed else np.dtype('<u2')
    for k, path in enumerate(paths):
        sop_uid = generate_uid(entropy_srcs=[series_uid, 'slice', str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b'\0' * 128)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = 'CT'
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.StudyID = ''
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL']
        ds.ImagePositionPatient = [_ds(v) for v in np.asarray(origin, dtype=np.float64) + k * step]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
        ds.SliceThickness = _ds(spacing[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = 'MONOCHROME2'
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.WindowCenter = [_ds(40), _ds(600)]
        ds.WindowWidth = [_ds(80), _ds(2800)]
        ds.RescaleIntercept = _ds(rescale_intercept)
        ds.RescaleSlope = _ds(1)
        ds.RescaleType = 'HU'
        ds.PixelData = np.ascontiguousarray(stored[k].astype(pixel_dtype)).tobytes()
        ds['PixelData'].VR = 'OW'
        _save(ds, path)
    return paths
