"""In-plane resampling and centred cropping of display-order volumes, recorded so that it can be undone.

:func:`apply_spatial` resamples every slice to a target pixel spacing (images linear, labels nearest) and
then centre-crops (or zero-pads) it to a square; the JSON record it returns is stored as ``spatial`` in
``cases/<case>.json``. :func:`invert_spatial` maps a label array on that grid back onto the display grid
(restacking, ``infer_volume``).

Grid convention (SimpleITK's ``Resample`` with the input's origin and direction): the centre of the first
pixel stays where it is, and new pixel ``i`` sits at old continuous index ``i * new_spacing / old_spacing``;
the new size is ``round(old_size * old_spacing / new_spacing)``. Linear interpolation clamps at the last
pixel, nearest neighbour rounds halves up (``floor(x + 0.5)``), as ITK does. Upsampling (new spacing <=
old) followed by :func:`invert_spatial` gives every label back exactly (``round(round(j r) / r) = j`` for
``r >= 1``), so a perfect prediction scores Dice 1 on the source grid.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import MedSegError
from .volume import Volume


def resampled_size(size: int, spacing: float, target: float) -> int:
    """Pixels along an axis of ``size`` pixels at ``spacing`` mm once resampled to ``target`` mm."""
    return max(1, int(round(size * spacing / target)))


def _positions(size_out: int, step: float) -> np.ndarray:
    """Input continuous index of each output pixel when output pixel ``i`` sits at ``i * step``."""
    return np.arange(size_out, dtype=np.float64) * step


def _nearest(array: np.ndarray, axis: int, size_out: int, step: float) -> np.ndarray:
    index = np.clip(np.floor(_positions(size_out, step) + 0.5).astype(np.int64), 0, array.shape[axis] - 1)
    return np.take(array, index, axis=axis)


def _linear(array: np.ndarray, axis: int, size_out: int, step: float) -> np.ndarray:
    x = np.clip(_positions(size_out, step), 0, array.shape[axis] - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, array.shape[axis] - 1)
    shape = [1] * array.ndim
    shape[axis] = size_out
    w = (x - i0).astype(np.float32).reshape(shape)
    return np.take(array, i0, axis=axis) * (1 - w) + np.take(array, i1, axis=axis) * w


def resample_inplane(array_zhw: np.ndarray, spacing_xy: Sequence[float], target: float,
                     nearest: bool) -> np.ndarray:
    """Every slice of ``array_zhw`` (column spacing ``spacing_xy[0]``, row spacing ``spacing_xy[1]``) at
    ``target`` mm: nearest neighbour (labels, dtype kept) or linear (images, float32)."""
    sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
    _, h, w = array_zhw.shape
    out = array_zhw if nearest else array_zhw.astype(np.float32, copy=False)
    resample = _nearest if nearest else _linear
    out = resample(out, 1, resampled_size(h, sy, target), target / sy)
    return resample(out, 2, resampled_size(w, sx, target), target / sx)


def _crop_index(size: int, crop: int) -> Tuple[int, np.ndarray, np.ndarray]:
    """Centred window of ``crop`` pixels over ``size``: (offset, source index, valid) per output pixel.

    ``offset = (size - crop) // 2`` is negative when the window is larger (zero padding)."""
    offset = (size - crop) // 2
    index = np.arange(crop) + offset
    return offset, np.clip(index, 0, size - 1), (index >= 0) & (index < size)


def center_crop(array_zhw: np.ndarray, crop: int, fill: float = 0) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Centre crop (or pad with ``fill``) every slice to ``crop`` x ``crop``; also the (row, column) offset."""
    _, h, w = array_zhw.shape
    oy, iy, vy = _crop_index(h, crop)
    ox, ix, vx = _crop_index(w, crop)
    out = array_zhw[:, iy][:, :, ix]
    inside = vy[:, None] & vx[None, :]
    if not inside.all():
        out = np.where(inside[None], out, np.asarray(fill, dtype=out.dtype))
    return np.ascontiguousarray(out), (oy, ox)


def apply_spatial(image: Volume, label: Optional[Volume], spacing: Optional[float], crop: Optional[int]
                  ) -> Tuple[Volume, Optional[Volume], Optional[dict]]:
    """Resample (``spacing`` mm, in-plane) and centre-crop (``crop`` pixels) ``image`` and ``label``.

    Either may be None (that step is skipped; both None: returned unchanged with record None). The
    returned volumes carry the new spacing and an affine that places each new pixel where it lies in the
    world, so their geometry describes the new grid; the record undoes it (:func:`invert_spatial`).
    """
    if spacing is None and crop is None:
        return image, label, None
    _, h, w = image.array.shape
    record = {'display_shape_hw': [int(h), int(w)], 'display_spacing_xy': None, 'spacing': None,
              'resampled_shape_hw': [int(h), int(w)], 'crop': None, 'crop_offset_yx': [0, 0]}
    arrays = [image.array, None if label is None else label.array]
    scale = [1.0, 1.0]
    if spacing is not None:
        if spacing <= 0:
            raise MedSegError(image.source, f'target spacing must be > 0 mm, got {spacing}')
        if image.spacing is None:
            raise MedSegError(image.source, 'the scan records no voxel spacing, so it cannot be resampled to '
                                            f'{spacing} mm')
        sx, sy = float(image.spacing[0]), float(image.spacing[1])
        arrays = [resample_inplane(arrays[0], (sx, sy), spacing, nearest=False),
                  None if label is None else resample_inplane(arrays[1], (sx, sy), spacing, nearest=True)]
        scale = [spacing / sx, spacing / sy]
        record.update(display_spacing_xy=[sx, sy], spacing=float(spacing),
                      resampled_shape_hw=[int(s) for s in arrays[0].shape[1:]])
    offset = (0, 0)
    if crop is not None:
        if crop < 1:
            raise MedSegError(image.source, f'crop size must be >= 1 pixel, got {crop}')
        arrays[0], offset = center_crop(arrays[0], crop)
        if label is not None:
            arrays[1], _ = center_crop(arrays[1], crop)
        record.update(crop=int(crop), crop_offset_yx=[int(offset[0]), int(offset[1])])
    record['shape_hw'] = [int(s) for s in arrays[0].shape[1:]]
    affine = None
    if image.affine is not None:
        affine = np.array(image.affine, dtype=np.float64)
        affine[:3, 0] *= scale[0]
        affine[:3, 1] *= scale[1]
        affine[:3, 3] += affine[:3, 0] * offset[1] + affine[:3, 1] * offset[0]
    new_spacing = None
    if image.spacing is not None:
        new_spacing = (float(image.spacing[0]) * scale[0], float(image.spacing[1]) * scale[1],
                       float(image.spacing[2]))

    def wrap(array: np.ndarray, volume: Volume) -> Volume:
        return Volume(array=array, spacing=new_spacing, affine=affine, source=volume.source, meta=dict(volume.meta))

    return wrap(arrays[0], image), None if label is None else wrap(arrays[1], label), record


def invert_spatial(array_zhw: np.ndarray, record: dict, fill: int = 0) -> np.ndarray:
    """A label array on the grid :func:`apply_spatial` made → the display grid it came from.

    The crop is undone (pixels outside it get ``fill``), then each display pixel takes the nearest pixel
    of the resampled grid. A shape that is not the record's is a :class:`MedSegError`.
    """
    array_zhw = np.asarray(array_zhw)
    if array_zhw.ndim != 3 or list(array_zhw.shape[1:]) != list(record['shape_hw']):
        raise MedSegError(None, f'prediction shape (Z, H, W) {list(array_zhw.shape)} does not match the recorded '
                                f'in-plane grid {record["shape_hw"]}')
    rh, rw = record['resampled_shape_hw']
    if record.get('crop') is not None:
        oy, ox = record['crop_offset_yx']
        full = np.full((array_zhw.shape[0], rh, rw), fill, dtype=array_zhw.dtype)
        y0, x0 = max(0, oy), max(0, ox)
        y1, x1 = min(rh, oy + array_zhw.shape[1]), min(rw, ox + array_zhw.shape[2])
        full[:, y0:y1, x0:x1] = array_zhw[:, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        array_zhw = full
    if record.get('spacing') is not None:
        h, w = record['display_shape_hw']
        sx, sy = record['display_spacing_xy']
        target = float(record['spacing'])
        array_zhw = _nearest(array_zhw, 1, h, sy / target)
        array_zhw = _nearest(array_zhw, 2, w, sx / target)
    return np.ascontiguousarray(array_zhw)
