"""MMSegmentation datasets of the prepared 2D slices (registered in ``mmseg.registry.DATASETS``)."""
from .base import MedicalSliceDataset
from .cranium import CraniumDataset
from .samplers import ForegroundOversamplingSampler, foreground_indices

__all__ = ['MedicalSliceDataset', 'CraniumDataset', 'ForegroundOversamplingSampler', 'foreground_indices']
