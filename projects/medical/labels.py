"""Label maps: raw label values on disk → contiguous class indices, validated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from .errors import MedSegError


@dataclass(frozen=True)
class LabelMap:
    """Class names and the raw value (as stored in the release) of each class index.

    ``LabelMap(('background', 'hemorrhage'))`` maps raw ``i`` to class ``i``; ``raw_values`` maps
    other encodings, e.g. ``raw_values={0: 0, 255: 1}``.
    """

    classes: Tuple[str, ...]
    raw_values: Optional[Mapping[int, int]] = None

    @property
    def mapping(self) -> Mapping[int, int]:
        return self.raw_values if self.raw_values is not None else {i: i for i in range(len(self.classes))}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def remap(self, array: np.ndarray, source: Optional[str] = None) -> np.ndarray:
        """Return class indices as uint8; see :func:`remap_labels`."""
        return remap_labels(array, self.mapping, source)


def as_integer_labels(array: np.ndarray, source: Optional[str] = None) -> np.ndarray:
    """Integer view of a label array; float labels must hold whole numbers (real releases use float64)."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array
    if not np.all(np.isfinite(array)):
        raise MedSegError(source, 'label volume contains NaN or infinite values')
    rounded = np.rint(array)
    bad = np.abs(array - rounded) > 1e-3
    if bad.any():
        raise MedSegError(source, f'label values must be whole numbers, found e.g. {array[bad].flat[0]:g}')
    return rounded.astype(np.int64)


def remap_labels(array: np.ndarray, mapping: Mapping[int, int], source: Optional[str] = None) -> np.ndarray:
    """Map raw label values to class indices (uint8), rejecting any value outside ``mapping``."""
    values = as_integer_labels(array, source)
    if values.dtype == np.uint8:  # the common case: one histogram pass, then a 256-entry lookup
        hist = cv2.calcHist([values.reshape(-1, values.shape[-1])], [0], None, [256], [0, 256])
        present = np.flatnonzero(hist.ravel())
        _check_known(present, mapping, source)
        if all(mapping[int(v)] == v for v in present):
            return values  # already class indices
        table = np.zeros(256, np.uint8)
        for raw, index in mapping.items():
            if 0 <= raw <= 255:
                table[raw] = index
        return cv2.LUT(values.reshape(-1, values.shape[-1]), table).reshape(values.shape)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 65535:  # cannot be a label map; list a few values for the message
        present = np.unique(values)
    else:
        shifted = values - lo if lo != 0 else values
        present = np.flatnonzero(np.bincount(shifted.ravel(), minlength=hi - lo + 1)) + lo
    _check_known(present, mapping, source)
    table = np.zeros(hi - lo + 1, np.uint8)
    for raw, index in mapping.items():
        if lo <= raw <= hi:
            table[raw - lo] = index
    return table[shifted]


def _check_known(present: np.ndarray, mapping: Mapping[int, int], source: Optional[str]) -> None:
    unknown = [int(v) for v in present if int(v) not in mapping]
    if unknown:
        shown = ', '.join(map(str, unknown[:10])) + (', ...' if len(unknown) > 10 else '')
        raise MedSegError(source, f'label values [{shown}] are outside the label map {sorted(mapping)}')


def binarize_mask(array: np.ndarray, threshold: int = 127) -> np.ndarray:
    """0/1 mask from an 8-bit mask with compression artefacts (JPEG): ``value > threshold``.

    Never compare ``== 255`` on JPEG masks: the foreground is only *near* 255.
    """
    return (array > threshold).astype(np.uint8)


def slice_class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(Z, C) pixel count of each class in each slice (axis 0); background is what the others leave."""
    z = labels.shape[0]
    flat = labels.reshape(z, -1)
    counts = np.zeros((z, num_classes), np.int64)
    for c in range(1, num_classes):
        counts[:, c] = np.count_nonzero(flat == c, axis=1)
    counts[:, 0] = flat.shape[1] - counts[:, 1:].sum(axis=1)
    return counts


def class_statistics(labels: np.ndarray, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per class: voxel count, and number of slices (axis 0) that contain the class."""
    counts = slice_class_counts(labels, num_classes)
    return counts.sum(axis=0).astype(np.int64), (counts > 0).sum(axis=0).astype(np.int64)


def check_same_shape(image_shape: Sequence[int], label_shape: Sequence[int], label_source: Optional[str],
                     image_source: Optional[str]) -> None:
    """Raise when an image volume and its label volume disagree in shape."""
    if tuple(image_shape) != tuple(label_shape):
        raise MedSegError(label_source, f'mask shape {tuple(label_shape)} does not match image shape '
                                        f'{tuple(image_shape)} of {image_source}')
