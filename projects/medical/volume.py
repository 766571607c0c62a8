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
