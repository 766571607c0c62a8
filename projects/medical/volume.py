"""The in-memory volume every reader returns and every writer takes.

Convention (used across the package, the manifest and the restacking code):

* ``Volume.array`` is **slice-major**: shape ``(Z, H, W)`` = (slices, rows, columns). Slice ``k`` is
  ``array[k]`` and is written to disk as one PNG of ``H`` rows and ``W`` columns.
* The NIfTI data array of the same volume is ``array.transpose(2, 1, 0)`` (i = column, j = row,
  k = slice), so ``Volume.affine`` is the NIfTI (RAS+) voxel-to-world affine of that ``(i, j, k)`` grid.
* ``Volume.spacing`` is ``(sx, sy, sz)`` in mm = (column, row, slice) spacing, or ``None`` when the
  source does not record it (e.g. a folder of JPGs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

Spacing = Tuple[float, float, float]


@dataclass
class Volume:
    """A 3D image or label map with the geometry needed to write it back."""

    array: np.ndarray
    spacing: Optional[Spacing] = None
    affine: Optional[np.ndarray] = None
    source: Optional[str] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f'Volume.array must be 3D (Z, H, W), got shape {self.array.shape}')
        if self.affine is None and self.spacing is not None:
            self.affine = np.diag([*self.spacing, 1.0])
        if self.affine is not None:
            self.affine = np.asarray(self.affine, dtype=np.float64)

    @property
    def num_slices(self) -> int:
        return int(self.array.shape[0])

    @property
    def slice_shape(self) -> Tuple[int, int]:
        return int(self.array.shape[1]), int(self.array.shape[2])

    def nifti_array(self) -> np.ndarray:
        """The data array in NIfTI ``(i, j, k)`` order (a view, no copy)."""
        return self.array.transpose(2, 1, 0)

    def geometry(self) -> dict:
        """JSON-serialisable geometry: enough to rebuild the volume from its slices."""
        return {
            'shape_zhw': list(self.array.shape),
            'spacing': None if self.spacing is None else [float(s) for s in self.spacing],
            'affine': None if self.affine is None else self.affine.tolist(),
        }


def spacing_from_affine(affine: np.ndarray) -> Spacing:
    """Voxel size along i, j, k: the norms of the affine's first three columns."""
    norms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return float(norms[0]), float(norms[1]), float(norms[2])


def from_nifti_array(data: np.ndarray, affine: Optional[np.ndarray], source: Optional[str] = None,
                     spacing: Optional[Spacing] = None) -> Volume:
    """Wrap a NIfTI-ordered ``(i, j, k)`` array as a slice-major :class:`Volume`."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f'expected a 3D volume, got shape {data.shape}')
    if spacing is None and affine is not None:
        spacing = spacing_from_affine(affine)
    return Volume(array=np.ascontiguousarray(data.transpose(2, 1, 0)), spacing=spacing, affine=affine,
                  source=source)


def save_nifti(volume: Volume, path: Path, dtype: Optional[np.dtype] = None, header=None) -> Path:
    """Write ``volume`` as NIfTI (``.nii`` or ``.nii.gz``), keeping its affine.

    ``header`` (a nibabel header of the source image) keeps the source's qform/sform codes and units.
    """
    import nibabel as nib

    data = volume.nifti_array()
    if dtype is not None:
        data = data.astype(dtype)
    affine = volume.affine if volume.affine is not None else np.eye(4)
    img = nib.Nifti1Image(np.asarray(data), affine, header=header)
    if header is not None:
        img.set_data_dtype(data.dtype)
    else:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units('mm')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


#: Image/label geometry tolerances: direction cosines (unitless), spacing (relative), origin (mm).
DIRECTION_TOLERANCE = 1e-3
SPACING_TOLERANCE = 1e-3
ORIGIN_TOLERANCE_MM = 1e-2


def _decompose(affine: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, direction columns, origin) of a voxel-to-world affine."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return spacing, affine[:3, :3] / np.where(spacing > 0, spacing, 1.0), affine[:3, 3]


def geometry_mismatch(image: Volume, label: Volume) -> Optional[str]:
    """Why ``label`` does not lie on ``image``'s voxel grid (shape, spacing, orientation, origin), or None.

    Affines are compared only when both volumes have one (a folder of JPGs has none): spacing within a
    relative :data:`SPACING_TOLERANCE`, direction cosines within :data:`DIRECTION_TOLERANCE`, origin within
    :data:`ORIGIN_TOLERANCE_MM` mm (NIfTI headers store them as float32).
    """
    if image.array.shape != label.array.shape:
        return f'shape (Z, H, W) {label.array.shape} vs {image.array.shape}'
    if image.affine is None or label.affine is None:
        return None
    (si, di, oi), (sl, dl, ol) = _decompose(image.affine), _decompose(label.affine)
    if not np.allclose(sl, si, rtol=SPACING_TOLERANCE, atol=0):
        return f'spacing {np.round(sl, 4).tolist()} vs {np.round(si, 4).tolist()} mm'
    if not np.allclose(dl, di, atol=DIRECTION_TOLERANCE, rtol=0):
        import nibabel as nib
        return (f'orientation {"".join(nib.aff2axcodes(label.affine))} vs {"".join(nib.aff2axcodes(image.affine))}'
                f' (direction cosines differ by {np.abs(dl - di).max():.3g})')
    if not np.allclose(ol, oi, atol=ORIGIN_TOLERANCE_MM, rtol=0):
        return f'origin {np.round(ol, 3).tolist()} vs {np.round(oi, 3).tolist()} mm'
    return None


def check_same_geometry(image: Volume, label: Volume, image_source: Optional[str] = None,
                        label_source: Optional[str] = None) -> None:
    """Raise one :class:`MedSegError` naming both files when the label is not on the image's grid."""
    from .errors import MedSegError

    why = geometry_mismatch(image, label)
    if why is not None:
        raise MedSegError(label_source or label.source,
                          f'label does not match image {image_source or image.source}: {why}')
