"""DICOM CT: read single slices and whole series into a :class:`Volume` (reading only; synthetic
series are written by :func:`mmseg_medical.synthetic.write_dicom_series`).

HU = stored value x RescaleSlope + RescaleIntercept. Stored values are taken as the DICOM standard
defines them: only the ``BitsStored`` low bits count (PS3.5 8.1.1), unsigned for PixelRepresentation 0
and two's complement for 1. Bits above ``BitsStored`` (overlays, padding) are dropped, which is what
GDCM (SimpleITK) does too. No dataset-specific guessing is applied: RSNA files with
PixelRepresentation 0 / BitsStored 12 are read exactly as their headers say (0..4095 x slope +
intercept), with no wrap-around "fix" of values that look like two's complement.

Series geometry follows SimpleITK (``ImageSeriesReader_GetGDCMSeriesFileNames`` + ``ImageSeriesReader``
with its default ``ForceOrthogonalDirection=True``) and ITK's NIfTI writer:

* slices are ordered by ImagePositionPatient (IPP) projected on the slice normal
  ``n = row_dir x col_dir`` from ImageOrientationPatient (IOP), ascending (GDCM's IPP sorter);
* origin = IPP of the first slice; direction = ``[row_dir, col_dir, n]`` (always orthonormal, even
  when the IPPs do not move along ``n``);
* slice spacing = ``|IPP_last - IPP_first| / (N - 1)`` (``itk::ImageSeriesReader``): the straight-line
  distance between the first and last positions, *not* their distance along ``n``;
  a one-file series gets 1 mm (as in SimpleITK, which ignores SliceThickness there);
* in-plane spacing = (PixelSpacing[1], PixelSpacing[0]) = (column spacing, row spacing);
* NIfTI (RAS+) affine = ``diag(-1, -1, 1, 1) @ [[dir * spacing, origin], [0, 1]]``.

Gantry tilt: IOP columns then leave the axial plane, e.g. col_dir = (0, cos t, -sin t), and
``n = (0, sin t, cos t)``. The real HemSeg label ``08154d6b7b`` (written by SimpleITK from RSNA DICOMs)
has column direction (0, 0.9272, -0.3746) (t = 22 deg), direction third column (0, 0.3746, 0.9272) = ``n``
(not the z axis, not the IPP step) and slice spacing 5.3925 mm = 5.0 / cos t, so its third affine column
in LPS is (0, 2.020, 5.000): by ITK's rule its first and last IPPs are 31 x 5.39 mm apart (most likely
5.39 mm steps along ``n``, i.e. 5.0 mm table steps in z). Where a tilted series' IPPs step along z only
by ``d``, SimpleITK still uses ``n`` as the third axis, with spacing ``d`` (checked in the tests), so the
voxel grid is sheared against the true slice positions. This reader reproduces that (so volumes match
SimpleITK-written labels) and records the largest distance between a slice's real IPP and its affine
position in ``meta['affine_position_error_mm']``.

Missing slices: SimpleITK spreads the remaining slices evenly over the first-to-last distance, silently
compressing the z axis. This reader refuses a series whose gap between consecutive positions along ``n``
exceeds :data:`MAX_GAP_RATIO` x the median gap (:class:`MedSegError` naming the series and the gap).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import MedSegError
from ..volume import Volume

PathLikeT = Union[str, PathLike]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Largest difference allowed between two slices' IOP components to count as one series.
ORIENTATION_TOLERANCE = 1e-4
#: Largest relative difference allowed between two slices' PixelSpacing values.
PIXEL_SPACING_TOLERANCE = 1e-4
#: Slices closer than this (mm) along the slice normal are duplicates.
DUPLICATE_POSITION_TOLERANCE = 1e-3
#: Slice spacing of a one-file series: SimpleITK gives 1 mm whatever SliceThickness says.
SINGLE_SLICE_SPACING = 1.0
#: A gap along the slice normal above this many median gaps is a missing slice.
MAX_GAP_RATIO = 1.5
_DICM_OFFSET = 128


@dataclass(frozen=True)
class DicomSliceInfo:
    """Header facts of one single-frame DICOM slice (spacings in mm, positions in LPS mm)."""

    path: str
    sop_instance_uid: str
    series_instance_uid: str
    patient_id: str
    rows: int
    columns: int
    image_position: Optional[Tuple[float, float, float]]
    image_orientation: Optional[Tuple[float, float, float, float, float, float]]
    pixel_spacing: Optional[Tuple[float, float]]  # DICOM order: (row spacing, column spacing)
    slice_thickness: Optional[float]
    rescale_slope: float
    rescale_intercept: float
    pixel_representation: int
    bits_allocated: int
    bits_stored: int
    window_center: Tuple[float, ...]
    window_width: Tuple[float, ...]
    transfer_syntax_uid: str


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value-validation warnings (RSNA's UIDs read ``ID_...``, which is not a UID)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'Invalid value for VR', category=UserWarning)
        yield


def _dcmread(path: Path, stop_before_pixels: bool = False):
    """``pydicom.dcmread`` that turns every failure into :class:`MedSegError` naming ``path``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with _quiet_pydicom():
            return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise MedSegError(path, f'not a DICOM file ({exc})') from exc
    except (OSError, EOFError) as exc:
        raise MedSegError(path, f'cannot read file ({exc})') from exc
    except Exception as exc:  # pydicom raises assorted errors on truncated or malformed files
        raise MedSegError(path, f'malformed DICOM file ({type(exc).__name__}: {exc})') from exc


def _floats(value, n: Optional[int] = None) -> Optional[Tuple[float, ...]]:
    """A DICOM (multi-)value as a float tuple; ``None`` when absent or of the wrong length."""
    if value is None or value == '':
        return None
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__') else list(value)
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out


def _float_or(value, default: float) -> float:
    """A single DICOM number, or ``default`` when it is absent or empty."""
    values = _floats(value, 1)
    return default if values is None else values[0]


def _slice_info(ds, path: Path) -> DicomSliceInfo:
    """Extract :class:`DicomSliceInfo` from a dataset (header only)."""
    with _quiet_pydicom():
        try:
            rows, columns = int(ds.Rows), int(ds.Columns)
        except AttributeError as exc:
            raise MedSegError(path, 'no Rows/Columns: not an image') from exc
        bits_allocated = int(ds.get('BitsAllocated', 16))
        thickness = _floats(ds.get('SliceThickness'), 1)
        ts = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
        return DicomSliceInfo(
            path=str(path),
            sop_instance_uid=str(ds.get('SOPInstanceUID', '')),
            series_instance_uid=str(ds.get('SeriesInstanceUID', '')),
            patient_id=str(ds.get('PatientID', '')),
            rows=rows,
            columns=columns,
            image_position=_floats(ds.get('ImagePositionPatient'), 3),
            image_orientation=_floats(ds.get('ImageOrientationPatient'), 6),
            pixel_spacing=_floats(ds.get('PixelSpacing'), 2),
            slice_thickness=None if thickness is None else thickness[0],
            rescale_slope=_float_or(ds.get('RescaleSlope'), 1.0),
            rescale_intercept=_float_or(ds.get('RescaleIntercept'), 0.0),
            pixel_representation=int(ds.get('PixelRepresentation', 0)),
            bits_allocated=bits_allocated,
            bits_stored=int(ds.get('BitsStored', bits_allocated)),
            window_center=_floats(ds.get('WindowCenter')) or (),
            window_width=_floats(ds.get('WindowWidth')) or (),
            transfer_syntax_uid='' if ts is None else str(ts),
        )


def _stored_values(ds, info: DicomSliceInfo, path: Path) -> np.ndarray:
    """The stored pixel values (H, W) as int64, restricted to ``BitsStored`` bits with the right sign."""
    if int(ds.get('SamplesPerPixel', 1)) != 1:
        raise MedSegError(path, f'{ds.SamplesPerPixel} samples per pixel: not a grayscale CT slice')
    if int(ds.get('NumberOfFrames', 1) or 1) != 1:
        raise MedSegError(path, f'multi-frame image ({ds.NumberOfFrames} frames) is not supported')
    bits = info.bits_stored
    high_bit = int(ds.get('HighBit', bits - 1))
    if not 1 <= bits <= info.bits_allocated or high_bit != bits - 1:
        raise MedSegError(path, f'unsupported bit layout: BitsAllocated {info.bits_allocated}, '
                                f'BitsStored {bits}, HighBit {high_bit}')
    if 'PixelData' not in ds:
        raise MedSegError(path, 'no pixel data')
    try:
        with _quiet_pydicom():
            raw = ds.pixel_array
    except Exception as exc:
        from pydicom.uid import UID

        name = UID(info.transfer_syntax_uid).name if info.transfer_syntax_uid else 'unknown'
        raise MedSegError(path, f'cannot decode pixel data (transfer syntax {name}): '
                                f'{type(exc).__name__}: {exc}') from exc
    if raw.shape != (info.rows, info.columns):
        raise MedSegError(path, f'pixel data shape {raw.shape} does not match Rows x Columns '
                                f'({info.rows}, {info.columns})')
    values = raw.astype(np.int64)
    mask = (1 << bits) - 1
    values &= mask
    if info.pixel_representation == 1:
        sign = 1 << (bits - 1)
        values = (values ^ sign) - sign
    return values


def _to_hu(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``values * slope + intercept``: int16 when slope/intercept are integral and it fits, else float32."""
    if float(slope).is_integer() and float(intercept).is_integer():
        hu = values * int(slope) + int(intercept)
        if hu.size == 0 or (hu.min() >= np.iinfo(np.int16).min and hu.max() <= np.iinfo(np.int16).max):
            return hu.astype(np.int16)
        return hu.astype(np.float32)
    return (values.astype(np.float64) * slope + intercept).astype(np.float32)


def read_dicom_slice(path: PathLikeT) -> Tuple[np.ndarray, DicomSliceInfo]:
    """Read one single-frame DICOM slice as HU ``(rows, columns)`` plus its header facts.

    Raises :class:`MedSegError` naming the file when it is not DICOM, has no (decodable) pixel data,
    is colour or multi-frame, or uses a bit layout other than HighBit = BitsStored - 1.
    """
    path = Path(path)
    ds = _dcmread(path)
    info = _slice_info(ds, path)
    values = _stored_values(ds, info, path)
    return _to_hu(values, info.rescale_slope, info.rescale_intercept), info


def _unit(v: np.ndarray, path: Path, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-6:
        raise MedSegError(path, f'degenerate ImageOrientationPatient ({what} is a zero vector)')
    return v / norm


def _check_same_series(infos: Sequence[DicomSliceInfo]) -> None:
    """Raise :class:`MedSegError` naming the first file that does not match the first file."""
    ref = infos[0]
    for info in infos:
        if info.image_position is None:
            raise MedSegError(info.path, 'no ImagePositionPatient: cannot place the slice in a volume')
        if info.image_orientation is None:
            raise MedSegError(info.path, 'no ImageOrientationPatient: cannot build the volume geometry')
        if info.pixel_spacing is None:
            raise MedSegError(info.path, 'no PixelSpacing: cannot build the volume geometry')
    for info in infos[1:]:
        if info.series_instance_uid != ref.series_instance_uid:
            raise MedSegError(info.path, f'SeriesInstanceUID {info.series_instance_uid} differs from '
                                         f'{ref.series_instance_uid} of {Path(ref.path).name}')
        if (info.rows, info.columns) != (ref.rows, ref.columns):
            raise MedSegError(info.path, f'Rows x Columns {info.rows} x {info.columns} differ from '
                                         f'{ref.rows} x {ref.columns} of {Path(ref.path).name}')
        if np.max(np.abs(np.subtract(info.image_orientation, ref.image_orientation))) > ORIENTATION_TOLERANCE:
            raise MedSegError(info.path, f'ImageOrientationPatient {list(info.image_orientation)} differs '
                                         f'from {list(ref.image_orientation)} of {Path(ref.path).name}')
        if not np.allclose(info.pixel_spacing, ref.pixel_spacing, rtol=PIXEL_SPACING_TOLERANCE, atol=0):
            raise MedSegError(info.path, f'PixelSpacing {list(info.pixel_spacing)} differs from '
                                         f'{list(ref.pixel_spacing)} of {Path(ref.path).name}')


def _check_no_gap(along: np.ndarray, infos: Sequence[DicomSliceInfo]) -> None:
    """Raise :class:`MedSegError` when a gap between sorted positions along the normal is a missing slice."""
    if len(along) < 3:
        return
    gaps = np.diff(along)
    median = float(np.median(gaps))
    worst = int(np.argmax(gaps))
    if gaps[worst] > MAX_GAP_RATIO * median:
        first = Path(infos[0].path)
        a, b = Path(infos[worst].path).name, Path(infos[worst + 1].path).name
        raise MedSegError(first.parent, f'series {infos[0].series_instance_uid} (first file {first.name}): '
                                        f'missing slice: gap of {gaps[worst]:.3f} mm along the slice normal '
                                        f'between positions {along[worst]:.3f} mm ({a}) and '
                                        f'{along[worst + 1]:.3f} mm ({b}), more than {MAX_GAP_RATIO} x the '
                                        f'median spacing {median:.3f} mm')


def read_dicom_series(files: Sequence[PathLikeT]) -> Volume:
    """Read the single-frame DICOM files of one series into a slice-major HU :class:`Volume`.

    Every file must share the first file's SeriesInstanceUID, Rows/Columns, ImageOrientationPatient
    (within :data:`ORIENTATION_TOLERANCE`) and PixelSpacing, and no two may share a position along the
    slice normal; otherwise :class:`MedSegError` names the offending file. A missing slice (a gap along
    the normal above :data:`MAX_GAP_RATIO` x the median gap) is a :class:`MedSegError` naming the series
    folder, its first file and the gap. Slices are ordered along the
    normal (never by file name, InstanceNumber or z); the geometry is SimpleITK's (module docstring).

    ``Volume.array`` is (Z, H, W) HU, int16 when every slice's slope/intercept is integral (and the
    values fit), else float32. ``Volume.meta`` holds ``series_instance_uid``, ``patient_id``,
    ``sop_instance_uids``, ``file_names`` and ``files`` (slice order), ``image_positions_lps``,
    ``slice_positions_mm`` (IPP . n), ``image_orientation``, ``affine_position_error_mm`` and, when any
    file has them, ``window_center`` / ``window_width`` (one list per slice, ``None`` where absent).
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise MedSegError(None, 'no DICOM files given')
    slices = [read_dicom_slice(p) for p in paths]
    infos = [info for _, info in slices]
    _check_same_series(infos)

    ref = infos[0]
    iop = np.asarray(ref.image_orientation, dtype=np.float64)
    row_dir = _unit(iop[:3], Path(ref.path), 'row direction')
    col_dir = _unit(iop[3:], Path(ref.path), 'column direction')
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-6:
        raise MedSegError(ref.path, 'ImageOrientationPatient row and column directions are parallel')

    positions = np.array([info.image_position for info in infos], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind='stable')
    for a, b in zip(order[:-1], order[1:]):
        if along[b] - along[a] < DUPLICATE_POSITION_TOLERANCE:
            raise MedSegError(infos[b].path, f'duplicate slice position: same position along the slice '
                                             f'normal ({along[b]:.3f} mm) as {Path(infos[a].path).name}')

    _check_no_gap(along[order], [infos[i] for i in order])
    infos = [infos[i] for i in order]
    positions = positions[order]
    n = len(infos)
    if n > 1:
        slice_spacing = float(np.linalg.norm(positions[-1] - positions[0])) / (n - 1)
    else:
        slice_spacing = SINGLE_SLICE_SPACING
    row_spacing, col_spacing = (float(s) for s in ref.pixel_spacing)

    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing
    lps[:3, 1] = col_dir * row_spacing
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ lps
    expected = positions[0] + np.arange(n)[:, None] * (normal * slice_spacing)[None, :]
    position_error = float(np.max(np.linalg.norm(positions - expected, axis=1)))

    arrays = [slices[i][0] for i in order]
    dtype = np.int16 if all(a.dtype == np.int16 for a in arrays) else np.float32
    meta = {
        'series_instance_uid': ref.series_instance_uid,
        'patient_id': ref.patient_id,
        'sop_instance_uids': [info.sop_instance_uid for info in infos],
        'file_names': [Path(info.path).name for info in infos],
        'files': [info.path for info in infos],
        'image_positions_lps': positions.tolist(),
        'slice_positions_mm': (positions @ normal).tolist(),
        'image_orientation': [float(v) for v in ref.image_orientation],
        'affine_position_error_mm': position_error,
    }
    if any(info.window_center for info in infos):
        meta['window_center'] = [list(info.window_center) or None for info in infos]
    if any(info.window_width for info in infos):
        meta['window_width'] = [list(info.window_width) or None for info in infos]
    return Volume(array=np.stack([a.astype(dtype, copy=False) for a in arrays]),
                  spacing=(col_spacing, row_spacing, slice_spacing), affine=affine,
                  source=str(Path(ref.path).parent), meta=meta)


def _has_dicm_marker(path: Path) -> bool:
    """True when the file carries the ``DICM`` marker after the 128-byte preamble."""
    try:
        with open(path, 'rb') as fh:
            fh.seek(_DICM_OFFSET)
            return fh.read(4) == b'DICM'
    except OSError:
        return False


def dicom_files_in(folder: PathLikeT) -> List[Path]:
    """The DICOM files directly in ``folder``, sorted by name.

    ``*.dcm`` (any case) always count, so a broken ``.dcm`` file is reported rather than skipped; other
    files (extensionless or UID-named) count when they carry the DICM marker. Hidden files and
    ``DICOMDIR`` are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSegError(folder, 'not a folder')
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith('.') or p.name.upper() == 'DICOMDIR':
            continue
        if p.suffix.lower() == '.dcm' or _has_dicm_marker(p):
            out.append(p)
    return out


def read_dicom_folder(folder: PathLikeT) -> Volume:
    """Read the one series stored in ``folder`` (see :func:`dicom_files_in`).

    Raises :class:`MedSegError` when the folder holds no DICOM file or more than one series (the
    message lists each SeriesInstanceUID with its file count and one file name).
    """
    folder = Path(folder)
    files = dicom_files_in(folder)
    if not files:
        raise MedSegError(folder, 'no DICOM files (*.dcm or files with a DICM marker)')
    series: dict = {}
    for p in files:
        ds = _dcmread(p, stop_before_pixels=True)
        with _quiet_pydicom():
            uid = str(ds.get('SeriesInstanceUID', ''))
        series.setdefault(uid, []).append(p)
    if len(series) > 1:
        listing = '; '.join(f'{uid or "<no SeriesInstanceUID>"} ({len(ps)} files, e.g. {ps[0].name})'
                            for uid, ps in series.items())
        raise MedSegError(folder, f'{len(series)} DICOM series in one folder: {listing}')
    volume = read_dicom_series(files)
    volume.source = str(folder)
    return volume
