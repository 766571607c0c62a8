"""Intensity rules that turn a volume into 8-bit slices.

Each rule is a small frozen dataclass with ``__call__(array) -> uint8 array`` of the same shape, so a
dataset spec states its rule declaratively (``intensity = WINDOWS['brain']``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .errors import MedSegError


@dataclass(frozen=True)
class Window:
    """Linear map of ``[lower, upper]`` (e.g. HU) onto ``[0, 255]``, clipped and rounded."""

    lower: float
    upper: float

    @classmethod
    def from_center_width(cls, center: float, width: float) -> 'Window':
        return cls(center - width / 2.0, center + width / 2.0)

    @property
    def center(self) -> float:
        return (self.lower + self.upper) / 2.0

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def _map(self, values: np.ndarray) -> np.ndarray:
        scaled = (values.astype(np.float32) - np.float32(self.lower)) * np.float32(255.0 / self.width)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """Window ``array``; integer inputs go through a lookup table (one pass, no float copy)."""
        if array.dtype in (np.int16, np.uint16):
            # Every possible 16-bit value mapped once; index with the raw bits.
            table = self._map(np.arange(65536, dtype=np.int64)
                              + (-32768 if array.dtype == np.int16 else 0))
            index = array.view(np.uint16)
            if array.dtype == np.int16:
                index = index ^ np.uint16(0x8000)
            return table[index]
        if array.dtype == np.uint8:
            return self._map(np.arange(256))[array]
        return self._map(array)


#: Named HU windows (center/width as radiologists quote them).
WINDOWS: Dict[str, Window] = {
    # The two windows of the CT-ICH (Cranium) release's JPG export (Siemens syngo video frames).
    'ctich-brain': Window.from_center_width(40, 120),
    'ctich-bone': Window.from_center_width(700, 3200),
    'brain': Window.from_center_width(40, 80),
    'subdural': Window.from_center_width(80, 200),
    'bone': Window.from_center_width(600, 2800),
    'lung': Window(-1250, 250),
}


@dataclass(frozen=True)
class PercentileNormalize:
    """MRI-style normalisation: map the ``[lower, upper]`` percentiles of the volume onto 0–255."""

    lower: float = 0.5
    upper: float = 99.5
    nonzero: bool = False

    def __call__(self, array: np.ndarray) -> np.ndarray:
        values = array[array != 0] if self.nonzero else array
        if values.size == 0:
            return np.zeros(array.shape, np.uint8)
        # Percentiles on a strided subsample are indistinguishable and much cheaper on big volumes.
        step = max(1, values.size // 2_000_000)
        lo, hi = np.percentile(values.ravel()[::step], [self.lower, self.upper])
        if hi <= lo:
            return np.zeros(array.shape, np.uint8)
        return Window(float(lo), float(hi))(array.astype(np.float32))


@dataclass(frozen=True)
class KeepUint8:
    """Data that is already 8-bit (JPG slices, pre-windowed volumes): check the range and keep it."""

    def __call__(self, array: np.ndarray) -> np.ndarray:
        if array.dtype == np.uint8:
            return array
        lo, hi = float(array.min()), float(array.max())
        if lo < 0 or hi > 255:
            raise MedSegError(None, f'expected 8-bit intensities in [0, 255], found [{lo:g}, {hi:g}]')
        return np.rint(array).astype(np.uint8)


def get_intensity(name: str, window: Optional[Window] = None):
    """Rule by name: a key of :data:`WINDOWS`, ``'percentile'`` or ``'keep'``."""
    if name in WINDOWS:
        return WINDOWS[name]
    if name == 'percentile':
        return PercentileNormalize()
    if name == 'keep':
        return KeepUint8()
    raise ValueError(f'unknown intensity rule {name!r}; choose from {sorted(WINDOWS) + ["percentile", "keep"]}')
